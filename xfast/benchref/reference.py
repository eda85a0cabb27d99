"""The paper's code, imported as it is from a user's checkout (``xfast bench-reference``).

Only the leaf modules that each stage calls are imported, by their module paths in the
reference repository. Nothing of it is copied into xfast (it is GPL-3.0): it is read from the
folder the user names, at run time, and every module imported from it leaves ``sys.modules``
again afterwards.

A package that a module imports at its top but that no measured function calls may be missing
(``awesome_align`` is a git dependency; ``mlflow`` is large): then, and only then, an empty
placeholder module stands in for it so the module imports, and the output says so. Calling
anything in a placeholder raises. Everything a stage measures is the reference's own code and
the real packages it calls.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from xfast.errors import ParameterError, msg

__all__ = ["MODULES", "PLACEHOLDERS", "REQUIRED", "Reference", "check_reference", "git_commit", "open_reference"]

#: short name -> module path in the reference repository
MODULES = {
    "heuristic": "src.pipelines.align.projection",
    "word_aligners": "src.pipelines.align.word_aligners",
    "extractors": "src.pipelines.candidates.extractors",
    "candidates": "src.pipelines.candidates.projection",
    "eval": "src.pipelines.eval",
    "data": "src.pipelines.data",
    "runners": "src.pipelines.runners",
    "transforms": "src.pipelines.transforms_base",
    "europarl": "src.data.load_europarl_ds",
}

#: files whose absence means PATH is not a checkout of the reference at all
REQUIRED = ("src/pipelines/align/matching.py", "src/pipelines/transforms_base.py")

#: package -> (modules): stands in only when the package is not installed, because the named
#: reference module imports it at its top although no function the harness calls uses it
PLACEHOLDERS = {
    "awesome_align": ("awesome_align.modeling", "awesome_align.tokenization_bert"),
    "mlflow": (),
}
_PLACEHOLDER_WHY = {
    "awesome_align": "imported by src/pipelines/align/word_aligners.py for AwesomeAligner, which no stage runs "
                     "(SimAlignAligner does not use it)",
    "mlflow": "imported by src/pipelines/eval.py; used there only with log_to_mlflow=True, and the harness "
              "passes False",
}


class _Placeholder(types.ModuleType):
    """An empty module that raises on any attribute a caller asks for."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"{self.__name__}.{name}: {self.__name__} is a placeholder of xfast bench-reference "
                           f"(the package is not installed); nothing the harness measures may use it")


@dataclass
class Reference:
    """The imported reference: its folder, commit, modules and what could not be imported."""

    root: Path
    commit: str | None
    modules: dict[str, types.ModuleType] = field(default_factory=dict)
    #: short name -> why the module could not be imported
    missing: dict[str, str] = field(default_factory=dict)
    #: one line per placeholder package that stood in
    placeholders: list[str] = field(default_factory=list)

    def has(self, *names: str) -> bool:
        return all(n in self.modules for n in names)

    def why_not(self, *names: str) -> str:
        """Why the modules ``names`` are not all available (one line)."""
        return "; ".join(f"{MODULES[n]}: {self.missing[n]}" for n in names if n in self.missing)

    def __getattr__(self, name: str) -> types.ModuleType:
        try:
            return self.__dict__["modules"][name]
        except KeyError:
            raise AttributeError(name) from None


def git_commit(root: Path) -> str | None:
    """The commit checked out in ``root`` read from its ``.git`` (a folder, or a ``gitdir:``
    file as in worktrees and submodules); None when there is none."""
    git = root / ".git"
    try:
        if git.is_file():
            text = git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git = (root / text[len("gitdir:"):].strip()).resolve()
        if not git.is_dir():
            return None
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head[len("ref:"):].strip()
        common = git / "commondir"
        base = (git / common.read_text().strip()).resolve() if common.is_file() else git
        for folder in (git, base):
            if (folder / ref).is_file():
                return (folder / ref).read_text().strip()
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return sha
    except OSError:
        return None
    return None


def check_reference(path: str | Path) -> Path:
    """``path`` as an absolute folder; [E130] when it is none, [E131] when it is not a checkout of
    the reference."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ParameterError(msg("E130", path=path))
    lacking = [f for f in REQUIRED if not (root / f).is_file()]
    if lacking:
        raise ParameterError(msg("E131", path=path, missing=", ".join(lacking)))
    return root.resolve()


def _ours(name: str) -> bool:
    return name == "src" or name.startswith("src.")


def _install_placeholders() -> tuple[list[str], list[str]]:
    """Placeholder modules for the packages of PLACEHOLDERS that are not installed: their
    ``sys.modules`` names and one note each."""
    added, notes = [], []
    for package, submodules in PLACEHOLDERS.items():
        if package in sys.modules or importlib.util.find_spec(package) is not None:
            continue
        for name in (package, *submodules):
            mod = _Placeholder(name)
            mod.__path__ = []  # a package, so that `import a.b` finds both in sys.modules
            sys.modules[name] = mod
            added.append(name)
        for name in submodules:
            setattr(sys.modules[package], name.rpartition(".")[2], sys.modules[name])
        notes.append(f"{package} (not installed) replaced by an empty placeholder: {_PLACEHOLDER_WHY[package]}")
    return added, notes


def _import_error(err: BaseException) -> str:
    if isinstance(err, ModuleNotFoundError) and err.name:
        return f"needs the package {err.name.split('.')[0]!r}, which is not installed ({err})"
    return f"{type(err).__name__}: {err}"


@contextmanager
def open_reference(path: str | Path) -> Iterator[Reference]:
    """Import the reference's leaf modules from checkout ``path`` for the time of the block.

    Raises :class:`~xfast.errors.ParameterError` [E130] when ``path`` is no folder and [E131]
    when it is not a checkout of the reference. A module that cannot be imported is listed in
    ``Reference.missing`` with the reason; the stages that need it are skipped.
    """
    root = check_reference(path)
    saved_path = list(sys.path)
    foreign = {k: v for k, v in sys.modules.items() if _ours(k)}  # another project's `src`
    for k in foreign:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    added, notes = _install_placeholders()
    ref = Reference(root=root, commit=git_commit(root), placeholders=notes)
    try:
        importlib.invalidate_caches()
        for short, module in MODULES.items():
            try:
                ref.modules[short] = importlib.import_module(module)
            except Exception as err:  # noqa: BLE001 - any failure of the user's checkout is reported, not raised
                ref.missing[short] = _import_error(err)
        yield ref
    finally:
        for k in [k for k in sys.modules if _ours(k)]:
            del sys.modules[k]
        for k in added:
            sys.modules.pop(k, None)
        sys.modules.update(foreign)
        sys.path[:] = saved_path
