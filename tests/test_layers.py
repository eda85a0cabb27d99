"""The import layers of xfast: data flows one way (io -> text -> models/align/project -> pipelines ->
serve -> cli), and a module never imports one of a higher layer, nor takes part in an import
circle, counting the imports inside function bodies (which only hide a circle).

A module's layer is that of the longest prefix below that names it. To move a module, or add a
package, put it in the layer whose imports it may use.
"""

from tests._structure import cycles, read

#: top first; a module may import its own layer and the ones below
LAYERS = [
    ["xfast.cli", "xfast.__main__"],
    ["xfast.benchref"],
    ["xfast.serve"],
    ["xfast.pipelines", "xfast.compare"],
    ["xfast.aligner", "xfast.text"],
    ["xfast.models", "xfast.align", "xfast.project", "xfast.evaluate", "xfast.testing"],
    ["xfast.report", "xfast.progress"],
    ["xfast.io"],
    ["xfast.errors", "xfast._native", "xfast._optional", "xfast._chunks", "xfast._chunks_py"],
]

#: the package itself: ``import xfast`` is a lazy facade over xfast.Aligner and xfast.Projector
FACADE = "xfast"


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    return None if best is None else best[0]


def test_every_module_has_a_layer():
    assert [m for m in read() if m != FACADE and _layer(m) is None] == []


def test_no_module_imports_a_higher_layer():
    mods = read()
    upward = []
    for m in mods.values():
        if m.name == FACADE:
            continue
        for target in sorted(m.top | {t for _, t in m.inner if t in mods}):
            if target != FACADE and _layer(target) < _layer(m.name):
                upward.append(f"{m.name} -> {target}")
    assert upward == []


def test_no_import_circle_even_through_function_bodies():
    assert cycles(read(), inner=True) == []
