"""xfast.project vs the reference's plain-Python algorithms (issue 4).

Run: ``python -m pytest benchmarks/bench_project.py -s`` (or ``python
benchmarks/bench_project.py``). The baselines below are written here to behave like the paper's
code (per-sentence dicts, labeled-word lists rebuilt per sentence, the n-gram extractor's set
intersection per span, a score triple loop into a CSR matrix, and the greedy matcher's overlap
sets built from pairwise combinations per word). Both sides run in this process on the same
synthetic sentences (near-diagonal alignments with noise and duplicates) and must give the same
labels (xfast in ``compat`` mode); ratios are of the best of several rounds, per sentence.

Rows: heuristic over 10,000 sentences (~25 words, 1-3 entities); n-gram extraction + scoring
+ greedy matching at 40 words / 3 entities; the same at 150 words with n-grams of at most 30
words (character-level zh/ja/th sentences). "end to end" starts from Python lists and ends in
IOB2 strings; "columnar" starts from the flat arrays a pipeline batch already holds.
"""

from __future__ import annotations

import random
import time
from itertools import chain, combinations

import numpy as np
from scipy.sparse import csr_matrix

import xfast.project as P

LABELS = ("PER", "ORG", "LOC")


# --------------------------------------------------------------------------- baselines


def ref_heuristic(orig_len, trans_len, entities, alignments, ratio=0.8, merge_distance=1):
    """The reference's alignment projection for one sentence (pairs as (receiving, labeled))."""
    try:
        labels = ["O" for _ in range(orig_len)]
        by_trans = [[al[0] for al in alignments if al[1] == i] for i in range(trans_len)]
        for ent in entities:
            s, e, lab = ent["start_idx"], ent["end_idx"], ent["label"]
            cands = []
            for idx in range(s, e):
                for t in by_trans[idx]:
                    new = True
                    for c in cands:
                        if c[0] <= t < c[1]:
                            new = False
                        elif t == c[1]:
                            c[1] += 1
                            new = False
                        elif t == c[0] - 1:
                            c[0] -= 1
                            new = False
                    if new:
                        cands.append([t, t + 1])
            if merge_distance > 0 and cands:
                cands = sorted(cands, key=lambda c: c[0])
                merged = [cands[0]]
                for c in cands[1:]:
                    if c[0] - merged[-1][1] > merge_distance:
                        merged.append(c)
                    else:
                        merged[-1][1] = c[1]
                cands = merged
            for c in filter(lambda c: (c[1] - c[0]) / (e - s) > ratio, cands):
                labels[c[0]] = "B-" + lab
                for i in range(c[0] + 1, c[1]):
                    labels[i] = "I-" + lab
        return labels
    except Exception:
        return ["O"] * orig_len


def ref_ngrams(words, min_words=1, max_words=None, stop_words=frozenset({"!", "?"})):
    n = len(words)
    mx = (max_words if max_words else n) + 1
    out = []
    for s in range(n - min_words + 1):
        for e in range(s + min_words, min(s + mx, n + 1)):
            if not stop_words.intersection(words[s:e]):
                out.append((s, e))
    return out


def ref_scores(alignments, spans, cands):
    weights, cols, ptr = [], [], [0]
    n_words = max(spans, key=lambda x: x[1])[1]
    by_src = [[al[0] for al in alignments if al[1] == i] for i in range(n_words)]
    for s, e in spans:
        aligned = by_src[s:e]
        for col, (cs, ce) in enumerate(cands):
            k = 0
            for idxs in aligned:
                k += sum(1 if cs <= j < ce else 0 for j in idxs)
            if k > 0:
                weights.append(2 * k / ((e - s) + (ce - cs)))
                cols.append(col)
        ptr.append(len(cols))
    return csr_matrix((weights, cols, ptr), shape=(len(spans), len(cands)))


def ref_overlaps(cands):
    max_pos = max(cands, key=lambda c: c[1])[1]
    overlapped = [set() for _ in cands]
    hits = [[] for _ in range(max_pos)]
    for k, (s, e) in enumerate(cands):
        for i in range(s, e):
            hits[i].append(k)
    for h in hits:
        if len(h) > 1:
            for a, b in combinations(h, 2):
                overlapped[a].add(b)
                overlapped[b].add(a)
    return [list(x) for x in overlapped]


def ref_greedy(orig_words, entities, alignments, max_words=None):
    """The reference's n-gram candidates + argmax matching for one sentence."""
    labels = ["O"] * len(orig_words)
    cands = ref_ngrams(orig_words, max_words=max_words)
    try:
        if entities:
            spans = [(e["start_idx"], e["end_idx"]) for e in entities]
            C = ref_scores(alignments, spans, cands).toarray()
            n_ent, n_cand = C.shape
            picks = []
            if n_ent and n_cand:
                over = ref_overlaps(cands)
                while C.max() > 0:
                    r, c = np.unravel_index(np.argmax(C.reshape(1, -1)), (n_ent, n_cand))
                    picks.append((r.item(), c.item()))
                    C[r] = 0
                    o = over[c]
                    o.append(c)
                    C[:, o] = 0
            for r, c in picks:
                s, e = cands[c]
                labels[s] = "B-" + entities[r]["label"]
                for i in range(s + 1, e):
                    labels[i] = "I-" + entities[r]["label"]
    except Exception:
        pass
    return labels


# --------------------------------------------------------------------------- data


