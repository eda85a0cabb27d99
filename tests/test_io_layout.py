"""xfast.io in layers: each module imports only those below it (imports inside functions
counted), one Entity, and the names' earlier homes still give the same objects."""

import importlib

import pytest

from tests._structure import read

#: io module -> the io modules it may import (anything below it)
LAYERS = {
    "xfast.io.labels": set(),
    "xfast.io.tokens": {"xfast.io.labels"},
    "xfast.io.files": set(),
    "xfast.io._text_py": set(),
    "xfast.io.conll": {"xfast.io._text_py", "xfast.io.files", "xfast.io.labels", "xfast.io.tokens"},
    "xfast.io.jsonl": {"xfast.io.files", "xfast.io.labels", "xfast.io.tokens"},
    "xfast.io.parquet": {"xfast.io.labels", "xfast.io.tokens"},
    "xfast.io.pharaoh": {"xfast.io.files"},
    "xfast.io.readers": {"xfast.io.conll", "xfast.io.files", "xfast.io.jsonl", "xfast.io.labels",
                         "xfast.io.parquet", "xfast.io.tokens"},
}


def test_io_modules_import_only_the_layers_below():
    mods = read()
    io = {name: m for name, m in mods.items() if name.startswith("xfast.io.")}
    assert set(LAYERS) <= set(io)
    for name, allowed in LAYERS.items():
        m = io[name]
        used = {t for t in m.top | {t for _, t in m.inner} if t.startswith("xfast.io.")}
        assert used <= allowed, f"{name} imports {sorted(used - allowed)}"
        assert not m.inner, f"{name} imports inside functions: {m.inner}"


def test_one_entity():
    from xfast.io import Entity
    from xfast.io.labels import Entity as home

    assert Entity is home
    for owner in ("xfast.project", "xfast.text.easyproject", "xfast.serve.validation", "xfast.serve.projector"):
        assert importlib.import_module(owner).Entity is home, owner


@pytest.mark.parametrize("old,new,names", [
    ("xfast.io.columns", "xfast.io.tokens", ["LabelTypes", "TokenColumns", "from_sentences", "ragged_range"]),
    ("xfast.io.columns", "xfast.io.readers", ["read_columns", "read_parallel_columns", "count_sentences",
                                              "file_form", "check_parallel"]),
    ("xfast.io.columns", "xfast.io.conll", ["conll_bytes", "_K"]),
    ("xfast.io.conll", "xfast.io.labels", ["Sentence", "check_label", "to_iob2", "entities_of", "labels_of"]),
    ("xfast.io", "xfast.io.readers", ["read_any", "read_parallel"]),
])
def test_earlier_homes_give_the_same_objects(old, new, names):
    a, b = importlib.import_module(old), importlib.import_module(new)
    assert all(getattr(a, n) is getattr(b, n) for n in names)


def test_tagger_iob2_is_the_io_function():
    from xfast.io.labels import labels_of
    from xfast.models.tagger import iob2

    assert iob2([(0, 2, "PER"), (3, 4, "LOC")], 5) == labels_of([(0, 2, "PER"), (3, 4, "LOC")], 5) == \
        ["B-PER", "I-PER", "O", "B-LOC", "O"]
