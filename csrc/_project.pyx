# cython: language_level=3
"""Projection kernels (docs/projection.md) over a columnar batch; owned by ``xfast.project``.

Same signatures and results as the plain-Python twin ``xfast/project/_project_py.py``, whose
docstring describes the layout, the label codes and the stats arrays. Inputs are assumed valid
for the mode (``xfast.project`` checks them once per batch); scratch is allocated once per
call, loops run without the GIL.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t

ctypedef int64_t i64


cdef inline i64 _max(i64 a, i64 b) noexcept nogil:
    return a if a > b else b


cdef inline i64 _min(i64 a, i64 b) noexcept nogil:
    return a if a < b else b


def heuristic_kernel(const i64[::1] ent_off, const i64[:, ::1] ent, const i64[::1] ent_label,
                     const i64[::1] aln_off, const i64[:, ::1] aln, const i64[::1] n_lab, const i64[::1] n_rec,
                     const i64[::1] lab_off, double length_ratio, i64 merge_distance,
                     bint compat, i64[::1] out, i64[::1] stats):
    """docs/projection.md over a batch; writes codes into ``out[lab_off[s]:lab_off[s+1]]``."""
    cdef Py_ssize_t S = n_rec.shape[0]
    cdef i64 max_lab = 0, max_pairs = 1, s, p
    for s in range(S):
        max_pairs = _max(max_pairs, aln_off[s + 1] - aln_off[s] + 1)
    for p in range(aln.shape[0]):
        max_lab = _max(max_lab, aln[p, 0])
    cdef i64[::1] ptr = np.zeros(max_lab + 3, dtype=np.int64)
    cdef i64[::1] recs = np.zeros(max_pairs, dtype=np.int64)
    cdef i64[::1] cs = np.zeros(max_pairs, dtype=np.int64)
    cdef i64[::1] ce = np.zeros(max_pairs, dtype=np.int64)
    cdef i64[::1] order = np.zeros(max_pairs, dtype=np.int64)
    cdef i64[7] local
    cdef i64 e, i, t, c, q, k, a, b, code, n, o, nl, maxl, ncand, nkeep, cur, written, w
    cdef bint failed, touched, busy
    with nogil:
        for s in range(S):
            n = n_rec[s]
            o = lab_off[s]
            nl = n_lab[s]
            # receiving indices grouped by labeled index, alignment order kept (counting sort)
            maxl = -1
            for p in range(aln_off[s], aln_off[s + 1]):
                i = aln[p, 0]
                if i >= 0 and (nl < 0 or i < nl):
                    maxl = _max(maxl, i)
            for i in range(maxl + 3):
                ptr[i] = 0
            for p in range(aln_off[s], aln_off[s + 1]):
                i = aln[p, 0]
                if i >= 0 and (nl < 0 or i < nl):
                    ptr[i + 2] += 1
            for i in range(2, maxl + 3):
                ptr[i] += ptr[i - 1]
            for p in range(aln_off[s], aln_off[s + 1]):
                i = aln[p, 0]
                if i >= 0 and (nl < 0 or i < nl):
                    recs[ptr[i + 1]] = aln[p, 1]
                    ptr[i + 1] += 1
            for k in range(7):
                local[k] = 0
            local[0] = ent_off[s + 1] - ent_off[s]
            failed = False
            for e in range(ent_off[s], ent_off[s + 1]):
                a = ent[e, 0]
                b = ent[e, 1]
                code = ent_label[e]
                if b <= a or a < 0 or (nl >= 0 and b > nl):
                    failed = True
                    break
                # 1. candidates: touch-and-extend, every candidate a word touches
                ncand = 0
                for i in range(a, _min(b, maxl + 1)):
                    for q in range(ptr[i], ptr[i + 1]):
                        t = recs[q]
                        touched = False
                        for c in range(ncand):
                            if cs[c] <= t < ce[c]:
                                touched = True
                            elif t == ce[c]:
                                ce[c] += 1
                                touched = True
                            elif t == cs[c] - 1:
                                cs[c] -= 1
                                touched = True
                        if not touched:
                            cs[ncand] = t
                            ce[ncand] = t + 1
                            ncand += 1
                if ncand == 0:
                    local[3] += 1
                    continue
                for c in range(ncand):
                    order[c] = c
                nkeep = ncand
                # 2. merge: stable insertion sort by start, then fold neighbours
                if merge_distance > 0:
                    for c in range(1, ncand):
                        cur = order[c]
                        k = c - 1
                        while k >= 0 and cs[order[k]] > cs[cur]:
                            order[k + 1] = order[k]
                            k -= 1
                        order[k + 1] = cur
                    nkeep = 1
                    for c in range(1, ncand):
                        cur = order[c]
                        k = order[nkeep - 1]
                        if cs[cur] - ce[k] > merge_distance:
                            order[nkeep] = cur
                            nkeep += 1
                        elif compat:
                            ce[k] = ce[cur]
                        else:
                            ce[k] = _max(ce[k], ce[cur])
                # 3. length-ratio filter, 4. labels
                written = 0
                for c in range(nkeep):
                    k = order[c]
                    if not (<double>(ce[k] - cs[k]) / <double>(b - a) > length_ratio):
                        local[4] += 1
                        continue
                    if cs[k] < 0 or ce[k] > n:
                        failed = True
                        break
                    busy = False
                    for w in range(cs[k], ce[k]):
                        if out[o + w] != 0:
                            busy = True
                            break
                    if busy:
                        local[5] += 1
                        if not compat:
                            continue
                    out[o + cs[k]] = 2 * code + 1
                    for w in range(cs[k] + 1, ce[k]):
                        out[o + w] = 2 * code + 2
                    written += 1
                if failed:
                    break
                local[2] += written
                if written:
                    local[1] += 1
            if failed:
                for w in range(n):
                    out[o + w] = 0
                stats[0] += local[0]
                stats[6] += 1
            else:
                for k in range(6):
                    stats[k] += local[k]


cdef i64 _window(i64 s, const i64[::1] cand_off, const i64[:, ::1] cand,
                 const i64[::1] aln_off, const i64[:, ::1] aln, i64 n, i64* lo) noexcept nogil:
    """Receiving coordinate window [lo, lo+width) holding every candidate and pair index."""
    cdef i64 low = 0, high = n, c, p
    for c in range(cand_off[s], cand_off[s + 1]):
        low = _min(low, cand[c, 0])
        high = _max(high, cand[c, 1])
    for p in range(aln_off[s], aln_off[s + 1]):
        low = _min(low, aln[p, 1])
        high = _max(high, aln[p, 1] + 1)
    lo[0] = low
    return high - low


cdef void _scores(i64 s, const i64[::1] ent_off, const i64[:, ::1] ent,
                  const i64[::1] cand_off, const i64[:, ::1] cand, const i64[::1] aln_off,
                  const i64[:, ::1] aln, i64 lo, i64 width, i64[::1] prefix,
                  double* out) noexcept nogil:
    """Scores of sentence s, row-major (entities x candidates), from per-entity prefix sums."""
    cdef i64 e, c, p, j, a, b, kk, nc = cand_off[s + 1] - cand_off[s]
    cdef i64 row = 0
    for e in range(ent_off[s], ent_off[s + 1]):
        a = ent[e, 0]
        b = ent[e, 1]
        for j in range(width + 1):
            prefix[j] = 0
        for p in range(aln_off[s], aln_off[s + 1]):
            if a <= aln[p, 0] < b:
                prefix[aln[p, 1] - lo + 1] += 1
        for j in range(1, width + 1):
            prefix[j] += prefix[j - 1]
        for c in range(cand_off[s], cand_off[s + 1]):
            kk = 0
            if cand[c, 1] > cand[c, 0]:
                kk = prefix[cand[c, 1] - lo] - prefix[cand[c, 0] - lo]
            if kk > 0:
                out[row + c - cand_off[s]] = 2.0 * <double>kk / <double>(
                    (b - a) + (cand[c, 1] - cand[c, 0]))
            else:
                out[row + c - cand_off[s]] = 0.0
        row += nc


cdef i64 _max_width(const i64[::1] cand_off, const i64[:, ::1] cand,
                    const i64[::1] aln_off, const i64[:, ::1] aln,
                    const i64[::1] n_rec) noexcept nogil:
    cdef i64 s, lo, wmax = 0
    for s in range(n_rec.shape[0]):
        wmax = _max(wmax, _window(s, cand_off, cand, aln_off, aln, n_rec[s], &lo))
    return wmax


def scores_kernel(const i64[::1] ent_off, const i64[:, ::1] ent, const i64[::1] cand_off,
                  const i64[:, ::1] cand, const i64[::1] aln_off, const i64[:, ::1] aln,
                  const i64[::1] score_off, double[::1] scores):
    """docs/projection.md scores: ``scores[score_off[s]:]`` holds sentence s's (E, C) matrix row-major."""
    cdef Py_ssize_t S = ent_off.shape[0] - 1
    cdef i64[::1] zeros = np.zeros(S, dtype=np.int64)
    cdef i64 wmax = _max_width(cand_off, cand, aln_off, aln, zeros)
    cdef i64[::1] prefix = np.zeros(wmax + 1, dtype=np.int64)
    cdef i64 s, lo, width
    if scores.shape[0] == 0:
        return
    with nogil:
        for s in range(S):
            width = _window(s, cand_off, cand, aln_off, aln, 0, &lo)
            _scores(s, ent_off, ent, cand_off, cand, aln_off, aln, lo, width, prefix,
                    &scores[score_off[s]])


