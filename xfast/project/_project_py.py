"""Plain-Python twin of ``csrc/_project.pyx`` (same signatures, same results).

Selected when ``XFAST_PURE_PYTHON=1`` or when the extension is not built. The kernels take a
columnar batch: per-sentence offsets into flat int64 arrays, labels as int ids, and write into
caller-allocated outputs. Output label codes: ``0`` is ``O``, ``2*id+1`` is ``B-<id>``,
``2*id+2`` is ``I-<id>``. Inputs are assumed valid for the mode (``xfast.project`` checks them);
in compat mode the kernels themselves turn the reference's failures into its outputs.

Stats layouts (int64 arrays, accumulated over the batch):
heuristic ``[entities, projected_entities, spans, no_alignment, dropped_length_ratio,
conflicts, failed_sentences]``; matching ``[entities, candidates, matched, unmatched,
dropped_overlaps, failed_sentences]``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "heuristic_kernel",
    "greedy_kernel",
    "scores_kernel",
    "ngram_count_kernel",
    "ngram_fill_kernel",
    "first_bad_span",
    "first_bad_pair",
    "flat_pairs",
    "flat_entities",
    "decode",
]


def heuristic_kernel(ent_off, ent, ent_label, aln_off, aln, n_lab, n_rec, lab_off,
                     length_ratio, merge_distance, compat, out, stats):
    """Heuristic projection (docs/projection.md) over a batch; writes codes into ``out[lab_off[s]:lab_off[s+1]]``."""
    for s in range(len(n_rec)):
        n = int(n_rec[s])
        o = int(lab_off[s])
        nl = int(n_lab[s])
        by_lab: dict[int, list[int]] = {}
        for p in range(aln_off[s], aln_off[s + 1]):
            i = int(aln[p, 0])
            if i < 0 or (nl >= 0 and i >= nl):
                continue  # compat only: default mode rejects these before
            by_lab.setdefault(i, []).append(int(aln[p, 1]))
        local = [0] * 7
        local[0] = int(ent_off[s + 1] - ent_off[s])
        failed = False
        for e in range(ent_off[s], ent_off[s + 1]):
            a, b, code = int(ent[e, 0]), int(ent[e, 1]), int(ent_label[e])
            if b <= a or a < 0 or (nl >= 0 and b > nl):
                failed = True  # compat only
                break
            cands: list[list[int]] = []
            for i in range(a, b):
                for t in by_lab.get(i, ()):
                    touched = False
                    for c in cands:
                        if c[0] <= t < c[1]:
                            touched = True
                        elif t == c[1]:
                            c[1] += 1
                            touched = True
                        elif t == c[0] - 1:
                            c[0] -= 1
                            touched = True
                    if not touched:
                        cands.append([t, t + 1])
            if not cands:
                local[3] += 1
                continue
            if merge_distance > 0:
                cands.sort(key=lambda c: c[0])
                merged = [cands[0]]
                for c in cands[1:]:
                    last = merged[-1]
                    if c[0] - last[1] > merge_distance:
                        merged.append(c)
                    else:
                        last[1] = c[1] if compat else max(last[1], c[1])
                cands = merged
            written = 0
            for cs, ce in cands:
                if not (ce - cs) / (b - a) > length_ratio:
                    local[4] += 1
                    continue
                if cs < 0 or ce > n:
                    failed = True  # compat only: the reference's IndexError
                    break
                busy = any(out[o + w] != 0 for w in range(cs, ce))
                if busy:
                    local[5] += 1
                    if not compat:
                        continue
                out[o + cs] = 2 * code + 1
                for w in range(cs + 1, ce):
                    out[o + w] = 2 * code + 2
                written += 1
            if failed:
                break
            local[2] += written
            if written:
                local[1] += 1
        if failed:
            out[o:o + n] = 0
            stats[0] += local[0]
            stats[6] += 1
        else:
            for k in range(6):
                stats[k] += local[k]


def _scores(e0, e1, c0, c1, p0, p1, ent, cand, aln):
    """Dense float64 scores (entities x candidates) of one sentence, row-major list."""
    out = []
    for e in range(e0, e1):
        a, b = int(ent[e, 0]), int(ent[e, 1])
        recs = [int(aln[p, 1]) for p in range(p0, p1) if a <= aln[p, 0] < b]
        counts: dict[int, int] = {}
        for j in recs:
            counts[j] = counts.get(j, 0) + 1
        for c in range(c0, c1):
            su, uu = int(cand[c, 0]), int(cand[c, 1])
            k = sum(v for j, v in counts.items() if su <= j < uu)
            out.append(2.0 * k / ((b - a) + (uu - su)) if k > 0 else 0.0)
    return out


def scores_kernel(ent_off, ent, cand_off, cand, aln_off, aln, score_off, scores):
    """Candidate scores (docs/projection.md): ``scores[score_off[s]:]`` holds sentence s's (E, C) matrix row-major."""
    for s in range(len(ent_off) - 1):
        vals = _scores(ent_off[s], ent_off[s + 1], cand_off[s], cand_off[s + 1], aln_off[s],
                       aln_off[s + 1], ent, cand, aln)
        scores[score_off[s]:score_off[s] + len(vals)] = vals