def make_sentences(count, n_words, n_entities, seed=0, vocab_size=50):
    """Labeled/receiving pairs of similar length with near-diagonal alignments."""
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        n_lab = n_words if isinstance(n_words, int) else rnd.randint(*n_words)
        n_rec = max(1, n_lab + rnd.randint(-3, 3))
        pairs = []
        for i in range(n_lab):
            if rnd.random() < 0.9:
                j = min(n_rec - 1, max(0, i * n_rec // n_lab + rnd.randint(-1, 1)))
                pairs.append((i, j))
                if rnd.random() < 0.15:
                    pairs.append((i, min(n_rec - 1, j + 1)))
        rnd.shuffle(pairs[: len(pairs) // 4])
        ents, pos = [], 0
        k = n_entities if isinstance(n_entities, int) else rnd.randint(*n_entities)
        for _ in range(k):
            if pos >= n_lab:
                break
            a = rnd.randint(pos, min(n_lab - 1, pos + 6))
            b = min(n_lab, a + rnd.randint(1, 3))
            if a >= n_lab or b <= a:
                break
            ents.append((a, b, rnd.choice(LABELS)))
            pos = b
        words = [rnd.choice(("!", "?")) if rnd.random() < 0.02 else f"w{rnd.randrange(vocab_size)}"
                 for _ in range(n_rec)]
        out.append(dict(ents=ents, pairs=pairs, n_rec=n_rec, words=words))
    return out


def _best(fn, rounds):
    best = float("inf")
    out = None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


# --------------------------------------------------------------------------- runs


def bench_heuristic(n=10_000, rounds=7):
    sents = make_sentences(n, (15, 35), (1, 3))
    # the reference's inputs: dict entities, (receiving, labeled) pairs
    ref_in = [(s["n_rec"], max(chain([0], (i + 1 for i, _ in s["pairs"]),
                                      (b for _, b, _ in s["ents"]))),
               [dict(start_idx=a, end_idx=b, label=lab) for a, b, lab in s["ents"]],
               [(j, i) for i, j in s["pairs"]]) for s in sents]
    t_ref, want = _best(lambda: [ref_heuristic(*x) for x in ref_in], rounds)
    ents = [s["ents"] for s in sents]
    pairs = [s["pairs"] for s in sents]
    ns = [s["n_rec"] for s in sents]
    t_e2e, got = _best(lambda: P.heuristic_batch(ents, pairs, ns, compat=True), rounds)
    assert got == want, "xfast compat differs from the reference algorithm"
    t_def, _ = _best(lambda: P.heuristic_batch(ents, pairs, ns), rounds)
    vocab = {lab: i for i, lab in enumerate(LABELS)}
    ent_off = np.cumsum([0] + [len(e) for e in ents])
    ent_arr = np.array([(a, b) for e in ents for a, b, _ in e], dtype=np.int64)
    ent_ids = np.array([vocab[lab] for e in ents for _, _, lab in e], dtype=np.int64)
    aln_off = np.cumsum([0] + [len(p) for p in pairs])
    aln = np.array([p for ps in pairs for p in ps], dtype=np.int64)
    n_arr = np.array(ns, dtype=np.int64)
    t_col, (codes, off, _) = _best(lambda: P.heuristic_columnar(
        ent_off, ent_arr, ent_ids, aln_off, aln, n_arr, compat=True), rounds * 3)
    assert P.decode_labels(codes, off, list(LABELS)) == want
    return [("heuristic, 10,000 sentences, end to end (compat)", t_ref, t_e2e, n),
            ("heuristic, 10,000 sentences, end to end (default)", t_ref, t_def, n),
            ("heuristic, 10,000 sentences, columnar kernel", t_ref, t_col, n)]


def bench_ngram_greedy(n_words, max_words, n_ref, n_fast, rounds=2, label=""):
    sents = make_sentences(max(n_ref, n_fast), n_words, 3, seed=n_words)
    ref_in = [([w for w in s["words"]],
               [dict(start_idx=a, end_idx=b, label=lab) for a, b, lab in s["ents"]],
               [(j, i) for i, j in s["pairs"]]) for s in sents[:n_ref]]
    t_ref, want = _best(lambda: [ref_greedy(w, e, a, max_words) for w, e, a in ref_in], rounds)
    fast = sents[:n_fast]
    words = [s["words"] for s in fast]
    ents = [s["ents"] for s in fast]
    pairs = [s["pairs"] for s in fast]
    ns = [s["n_rec"] for s in fast]

    def run():
        spans = P.ngram_candidates_batch(words, max_words=max_words or 0)
        return P.match_batch(ents, spans, pairs, ns, compat=True)

    t_fast, got = _best(run, rounds + 1)
    assert got[:n_ref] == want, "xfast compat differs from the reference algorithm"
    return [(f"n-gram + scores + greedy, {label}", t_ref / n_ref * n_fast, t_fast, n_fast)]


def run_all():
    rows = bench_heuristic()
    rows += bench_ngram_greedy(40, None, n_ref=5, n_fast=2000, label="40 words, 3 entities")
    rows += bench_ngram_greedy(150, 30, n_ref=2, n_fast=200,
                               label="150 words, 3 entities, max 30-word n-grams")
    return rows


def _print(rows):
    print()
    print(f"| {'case':<62} | sentences | reference (s) | xfast (s) | ratio |")
    print(f"|{'-' * 64}|-----------|---------------|-----------|-------|")
    for name, t_ref, t_fast, n in rows:
        print(f"| {name:<62} | {n:>9} | {t_ref:>13.4f} | {t_fast:>9.4f} | "
              f"{t_ref / t_fast:>5.0f}x |")


def test_bench_project():
    rows = run_all()
    _print(rows)
    for name, t_ref, t_fast, _ in rows:
        assert t_ref > 0 and t_fast > 0, name
        if "end to end" in name:  # the list API, Python lists in and IOB2 strings out
            assert t_ref / t_fast >= 10, f"{name}: {t_ref / t_fast:.1f}x the reference, below 10x"


if __name__ == "__main__":
    _print(run_all())