def greedy_kernel(const i64[::1] ent_off, const i64[:, ::1] ent, const i64[::1] ent_label,
                  const i64[::1] cand_off, const i64[:, ::1] cand, const i64[::1] aln_off,
                  const i64[:, ::1] aln, const i64[::1] n_rec,
                  const i64[::1] lab_off, bint compat, i64[::1] out, i64[::1] stats):
    """docs/projection.md greedy matching over a batch; writes codes in selection order."""
    cdef Py_ssize_t S = n_rec.shape[0]
    cdef i64 s, max_e = 1, max_c = 1, max_ec = 1
    for s in range(S):
        max_e = _max(max_e, ent_off[s + 1] - ent_off[s])
        max_c = _max(max_c, cand_off[s + 1] - cand_off[s])
        max_ec = _max(max_ec, (ent_off[s + 1] - ent_off[s]) * (cand_off[s + 1] - cand_off[s]))
    cdef i64 wmax = _max_width(cand_off, cand, aln_off, aln, n_rec)
    cdef i64[::1] prefix = np.zeros(wmax + 1, dtype=np.int64)
    cdef double[::1] sc = np.zeros(max_ec, dtype=np.float64)
    cdef uint8_t[::1] row_alive = np.zeros(max_e, dtype=np.uint8)
    cdef uint8_t[::1] col_alive = np.zeros(max_c, dtype=np.uint8)
    cdef i64[::1] pick_e = np.zeros(max_e, dtype=np.int64)
    cdef i64[::1] pick_c = np.zeros(max_e, dtype=np.int64)
    cdef i64 e0, c0, ne, nc, n, o, lo, width, e, c, be, bc, bs, bu, npick, q, w, code, matched
    cdef double best, v
    cdef bint failed
    with nogil:
        for s in range(S):
            e0 = ent_off[s]
            c0 = cand_off[s]
            ne = ent_off[s + 1] - e0
            nc = cand_off[s + 1] - c0
            n = n_rec[s]
            o = lab_off[s]
            stats[0] += ne
            stats[1] += nc
            npick = 0
            if ne > 0 and nc > 0:
                width = _window(s, cand_off, cand, aln_off, aln, n, &lo)
                _scores(s, ent_off, ent, cand_off, cand, aln_off, aln, lo, width, prefix,
                        &sc[0])
                for e in range(ne):
                    row_alive[e] = 1
                for c in range(nc):
                    col_alive[c] = 1
                while True:
                    # row-major scan with strict '>': ties go to the lowest entity, then
                    # the lowest candidate (np.argmax over the zeroed matrix)
                    best = 0.0
                    be = -1
                    bc = -1
                    for e in range(ne):
                        if row_alive[e]:
                            for c in range(nc):
                                if col_alive[c]:
                                    v = sc[e * nc + c]
                                    if v > best:
                                        best = v
                                        be = e
                                        bc = c
                    if be < 0:
                        break
                    pick_e[npick] = be
                    pick_c[npick] = bc
                    npick += 1
                    row_alive[be] = 0
                    col_alive[bc] = 0
                    bs = cand[c0 + bc, 0]
                    bu = cand[c0 + bc, 1]
                    for c in range(nc):
                        if _max(bs, cand[c0 + c, 0]) < _min(bu, cand[c0 + c, 1]):
                            col_alive[c] = 0
            matched = 0
            failed = False
            for q in range(npick):
                code = ent_label[e0 + pick_e[q]]
                bs = cand[c0 + pick_c[q], 0]
                for w in range(bs, cand[c0 + pick_c[q], 1]):
                    if w < 0 or w >= n:
                        failed = True
                        break
                    out[o + w] = 2 * code + (1 if w == bs else 2)
                if failed:
                    break
                matched += 1
            stats[2] += matched
            stats[3] += ne - matched
            stats[5] += failed