def greedy_kernel(ent_off, ent, ent_label, cand_off, cand, aln_off, aln, n_rec, lab_off, compat,
                  out, stats):
    """Greedy matching (docs/projection.md) over a batch; writes codes in selection order."""
    for s in range(len(n_rec)):
        e0, e1 = int(ent_off[s]), int(ent_off[s + 1])
        c0, c1 = int(cand_off[s]), int(cand_off[s + 1])
        ne, nc = e1 - e0, c1 - c0
        n, o = int(n_rec[s]), int(lab_off[s])
        stats[0] += ne
        stats[1] += nc
        sc = _scores(e0, e1, c0, c1, aln_off[s], aln_off[s + 1], ent, cand, aln)
        row_alive = [True] * ne
        col_alive = [True] * nc
        picks = []
        while True:
            best, be, bc = 0.0, -1, -1
            for e in range(ne):
                if row_alive[e]:
                    for c in range(nc):
                        if col_alive[c] and sc[e * nc + c] > best:
                            best, be, bc = sc[e * nc + c], e, c
            if be < 0:
                break
            picks.append((be, bc))
            row_alive[be] = False
            bs, bu = cand[c0 + bc, 0], cand[c0 + bc, 1]
            col_alive[bc] = False
            for c in range(nc):
                if max(bs, cand[c0 + c, 0]) < min(bu, cand[c0 + c, 1]):
                    col_alive[c] = False
        matched = 0
        failed = False
        for e, c in picks:
            code = int(ent_label[e0 + e])
            start, end = int(cand[c0 + c, 0]), int(cand[c0 + c, 1])
            for w in range(start, end):
                if w < 0 or w >= n:
                    failed = True  # compat only: the reference stops at its IndexError
                    break
                out[o + w] = 2 * code + (1 if w == start else 2)
            if failed:
                break
            matched += 1
        stats[2] += matched
        stats[3] += ne - matched
        stats[5] += failed


def ngram_count_kernel(stop, word_off, min_words, max_words, counts):
    """Number of n-gram candidates per sentence (``max_words <= 0``: sentence length)."""
    for s in range(len(word_off) - 1):
        w0, n = int(word_off[s]), int(word_off[s + 1] - word_off[s])
        mx = n if max_words <= 0 else max_words
        total = 0
        nxt = n
        for st in range(n - 1, -1, -1):
            if stop[w0 + st]:
                nxt = st
            hi = min(st + mx, nxt, n)
            if hi >= st + min_words:
                total += hi - (st + min_words) + 1
        counts[s] = total


def ngram_fill_kernel(stop, word_off, min_words, max_words, cand_off, cand):
    """Write the n-gram candidates, ordered by start then end, at ``cand_off[s]``."""
    for s in range(len(word_off) - 1):
        w0, n = int(word_off[s]), int(word_off[s + 1] - word_off[s])
        mx = n if max_words <= 0 else max_words
        nxt = [n] * (n + 1)
        for st in range(n - 1, -1, -1):
            nxt[st] = st if stop[w0 + st] else nxt[st + 1]
        k = int(cand_off[s])
        for st in range(n):
            for en in range(st + min_words, min(st + mx, nxt[st], n) + 1):
                cand[k, 0] = st
                cand[k, 1] = en
                k += 1


def first_bad_span(off, spans, limit):
    """Flat index of the first span not in ``0 <= start < end <= limit[s]`` (limit < 0: no
    upper bound), or -1."""
    for s in range(len(off) - 1):
        for k in range(off[s], off[s + 1]):
            a, b = spans[k, 0], spans[k, 1]
            if a < 0 or b <= a or (limit[s] >= 0 and b > limit[s]):
                return int(k)
    return -1


def first_bad_pair(off, pairs, n_lab, n_rec):
    """Flat index of the first pair not in ``[0, n_lab[s]) x [0, n_rec[s])`` (n_lab < 0: no
    upper bound), or -1."""
    for s in range(len(off) - 1):
        for k in range(off[s], off[s + 1]):
            i, j = pairs[k, 0], pairs[k, 1]
            if i < 0 or j < 0 or j >= n_rec[s] or (n_lab[s] >= 0 and i >= n_lab[s]):
                return int(k)
    return -1


# --------------------------------------------------------------------------- the list API's edge


def flat_pairs(alignments):
    """``(offsets (S+1,), pairs (P, 2))`` int64 of per-sentence lists of 2-tuples or 2-lists
    of ints, or None when one is anything else (an array, a malformed pair)."""
    off, flat = [0], []
    for a in alignments:
        if type(a) not in (list, tuple):
            return None
        for p in a:
            if type(p) not in (list, tuple) or len(p) != 2 or not all(_is_int(x) for x in p):
                return None
            flat.append((int(p[0]), int(p[1])))
        off.append(len(flat))
    return np.array(off, np.int64), np.array(flat, np.int64).reshape(-1, 2)


def flat_entities(entities, vocab):
    """``(offsets (S+1,), spans (E, 2), ids (E,))`` int64 of per-sentence lists of
    ``(start, end, label)`` tuples (labels numbered in ``vocab`` as they first appear), or None
    when one is anything else."""
    off, spans, ids = [0], [], []
    for a in entities:
        if type(a) not in (list, tuple):
            return None
        for e in a:
            if type(e) not in (list, tuple) or len(e) != 3 or not (_is_int(e[0]) and _is_int(e[1])):
                return None
            spans.append((int(e[0]), int(e[1])))
            ids.append(vocab.setdefault(e[2], len(vocab)))
        off.append(len(spans))
    return np.array(off, np.int64), np.array(spans, np.int64).reshape(-1, 2), np.array(ids, np.int64)


def decode(codes, offsets, table):
    """One list of ``table[code]`` per sentence (sentence ``i``: ``codes[offsets[i]:offsets[i+1]]``)."""
    c, o = codes.tolist(), offsets.tolist()
    return [[table[x] for x in c[o[i]:o[i + 1]]] for i in range(len(o) - 1)]


def _is_int(x) -> bool:
    """What the compiled twin stores in an int64: an int (a bool is one) or a NumPy integer,
    within int64's range."""
    return isinstance(x, (int, np.integer)) and -(1 << 63) <= int(x) < (1 << 63)  # int: bool too
