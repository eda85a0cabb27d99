"""``--filter`` (docs/projection.md, *Filtering*): the vectorised filter equals a plain-Python
oracle on random batches; ``xfast project`` and ``translate-train`` keep + reject every sentence,
count every reason, and ``none`` changes nothing; bad policies are one-line errors, exit code 2."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._pipeline_helpers import DATA, head_conll
from xfast.errors import ParameterError
from xfast.io import entities_of, read_conll
from xfast.project.filtering import FilterPolicy, filter_batch, keep_rows, span_scores

EUROPARL = DATA / "europarl-ner"


# --------------------------------------------------------------------------- the oracle


def oracle_spans(codes: list[int]) -> list[tuple[int, int, int]]:
    """``(start, end, type)``: a B- code and the I- codes of its type that follow it."""
    out, k = [], 0
    while k < len(codes):
        if codes[k] % 2 == 1:
            end = k + 1
            while end < len(codes) and codes[end] == codes[k] + 1:
                end += 1
            out.append((k, end, (codes[k] - 1) // 2))
            k = end
        else:
            k += 1
    return out


def oracle_sentence(codes, entities, pairs, policy, counted):
    """One sentence through the filter, by the definitions: ``(codes, spans with scores,
    removed flags, projected flags per entity, state, dropped)``."""
    spans = []
    for a, b, t in oracle_spans(codes):
        best = 0.0
        for ea, eb, et in entities:
            if et == t:
                links = sum(1 for i, j in pairs if ea <= i < eb and a <= j < b)
                best = max(best, 2 * links / ((eb - ea) + (b - a)))
        spans.append((a, b, t, min(best, 1.0)))
    removed = [policy.min_score is not None and s < policy.min_score for *_, s in spans]
    out = list(codes)
    for (a, b, _, _), r in zip(spans, removed):
        if r:
            out[a:b] = [0] * (b - a)
    projected = [any(not r and t == et and any(ea <= i < eb and a <= j < b for i, j in pairs)
                     for (a, b, t, _), r in zip(spans, removed)) for ea, eb, et in entities]
    use = [counted is None or counted[et] for _, _, et in entities]
    n = sum(use)
    p = sum(1 for u, pr in zip(use, projected) if u and pr)
    state = 2 if n and not p else 1 if 0 < p < n else 0
    dropped = (policy.drop_partial and state > 0) or (policy.drop_unprojected and state == 2)
    return out, spans, removed, projected, state, dropped


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@st.composite
def batches(draw):
    n_types = draw(st.integers(1, 3))
    sents = []
    for _ in range(draw(st.integers(0, 6))):
        n_lab, n_rec = draw(st.integers(0, 7)), draw(st.integers(0, 7))
        codes = draw(st.lists(st.integers(0, 2 * n_types), min_size=n_rec, max_size=n_rec))
        ents = []
        if n_lab:
            for _ in range(draw(st.integers(0, 3))):
                a = draw(st.integers(0, n_lab - 1))
                ents.append((a, draw(st.integers(a + 1, n_lab)), draw(st.integers(0, n_types - 1))))
        pairs = sorted(set(draw(st.lists(st.tuples(st.integers(0, n_lab - 1), st.integers(0, n_rec - 1)),
                                         max_size=12)))) if n_lab and n_rec else []
        sents.append((codes, ents, pairs))
    min_score = draw(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 0.5, 2 / 3]), st.floats(0, 1)))
    policy = FilterPolicy(draw(st.booleans()), draw(st.booleans()), min_score)
    counted = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=n_types, max_size=n_types)))
    return sents, policy, counted


def _arrays(sents):
    codes = np.array([c for s in sents for c in s[0]], np.int64)
    ents = [e for s in sents for e in s[1]]
    pairs = np.array([p for s in sents for p in s[2]], np.int32).reshape(-1, 2)
    return (codes, _offsets([len(s[0]) for s in sents]), _offsets([len(s[1]) for s in sents]),
            np.array([e[:2] for e in ents], np.int64).reshape(-1, 2), np.array([e[2] for e in ents], np.int64),
            _offsets([len(s[2]) for s in sents]), pairs)


@settings(max_examples=400, deadline=None)
@given(batches())
def test_filter_equals_the_oracle(batch):
    sents, policy, counted = batch
    arrays = _arrays(sents)
    got = filter_batch(*arrays, policy, counted=None if counted is None else np.array(counted))
    sc = span_scores(*arrays)
    want = [oracle_sentence(*s, policy, counted) for s in sents]
    assert got.codes.tolist() == [c for w in want for c in w[0]]
    assert got.states.tolist() == [w[4] for w in want]
    assert got.dropped.tolist() == [w[5] for w in want]
    assert got.entity_projected.tolist() == [p for w in want for p in w[3]]
    assert got.removed.tolist() == [r for w in want for r in w[2]]
    assert got.spans.offsets.tolist() == _offsets([len(w[1]) for w in want]).tolist()
    for res in (got.spans, sc):
        assert [(int(a), int(b), int(t)) for (a, b), t in zip(res.spans, res.types)] == \
            [s[:3] for w in want for s in w[1]]
        assert res.scores == pytest.approx([s[3] for w in want for s in w[1]], abs=1e-12)


def test_edge_cases():
    # an empty batch; a sentence with no entities (kept by every policy); an empty sentence
    empty = _arrays([])
    f = filter_batch(*empty, FilterPolicy(True, True, 0.5))
    assert f.codes.size == 0 and f.dropped.size == 0
    # B-PER I-PER linked word for word scores 1; the LOC span has no link and scores 0
    sents = [([1, 2, 0, 3], [(0, 2, 0), (3, 4, 1)], [(0, 0), (1, 1)]), ([], [], []), ([1], [], [])]
    arrays = _arrays(sents)
    assert span_scores(*arrays).scores.tolist() == [1.0, 0.0, 0.0]
    f = filter_batch(*arrays, FilterPolicy(min_score=1.0))
    assert f.codes.tolist() == [1, 2, 0, 0, 0] and not f.dropped.any()
    f = filter_batch(*arrays, FilterPolicy(drop_partial=True, min_score=0.0))  # X=0 removes nothing
    assert f.codes.tolist() == [1, 2, 0, 3, 1] and f.states.tolist() == [1, 0, 0]
    assert f.dropped.tolist() == [True, False, False]
    f = filter_batch(*arrays, FilterPolicy(drop_unprojected=True, min_score=1.0))  # all removed
    f2 = filter_batch(*arrays, FilterPolicy(drop_unprojected=True, min_score=1.0), counted=np.array([False, True]))
    assert f.dropped.tolist() == [False, False, False] and f2.dropped.tolist() == [True, False, False]


def test_keep_rows_equals_take():
    from xfast.io.columns import LabelTypes, from_sentences

    types = LabelTypes()
    cols = from_sentences([["a", "bé"], [], ["ç"], ["d", "e", "f"]], types,
                          [["B-X", "O"], [], ["O"], ["O", "B-Y", "I-Y"]])
    for mask in ([True, False, True, True], [False] * 4, [True] * 4, [False, True, False, True]):
        got, tok = keep_rows(cols, np.array(mask))
        want = cols.take([i for i, m in enumerate(mask) if m])
        assert got.sentences() == want.sentences() and got.codes.tolist() == want.codes.tolist()
        assert got.lines.tolist() == want.lines.tolist() and tok.sum() == want.n_tokens


@pytest.mark.parametrize("value,code", [
    (["bogus"], "E208"), (["none", "drop-partial"], "E208"), ([], "E208"), (["drop-partial", "drop-partial"], "E208"),
    (["min-score"], "E208"), (["drop-partial=1"], "E208"), (["min-score=abc"], "E209"), (["min-score=1.5"], "E209"),
    (["min-score=-0.1"], "E209"), (["min-score=nan"], "E209"), (["min-score=0.2", "min-score=0.3"], "E208")])
def test_bad_policies(value, code):
    with pytest.raises(ParameterError, match=rf"\[{code}\]"):
        FilterPolicy.parse(value)


def test_policy_parse():
    assert FilterPolicy.parse("none") == FilterPolicy.parse(["none"]) == FilterPolicy()
    assert not FilterPolicy().active
    p = FilterPolicy.parse(["drop-partial", "min-score=0.50"])
    assert p == FilterPolicy(drop_partial=True, min_score=0.5) == FilterPolicy.parse("min-score=0.5 drop-partial")
    assert p.names() == ["min-score=0.5", "drop-partial"] and str(p) == "min-score=0.5 drop-partial"
    assert FilterPolicy.parse(p) is p