def ngram_count_kernel(const uint8_t[::1] stop, const i64[::1] word_off, i64 min_words,
                       i64 max_words, i64[::1] counts):
    """Number of n-gram candidates per sentence (``max_words <= 0``: sentence length)."""
    cdef Py_ssize_t S = word_off.shape[0] - 1
    cdef i64 s, w0, n, mx, total, nxt, st, hi
    with nogil:
        for s in range(S):
            w0 = word_off[s]
            n = word_off[s + 1] - w0
            mx = n if max_words <= 0 else max_words
            total = 0
            nxt = n
            for st in range(n - 1, -1, -1):
                if stop[w0 + st]:
                    nxt = st
                hi = _min(_min(st + mx, nxt), n)
                if hi >= st + min_words:
                    total += hi - (st + min_words) + 1
            counts[s] = total


def ngram_fill_kernel(const uint8_t[::1] stop, const i64[::1] word_off, i64 min_words,
                      i64 max_words, const i64[::1] cand_off, i64[:, ::1] cand):
    """Write the n-gram candidates, ordered by start then end, at ``cand_off[s]``."""
    cdef Py_ssize_t S = word_off.shape[0] - 1
    cdef i64 s, w0, n, mx, k, nxt, st, en, hi
    with nogil:
        for s in range(S):
            w0 = word_off[s]
            n = word_off[s + 1] - w0
            mx = n if max_words <= 0 else max_words
            k = cand_off[s]
            for st in range(n):
                nxt = st
                while nxt < n and not stop[w0 + nxt]:
                    nxt += 1
                hi = _min(_min(st + mx, nxt), n)
                for en in range(st + min_words, hi + 1):
                    cand[k, 0] = st
                    cand[k, 1] = en
                    k += 1


