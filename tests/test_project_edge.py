"""The list API's edge kernels (Python lists to flat arrays and label codes back to strings):
the compiled ones equal their plain-Python twins on random and malformed inputs, and the
public list functions give what they gave through the checked path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xfast.project as P
from xfast.project import _project_py

try:
    from xfast.project import _project as _compiled
except ImportError:
    _compiled = None

needs_kernel = pytest.mark.skipif(_compiled is None, reason="the compiled projection kernel is not built")

INT = st.one_of(st.integers(-5, 60), st.booleans(), st.integers(-(1 << 63), (1 << 63) - 1),
                st.integers(1 << 63, 1 << 64))
ODD = st.one_of(st.floats(allow_nan=False), st.text(max_size=2), st.none())
PAIR = st.one_of(st.tuples(INT, INT), st.lists(INT, min_size=2, max_size=2),
                 st.lists(st.one_of(INT, ODD), min_size=0, max_size=3), st.tuples(INT, ODD))
ENTITY = st.one_of(st.tuples(INT, INT, st.sampled_from(["PER", "ORG", "LOC", ""])),
                   st.lists(st.one_of(INT, st.sampled_from(["PER", "X"])), min_size=3, max_size=3),
                   st.tuples(INT, ODD, st.just("PER")), st.tuples(INT, INT))


def _same(a, b):
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b))


@needs_kernel
@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.lists(PAIR, max_size=6), st.tuples(PAIR))), )
def test_flat_pairs_equals_its_twin(alignments):
    assert _same(_compiled.flat_pairs(alignments), _project_py.flat_pairs(alignments))


@needs_kernel
@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(ENTITY, max_size=4)))
def test_flat_entities_equals_its_twin(entities):
    v1, v2 = {}, {}
    a, b = _compiled.flat_entities(entities, v1), _project_py.flat_entities(entities, v2)
    assert _same(a, b)
    if a is not None:
        assert v1 == v2


@needs_kernel
@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=8), max_size=6))
def test_decode_equals_its_twin(rows):
    codes = np.array([c for r in rows for c in r], np.int64)
    off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    table = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-X", "I-X"]
    assert _compiled.decode(codes, off, table) == _project_py.decode(codes, off, table) == \
        [[table[c] for c in r] for r in rows]


@pytest.mark.parametrize("impl", [_project_py] + ([_compiled] if _compiled else []),
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_list_api_takes_arrays_and_reports_bad_input_as_before(impl, monkeypatch):
    """The edge kernels decline what they do not take (arrays, malformed items), and the checked
    path answers as it always did: the same labels for arrays, the same [E303] for bad items."""
    monkeypatch.setattr(P, "_K", impl)
    ents, ns = [[(0, 2, "PER")], [(1, 2, "LOC")]], [3, 3]
    lists = [[(0, 0), (1, 1)], [(1, 2)]]
    arrays = [np.array(a, np.int32) for a in lists]
    assert P.heuristic_batch(ents, lists, ns) == P.heuristic_batch(ents, arrays, ns) == \
        [["B-PER", "I-PER", "O"], ["O", "O", "B-LOC"]]
    with pytest.raises(Exception, match="E303"):
        P.heuristic_batch(ents, [[(0, 0, 9)], [(1, 2)]], ns)
    with pytest.raises(Exception, match="E303"):
        P.heuristic_batch([[(0, 2)], []], lists, ns)
