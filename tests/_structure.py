"""Facts about xfast's source read with ``ast``: its import graph (module top level, and imports
inside function bodies apart), circles in it, and its longest functions.

``python -m tests._structure [ROOT]`` prints them (ROOT: a checkout; default this one), so a
change can say what it did to them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Module:
    name: str
    path: Path
    top: set[str] = field(default_factory=set)  # xfast modules imported at module level
    inner: list[tuple[int, str]] = field(default_factory=list)  # (line, module) imported in a body
    functions: list[tuple[int, str, int]] = field(default_factory=list)  # (lines, qualname, line)


def _name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(target: str, known: set[str]) -> str | None:
    """The xfast module an import names (``xfast.io.conll.read_conll`` -> ``xfast.io.conll``)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def _imports(node: ast.AST, module: str, is_pkg: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for a in node.names:
            yield a.name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = module.split(".") if is_pkg else module.split(".")[:-1]
            pkg = pkg[:len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        for a in node.names:
            yield f"{base}.{a.name}" if a.name != "*" else base


def read(root: Path = ROOT) -> dict[str, Module]:
    """Every module of ``root/xfast``, with its imports and functions."""
    paths = sorted((root / "xfast").rglob("*.py"))
    known = {_name(p, root) for p in paths}
    out: dict[str, Module] = {}
    for path in paths:
        name = _name(path, root)
        mod = Module(name, path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"

        def visit(node: ast.AST, depth: int, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _imports(child, name, is_pkg):
                        resolved = _resolve(target, known) if target.startswith("xfast") else None
                        if depth == 0 and not _guarded(child, tree):
                            if resolved and resolved != name:
                                mod.top.add(resolved)
                        else:
                            mod.inner.append((child.lineno, resolved or target.split(".")[0]))
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    qual = f"{prefix}{child.name}"
                    mod.functions.append((child.end_lineno - child.lineno + 1, qual, child.lineno))
                    visit(child, depth + 1, qual + ".")
                elif isinstance(child, ast.ClassDef):
                    visit(child, depth, f"{prefix}{child.name}.")
                else:
                    visit(child, depth, prefix)

        visit(tree, 0, "")
        out[name] = mod
    return out


def _guarded(node: ast.AST, tree: ast.Module) -> bool:
    """Whether a module-level import sits under ``if TYPE_CHECKING:`` (not a runtime edge)."""
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            if any(n is node for n in ast.walk(stmt)):
                return True
    return False


def _package_graph(mods: dict[str, Module], *, inner: bool = False) -> dict[str, set[str]]:
    """Module edges, where importing ``a.b`` also runs the package ``a`` (its ``__init__``)."""
    graph: dict[str, set[str]] = {}
    for m in mods.values():
        deps = set()
        for t in m.top | ({t for _, t in m.inner if t in mods} if inner else set()):
            parts = t.split(".")
            deps |= {".".join(parts[:k]) for k in range(2, len(parts) + 1)}
        graph[m.name] = {d for d in deps if d in mods and d != m.name and not m.name.startswith(d + ".")}
    return graph


def cycles(mods: dict[str, Module], *, inner: bool = False) -> list[list[str]]:
    """Strongly connected groups of more than one module in the module-level import graph
    (``inner``: counting imports inside function bodies as edges too, i.e. the circles that
    deferred imports only hide)."""
    graph = _package_graph(mods, inner=inner)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def report(root: Path = ROOT, top: int = 12) -> str:
    mods = read(root)
    inner = [(m.name, line, t) for m in mods.values() for line, t in m.inner]
    own = [x for x in inner if x[2].startswith("xfast")]
    funcs = sorted(((n, f"{m.name}.{q}") for m in mods.values() for n, q, _ in m.functions), reverse=True)
    files = sorted(((len(m.path.read_text(encoding="utf-8").splitlines()), m.name) for m in mods.values()),
                   reverse=True)
    lines = [f"modules: {len(mods)}",
             f"import circles: {len(cycles(mods))}"]
    lines += [f"  {' <-> '.join(c)}" for c in cycles(mods)]
    hidden = cycles(mods, inner=True)
    lines += [f"import circles with imports in function bodies counted: {len(hidden)}"]
    lines += [f"  {' <-> '.join(c)}" for c in hidden]
    lines += [f"imports inside functions: {len(inner)} (of xfast's own modules: {len(own)})",
              f"functions over 80 lines: {sum(1 for n, _ in funcs if n > 80)}; longest:"]
    lines += [f"  {n:4d}  {q}" for n, q in funcs[:top]]
    lines += ["largest files:"] + [f"  {n:4d}  {q}" for n, q in files[:top]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
