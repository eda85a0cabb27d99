"""xfast.project against the independent oracle (tests/oracles/project_oracle.py).

Hypothesis builds batches of sentences (0-60 words, 0-8 entities, random and adversarial
alignments with duplicates and out-of-order pairs); each batch runs through the batch API
once and every sentence is compared with the oracle, in default and compat mode. Budget:
about 20,000 sentences in all (BATCH x max_examples summed over the tests below).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xfast.project as P
from tests.oracles import project_oracle as O
from xfast.errors import DataError
from scipy.optimize import linear_sum_assignment

BATCH = 20
LABELS = ("PER", "ORG", "LOC", "MISC")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


def _alignment(rnd: random.Random, n_lab: int, n_rec: int, kind: str, compat: bool):
    """Pairs (labeled, receiving): random, near-diagonal or clustered; then duplicated
    and reordered. Compat mode also gets indices outside the sentences."""
    pairs = []
    if n_lab and n_rec:
        if kind == "random":
            for _ in range(rnd.randint(0, min(80, 2 * max(n_lab, n_rec)))):
                pairs.append((rnd.randrange(n_lab), rnd.randrange(n_rec)))
        elif kind == "diagonal":
            for i in range(n_lab):
                if rnd.random() < 0.85:
                    j = min(n_rec - 1, max(0, i * n_rec // n_lab + rnd.randint(-2, 2)))
                    pairs.append((i, j))
        else:  # clustered: entity-sized blocks mapped to scattered, adjacent targets
            for i in range(n_lab):
                base = rnd.randrange(n_rec)
                for d in rnd.sample((-1, 0, 1, 2, 3), rnd.randint(0, 3)):
                    pairs.append((i, min(n_rec - 1, max(0, base + d))))
    for _ in range(rnd.randint(0, 4)):
        if pairs:
            pairs.insert(rnd.randrange(len(pairs) + 1), rnd.choice(pairs))
    order = rnd.choice(("as is", "sorted", "reversed", "shuffled"))
    if order == "sorted":
        pairs.sort()
    elif order == "reversed":
        pairs.reverse()
    elif order == "shuffled":
        rnd.shuffle(pairs)
    if compat and rnd.random() < 0.3:
        for _ in range(rnd.randint(1, 3)):
            pairs.append((rnd.randint(-1, n_lab + 2), rnd.randint(-2, n_rec + 2)))
    return pairs


def _entities(rnd: random.Random, n_lab: int, compat: bool):
    ents = []
    for _ in range(rnd.randint(0, 8)):
        if n_lab == 0:
            break
        a = rnd.randrange(n_lab)
        b = a + rnd.randint(1, min(6, n_lab - a))
        ents.append((a, b, rnd.choice(LABELS)))
    if compat and ents and rnd.random() < 0.1:
        a = rnd.randint(-1, n_lab + 1)
        ents.insert(rnd.randrange(len(ents) + 1), (a, a + rnd.randint(-1, 1), "PER"))
    return ents


@st.composite
def batches(draw, compat: bool):
    """A batch of sentences: hypothesis picks sizes and kinds, a seeded RNG the contents."""
    sents = []
    for _ in range(BATCH):
        n_lab = draw(st.integers(0, 60))
        n_rec = draw(st.integers(0, 60))
        kind = draw(st.sampled_from(("random", "diagonal", "clustered")))
        rnd = random.Random(draw(st.integers(0, 2**32)))
        known = draw(st.booleans())
        sents.append(dict(ents=_entities(rnd, n_lab, compat),
                          pairs=_alignment(rnd, n_lab, n_rec, kind, compat),
                          n_rec=n_rec, n_lab=n_lab if known else None))
    return sents


def _run_heuristic(sents, compat, length_ratio, merge_distance):
    want, total = [], {}
    for s in sents:
        labels, stats = O.heuristic(s["ents"], s["pairs"], s["n_rec"], length_ratio=length_ratio,
                                    merge_distance=merge_distance, compat=compat,
                                    n_labeled=s["n_lab"])
        assert labels is not None
        want.append(labels)
        for k, v in stats.items():
            total[k] = total.get(k, 0) + v
    got, stats = P.heuristic_batch([s["ents"] for s in sents], [s["pairs"] for s in sents],
                                   [s["n_rec"] for s in sents], length_ratio=length_ratio,
                                   merge_distance=merge_distance, compat=compat,
                                   n_labeled_list=[s["n_lab"] for s in sents],
                                   return_stats=True)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, (i, sents[i])
    d = stats.as_dict()
    assert d.pop("sentences") == len(sents)
    assert d == total


RATIOS = st.sampled_from((0.8, 0.8, 0.0, 0.5, 2 / 3, 1.0, 0.3))
MERGES = st.sampled_from((1, 1, 0, -1, 2, 3))


@settings(max_examples=300, **SETTINGS)
@given(batches(compat=False), RATIOS, MERGES)
def test_heuristic_default_matches_oracle(sents, ratio, merge):
    _run_heuristic(sents, False, ratio, merge)


@settings(max_examples=300, **SETTINGS)
@given(batches(compat=True), RATIOS, MERGES)
def test_heuristic_compat_matches_oracle(sents, ratio, merge):
    _run_heuristic(sents, True, ratio, merge)


def _candidates(rnd: random.Random, n_rec: int, compat: bool):
    kind = rnd.choice(("ngram", "ner", "random"))
    if kind == "ngram":
        words = [rnd.choice(("a", "b", "!", "?", "c", "d", "e")) for _ in range(n_rec)]
        return O.ngram_candidates(words, max_words=rnd.choice((0, 2, 3, 5)) if n_rec <= 25
                                  else rnd.choice((2, 3, 4)))
    spans = []
    for _ in range(rnd.randint(0, 10)):
        if n_rec:
            a = rnd.randrange(n_rec)
            spans.append((a, a + rnd.randint(1, min(5, n_rec - a))))
    if kind == "ner":
        return O.ner_candidates(spans, sub_spans=rnd.random() < 0.5)
    if compat and rnd.random() < 0.3:
        a = rnd.randint(-2, n_rec + 1)
        spans.insert(rnd.randrange(len(spans) + 1), (a, a + rnd.randint(-1, 3)))
    return spans


def _run_greedy(sents, compat):
    rnd = random.Random(len(sents) + sum(s["n_rec"] for s in sents))
    for s in sents:
        s["cands"] = _candidates(rnd, s["n_rec"], compat)
    want, total = [], {}
    for s in sents:
        labels, stats = O.greedy(s["ents"], s["cands"], s["pairs"], s["n_rec"], compat=compat,
                                 n_labeled=s["n_lab"])
        assert labels is not None
        want.append(labels)
        for k, v in stats.items():
            total[k] = total.get(k, 0) + v
    got, stats = P.match_batch([s["ents"] for s in sents], [s["cands"] for s in sents],
                               [s["pairs"] for s in sents], [s["n_rec"] for s in sents],
                               compat=compat, n_labeled_list=[s["n_lab"] for s in sents],
                               return_stats=True)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, (i, sents[i])
    d = stats.as_dict()
    assert d.pop("sentences") == len(sents)
    assert d == total


@settings(max_examples=250, **SETTINGS)
@given(batches(compat=False))
def test_greedy_default_matches_oracle(sents):
    _run_greedy(sents, False)


@settings(max_examples=150, **SETTINGS)
@given(batches(compat=True))
def test_greedy_compat_matches_oracle(sents):
    _run_greedy(sents, True)


@settings(max_examples=60, **SETTINGS)
@given(st.integers(0, 2**32))
def test_bipartite_default_is_a_maximum_weight_matching(seed):
    """Ties make the matching itself non-unique: check its weight against exhaustive
    search, and that labels are its candidates written in entity order."""
    rnd = random.Random(seed)
    n_lab, n_rec = rnd.randint(0, 12), rnd.randint(0, 12)
    ents = _entities(rnd, n_lab, False)[:4]
    pairs = _alignment(rnd, n_lab, n_rec, rnd.choice(("random", "diagonal")), False)
    cands = _candidates(rnd, n_rec, False)[:12]
    labels, stats = P.match(ents, cands, pairs, n_rec, method="bipartite", return_stats=True)
    best = O.max_matching_weight(ents, cands, pairs)
    mat = O.score_matrix(ents, cands, pairs)
    if ents and cands:
        m = np.array([[float(x) for x in row] for row in mat])
        r, c = linear_sum_assignment(m, maximize=True)
        assert abs(m[r, c].sum() - float(best)) < 1e-9
        chosen = [(e, k) for e, k in zip(r, c) if mat[e][k] > 0]
        want, skipped = O.label_assignment(ents, cands, chosen, n_rec)
        assert labels == want
        assert stats.dropped_overlaps == skipped
        assert stats.matched + stats.unmatched == len(ents)
    else:
        assert labels == ["O"] * n_rec and best == 0


@settings(max_examples=60, **SETTINGS)
@given(batches(compat=False))
def test_default_mode_rejects_what_the_oracle_rejects(sents):
    """One invalid sentence in a batch raises E303 naming that sentence."""
    rnd = random.Random(len(sents))
    bad = rnd.randrange(len(sents))
    s = sents[bad]
    how = rnd.choice(("empty entity", "pair out of range", "negative", "entity past end"))
    if how == "empty entity":
        s["ents"] = s["ents"] + [(3, 3, "PER")]
    elif how == "pair out of range":
        s["pairs"] = s["pairs"] + [(0, s["n_rec"])]
    elif how == "negative":
        s["pairs"] = [(-1, 0)] + s["pairs"]
    else:
        s["n_lab"] = 4
        s["ents"] = [(2, 5, "LOC")]
    assert O.heuristic(s["ents"], s["pairs"], s["n_rec"], n_labeled=s["n_lab"])[0] is None
    with pytest.raises(DataError, match=rf"\[E303\] sentence {bad}:"):
        P.heuristic_batch([x["ents"] for x in sents], [x["pairs"] for x in sents],
                          [x["n_rec"] for x in sents],
                          n_labeled_list=[x["n_lab"] for x in sents])
    with pytest.raises(DataError, match=rf"\[E303\] sentence {bad}:"):
        P.match_batch([x["ents"] for x in sents], [[] for _ in sents],
                      [x["pairs"] for x in sents], [x["n_rec"] for x in sents],
                      n_labeled_list=[x["n_lab"] for x in sents])