def first_bad_span(const i64[::1] off, const i64[:, ::1] spans, const i64[::1] limit):
    """Flat index of the first span not in ``0 <= start < end <= limit[s]`` (limit < 0: no
    upper bound), or -1."""
    cdef Py_ssize_t S = off.shape[0] - 1
    cdef i64 s, k, r = -1
    with nogil:
        for s in range(S):
            for k in range(off[s], off[s + 1]):
                if spans[k, 0] < 0 or spans[k, 1] <= spans[k, 0] or (
                        limit[s] >= 0 and spans[k, 1] > limit[s]):
                    r = k
                    break
            if r >= 0:
                break
    return r


def first_bad_pair(const i64[::1] off, const i64[:, ::1] pairs, const i64[::1] n_lab,
                   const i64[::1] n_rec):
    """Flat index of the first pair not in ``[0, n_lab[s]) x [0, n_rec[s])`` (n_lab < 0: no
    upper bound), or -1."""
    cdef Py_ssize_t S = off.shape[0] - 1
    cdef i64 s, k, r = -1
    with nogil:
        for s in range(S):
            for k in range(off[s], off[s + 1]):
                if pairs[k, 0] < 0 or pairs[k, 1] < 0 or pairs[k, 1] >= n_rec[s] or (
                        n_lab[s] >= 0 and pairs[k, 0] >= n_lab[s]):
                    r = k
                    break
            if r >= 0:
                break
    return r


