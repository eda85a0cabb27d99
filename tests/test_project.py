"""xfast.project: hand-written cases for every compat quirk, the API edge, and the
compiled kernels against their plain-Python twin (one harness runs both)."""

from __future__ import annotations

import random

import numpy as np
import pytest

import xfast.project as P
from tests.oracles import project_oracle as O
from xfast.errors import DataError, ParameterError
from xfast.project import _project_py

try:
    from xfast.project import _project as _compiled
except ImportError:  # extension not built: the twin is all there is
    _compiled = None

IMPLS = [_project_py] + ([_compiled] if _compiled is not None else [])


@pytest.fixture(params=IMPLS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def impl(request, monkeypatch):
    """Run the test through each kernel implementation."""
    monkeypatch.setattr(P, "_K", request.param)
    return request.param


# --------------------------------------------------------------------------- §3 quirks

# Entity [0, 7) whose candidates end up as X = [2, 9) (created first) and Y = [2, 4): equal
# starts keep creation order, so compat's merge takes Y's end and the span shrinks to [2, 4).
SHRINK_PAIRS = [(0, 8), (1, 2), (2, 7), (3, 6), (4, 5), (5, 4), (6, 3), (6, 2)]


def test_shrinking_merge(impl):
    ents = [(0, 7, "ORG")]
    assert P.heuristic(ents, SHRINK_PAIRS, 10) == ["O", "O", "B-ORG"] + ["I-ORG"] * 6 + ["O"]
    labels, stats = P.heuristic(ents, SHRINK_PAIRS, 10, compat=True, return_stats=True)
    assert labels == ["O"] * 10  # [2, 4) has ratio 2/7: dropped
    assert stats.dropped_length_ratio == 1
    for compat in (False, True):
        assert O.heuristic(ents, SHRINK_PAIRS, 10, compat=compat)[0] == P.heuristic(
            ents, SHRINK_PAIRS, 10, compat=compat)


def test_overwrite_orphans_in_compat_conflicts_dropped_by_default(impl):
    ents = [(0, 3, "PER"), (3, 4, "LOC")]
    pairs = [(0, 2), (1, 3), (2, 4), (3, 3)]
    labels, stats = P.heuristic(ents, pairs, 6, compat=True, return_stats=True)
    assert labels == ["O", "O", "B-PER", "B-LOC", "I-PER", "O"]  # orphan I-PER
    assert stats.conflicts == 1 and stats.spans == 2
    labels, stats = P.heuristic(ents, pairs, 6, return_stats=True)
    assert labels == ["O", "O", "B-PER", "I-PER", "I-PER", "O"]
    assert (stats.conflicts, stats.spans, stats.projected_entities) == (1, 1, 1)


def test_touch_and_extend_joins_every_candidate(impl):
    # t=5 creates [5,6), t=3 creates [3,4); t=4 extends both: [4,6) and [3,5) overlap
    pairs = [(0, 5), (1, 3), (2, 4)]
    labels, stats = P.heuristic([(0, 3, "LOC")], pairs, 7, merge_distance=0, length_ratio=0.5,
                                return_stats=True)
    assert labels == ["O"] * 4 + ["B-LOC", "I-LOC", "O"] and stats.conflicts == 1
    assert P.heuristic([(0, 3, "LOC")], pairs, 7, merge_distance=0, length_ratio=0.5,
                       compat=True) == ["O"] * 3 + ["B-LOC", "I-LOC", "I-LOC", "O"]
    # with merging: one span [3, 6)
    assert P.heuristic([(0, 3, "LOC")], pairs, 7) == ["O"] * 3 + ["B-LOC", "I-LOC", "I-LOC", "O"]


def test_length_ratio_is_strict_and_spans_multiply(impl):
    # 4 of 5 words: 0.8 is not > 0.8
    pairs = [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert P.heuristic([(0, 5, "X")], pairs, 5) == ["O"] * 5
    assert P.heuristic([(0, 5, "X")], pairs, 5, length_ratio=0.79) == [
        "B-X", "I-X", "I-X", "I-X", "O"]
    # one entity gives two spans when the gap exceeds merge_distance
    labels, stats = P.heuristic([(0, 1, "X")], [(0, 0), (0, 3)], 5, return_stats=True)
    assert labels == ["B-X", "O", "O", "B-X", "O"] and stats.spans == 2


def test_compat_failures_turn_the_sentence_to_o(impl):
    good = (0, 1, "PER")
    # zero-length entity
    labels, stats = P.heuristic([good, (2, 2, "LOC")], [(0, 0)], 3, compat=True,
                                return_stats=True)
    assert labels == ["O"] * 3 and stats.failed_sentences == 1
    # kept span past the receiving sentence: the reference's IndexError
    assert P.heuristic([good], [(0, 0), (0, 3)], 3, compat=True) == ["O"] * 3
    # ... but a dropped one is harmless, and labeled indices out of range are ignored
    assert P.heuristic([(0, 2, "PER")], [(0, 0), (1, 1), (0, 9)], 3, compat=True) == [
        "B-PER", "I-PER", "O"]
    assert P.heuristic([good], [(0, 0), (5, 1), (-1, 2)], 3, compat=True,
                       n_labeled=2) == ["B-PER", "O", "O"]
    # entity past the labeled sentence when its length is known
    assert P.heuristic([(1, 3, "PER")], [(1, 0)], 3, compat=True, n_labeled=2) == ["O"] * 3


def test_default_errors_name_the_sentence(impl):
    with pytest.raises(DataError, match=r"\[E303\] sentence 1: entity 0 \[4, 2\)"):
        P.heuristic_batch([[], [(4, 2, "X")]], [[], []], [3, 3])
    with pytest.raises(DataError, match=r"\[E303\] sentence 0: alignment pair \(0, 3\)"):
        P.heuristic([(0, 1, "X")], [(0, 3)], 3)
    with pytest.raises(DataError, match=r"\[E303\] sentence 0: alignment pair \(2, 0\)"):
        P.heuristic([(0, 1, "X")], [(2, 0)], 3, n_labeled=2)
    with pytest.raises(DataError, match=r"\[E303\] sentence 2: candidate \[1, 5\)"):
        P.match_batch([[]] * 3, [[], [], [(1, 5)]], [[]] * 3, [4, 4, 4])
    with pytest.raises(DataError, match=r"sentence 0: alignment must have shape"):
        P.heuristic([], np.zeros((2, 3), dtype=int), 3)


def test_parameter_errors():
    with pytest.raises(ParameterError, match=r"\[E201\] The 'method' parameter"):
        P.match([], [], [], 0, method="hungarian")
    with pytest.raises(ParameterError, match=r"\[E202\] The 'length_ratio'"):
        P.heuristic([], [], 0, length_ratio=-0.1)
    with pytest.raises(ParameterError, match=r"'min_words'"):
        P.ngram_candidates(["a"], min_words=0)
    with pytest.raises(ParameterError, match=r"3 items"):
        P.heuristic_batch([[], [], []], [[], []], [1, 1, 1])


# --------------------------------------------------------------------------- §4 quirks


def test_greedy_tie_one_over_one_vs_two_over_two(impl):
    # A=[0,1)->cand [0,1): 2*1/(1+1) = 1; B=[1,3)->cand [0,2): 2*2/(2+2) = 1: an exact tie,
    # the lower entity index wins and the overlapping candidate is zeroed.
    pairs = [(0, 0), (1, 0), (2, 1)]
    cands = [(0, 1), (0, 2)]
    a, b = (0, 1, "PER"), (1, 3, "LOC")
    labels, stats = P.match([a, b], cands, pairs, 3, return_stats=True)
    assert labels == ["B-PER", "O", "O"]
    assert (stats.matched, stats.unmatched) == (1, 1)
    assert P.match([b, a], cands, pairs, 3) == ["B-LOC", "I-LOC", "O"]
    # equal scores on one row: the lower candidate index wins
    assert P.match([a], [(0, 1), (0, 1)], [(0, 0)], 2) == ["B-PER", "O"]


def test_greedy_zeroes_overlaps_and_writes_in_selection_order(impl):
    ents = [(0, 2, "PER"), (2, 3, "LOC"), (3, 4, "ORG")]
    pairs = [(0, 0), (1, 1), (2, 1), (3, 3)]
    cands = [(0, 2), (1, 2), (1, 3), (3, 4)]
    # PER takes [0,2) (score 1); [1,2) and [1,3) overlap it, so LOC gets nothing
    labels, stats = P.match(ents, cands, pairs, 4, return_stats=True)
    assert labels == ["B-PER", "I-PER", "O", "B-ORG"]
    assert (stats.matched, stats.unmatched) == (2, 1)


def test_greedy_compat_keeps_labels_written_before_a_failure(impl):
    ents = [(0, 1, "PER"), (1, 2, "LOC")]
    pairs = [(0, 0), (1, 2)]
    cands = [(0, 1), (2, 5)]  # [2, 5) leaves the 4-word sentence
    labels, stats = P.match(ents, cands, pairs, 4, compat=True, return_stats=True)
    assert labels == ["B-PER", "O", "B-LOC", "I-LOC"]
    assert (stats.matched, stats.failed_sentences) == (1, 1)


def test_bipartite_compat_all_o_when_no_full_matching():
    ents = [(0, 1, "PER"), (1, 2, "LOC")]
    pairs = [(0, 0), (1, 0)]
    cands = [(0, 1), (1, 2)]  # both entities only score on candidate 0
    labels, stats = P.match(ents, cands, pairs, 2, method="bipartite", compat=True,
                            return_stats=True)
    assert labels == ["O", "O"] and stats.failed_sentences == 1
    assert P.match(ents, cands, pairs, 2, method="bipartite") == ["B-PER", "O"]
    # entities whose scores are all 0 are dropped before scipy's full matching
    ents3 = ents[:1] + [(1, 2, "LOC")]
    assert P.match(ents3, cands, [(0, 0)], 2, method="bipartite", compat=True) == ["B-PER", "O"]


def test_bipartite_skips_overlapping_assignments():
    ents = [(0, 2, "PER"), (2, 3, "LOC")]
    pairs = [(0, 0), (1, 1), (2, 1)]
    cands = [(0, 2), (1, 2)]
    labels, stats = P.match(ents, cands, pairs, 3, method="bipartite", return_stats=True)
    assert labels == ["B-PER", "I-PER", "O"]
    assert stats.dropped_overlaps == 1


def test_ngram_candidates():
    words = ["a", "b", "!", "c", "d", "e"]
    got = P.ngram_candidates(words)
    assert got == O.ngram_candidates(words)
    assert got[:4] == [(0, 1), (0, 2), (1, 2), (3, 4)]
    assert P.ngram_candidates(words, min_words=2, max_words=2) == [(0, 2), (3, 5), (4, 6)]
    assert P.ngram_candidates(words, stop_words=()) == O.ngram_candidates(words, stop_words=())
    assert P.ngram_candidates([]) == []
    batch = P.ngram_candidates_batch([words, [], ["x", "?"]], max_words=3)
    assert len(batch) == 3 and batch[1] == [] and batch[2] == [(0, 1)]


def test_ner_candidates():
    assert P.ner_candidates([(0, 2, "PER"), (3, 4, "LOC")]) == [(0, 2), (3, 4)]
    assert P.ner_candidates([(0, 2), (1, 3)], sub_spans=True) == [
        (0, 1), (0, 2), (1, 2), (1, 2), (1, 3), (2, 3)]


# --------------------------------------------------------------------------- API edge


def test_inputs_as_arrays_lists_and_generators(impl):
    ents = [(0, 2, "PER")]
    want = P.heuristic(ents, [(0, 1), (1, 2)], 4)
    assert want == ["O", "B-PER", "I-PER", "O"]
    assert P.heuristic(ents, np.array([[0, 1], [1, 2]], dtype=np.int32), 4) == want
    assert P.heuristic(ents, ((i, i + 1) for i in range(2)), 4) == want
    assert P.heuristic(ents, [[0, 1], [1, 2]], np.int64(4)) == want
    assert P.heuristic_batch([], [], []) == []
    assert P.match_batch([], [], [], []) == []
    words = [["a", "b", "c", "d"]] * 2
    spans = P.ngram_candidates_batch(words)
    got = P.match_batch([ents, []], spans, [[(0, 1), (1, 2)], []], [4, 4])
    assert got == [["O", "B-PER", "I-PER", "O"], ["O"] * 4]


def test_columnar_round_trip(impl):
    codes, off, stats = P.heuristic_columnar(
        np.array([0, 1, 1]), np.array([[0, 2]]), np.array([1]), np.array([0, 2, 2]),
        np.array([[0, 1], [1, 2]]), np.array([4, 2]))
    assert codes.tolist() == [0, 3, 4, 0, 0, 0] and off.tolist() == [0, 4, 6]
    assert P.decode_labels(codes, off, ["PER", "LOC"]) == [["O", "B-LOC", "I-LOC", "O"],
                                                          ["O", "O"]]
    assert stats.sentences == 2 and stats.spans == 1


def test_batch_equals_one_by_one_and_any_split():
    rnd = random.Random(7)
    ents, alns, ns = [], [], []
    for _ in range(40):
        n = rnd.randint(0, 15)
        ns.append(n)
        alns.append([(rnd.randrange(15), rnd.randrange(n)) for _ in range(rnd.randint(0, 20))]
                    if n else [])
        e = []
        for _ in range(rnd.randint(0, 3)):
            a = rnd.randrange(14)
            e.append((a, a + rnd.randint(1, 2), rnd.choice("ABC")))
        ents.append(e)
    whole = P.heuristic_batch(ents, alns, ns)
    assert whole == [P.heuristic(e, a, n) for e, a, n in zip(ents, alns, ns)]
    assert whole == P.heuristic_batch(ents[:17], alns[:17], ns[:17]) + P.heuristic_batch(
        ents[17:], alns[17:], ns[17:])


# --------------------------------------------------------------------------- twin vs kernel


@pytest.mark.skipif(_compiled is None, reason="extension not built")
@pytest.mark.parametrize("compat", [False, True])
def test_twin_and_kernel_agree(monkeypatch, compat):
    rnd = random.Random(11 + compat)
    ents, cands, alns, ns = [], [], [], []
    for _ in range(300):
        n = rnd.randint(0, 30)
        m = rnd.randint(1, 30)
        ns.append(n)
        lo, hi = (-2, n + 2) if compat else (0, n - 1)
        alns.append([(rnd.randrange(m), rnd.randint(lo, hi)) for _ in range(rnd.randint(0, 40))]
                    if hi >= lo else [])
        e = []
        for _ in range(rnd.randint(0, 6)):
            a = rnd.randrange(m)
            e.append((a, min(m, a + rnd.randint(1, 4)), rnd.choice(("PER", "LOC"))))
        ents.append(e)
        cands.append([(a, b) for a, b in P.ngram_candidates(["w"] * n, max_words=4)
                      if rnd.random() < 0.5])
    results = []
    for k in (_project_py, _compiled):
        monkeypatch.setattr(P, "_K", k)
        h = P.heuristic_batch(ents, alns, ns, compat=compat, merge_distance=2,
                              return_stats=True)
        g = P.match_batch(ents, cands, alns, ns, compat=compat, return_stats=True)
        b = P.match_batch(ents, cands, alns, ns, method="bipartite", compat=compat,
                          return_stats=True)
        results.append((h, g, b))
    assert results[0] == results[1]