# --------------------------------------------------------------------------- the list API's edge
# Python lists in, flat arrays out (and codes back to label strings): at ~25 words a sentence
# this conversion costs more than the projection itself, so it runs here, not as Python loops.
# A fast path: on anything but the expected shapes it returns None and the caller's checked
# path (with its error messages) takes over.

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF


cdef inline bint _is_int(object x):
    """An int (a bool is one) or a NumPy integer; anything else goes to the checked path."""
    return type(x) is int or type(x) is bool or isinstance(x, np.integer)


cdef Py_ssize_t _total(list seqs):
    """The summed length of ``seqs``, each a list or tuple; -1 when one is anything else."""
    cdef Py_ssize_t total = 0
    cdef object a
    for a in seqs:
        if type(a) is not list and type(a) is not tuple:
            return -1
        total += len(a)
    return total


def flat_pairs(list alignments):
    """``(offsets (S+1,), pairs (P, 2))`` int64 of per-sentence lists of 2-tuples or 2-lists
    of ints, or None when one is anything else (an array, a malformed pair)."""
    cdef Py_ssize_t S = len(alignments), s, j, k, total = _total(alignments)
    cdef object a, p, x, y
    cdef tuple tp
    cdef list lp
    if total < 0:
        return None
    off = np.empty(S + 1, dtype=np.int64)
    out = np.empty((total, 2), dtype=np.int64)
    cdef i64[::1] o = off
    cdef i64[:, ::1] q = out
    o[0] = 0
    k = 0
    try:
        for s in range(S):
            a = alignments[s]
            for j in range(len(a)):
                p = (<list>a)[j] if type(a) is list else (<tuple>a)[j]
                if type(p) is tuple:  # the common case, read without the generic item protocol
                    tp = <tuple>p
                    if len(tp) != 2:
                        return None
                    x, y = tp[0], tp[1]
                elif type(p) is list:
                    lp = <list>p
                    if len(lp) != 2:
                        return None
                    x, y = lp[0], lp[1]
                else:
                    return None
                if not (_is_int(x) and _is_int(y)):
                    return None
                q[k, 0] = x
                q[k, 1] = y
                k += 1
            o[s + 1] = k
    except (TypeError, OverflowError):
        return None
    return off, out


def flat_entities(list entities, dict vocab):
    """``(offsets (S+1,), spans (E, 2), ids (E,))`` int64 of per-sentence lists of
    ``(start, end, label)`` tuples (labels numbered in ``vocab`` as they first appear), or None
    when one is anything else."""
    cdef Py_ssize_t S = len(entities), s, k, total = _total(entities)
    cdef object a, e, lab, got
    cdef tuple te
    if total < 0:
        return None
    off = np.empty(S + 1, dtype=np.int64)
    spans = np.empty((total, 2), dtype=np.int64)
    ids = np.empty(total, dtype=np.int64)
    cdef i64[::1] o = off, d = ids
    cdef i64[:, ::1] q = spans
    o[0] = 0
    k = 0
    try:
        for s in range(S):
            a = entities[s]
            for e in a:
                if type(e) is tuple:
                    te = <tuple>e
                elif type(e) is list:
                    te = tuple(e)
                else:
                    return None
                if len(te) != 3 or not (_is_int(te[0]) and _is_int(te[1])):
                    return None
                q[k, 0] = te[0]
                q[k, 1] = te[1]
                lab = te[2]
                got = vocab.get(lab)
                if got is None:
                    got = len(vocab)
                    vocab[lab] = got
                d[k] = got
                k += 1
            o[s + 1] = k
    except (TypeError, OverflowError):
        return None
    return off, spans, ids


def decode(const i64[::1] codes, const i64[::1] offsets, list table):
    """One list of ``table[code]`` per sentence (sentence ``i``: ``codes[offsets[i]:offsets[i+1]]``)."""
    cdef Py_ssize_t S = offsets.shape[0] - 1, s, k, j
    cdef list out = PyList_New(S), row
    cdef object item
    for s in range(S):
        row = PyList_New(offsets[s + 1] - offsets[s])
        j = 0
        for k in range(offsets[s], offsets[s + 1]):
            item = table[codes[k]]
            Py_INCREF(item)
            PyList_SET_ITEM(row, j, item)
            j += 1
        Py_INCREF(row)
        PyList_SET_ITEM(out, s, row)
    return out
