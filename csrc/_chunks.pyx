# cython: language_level=3
"""Chunk counting for :mod:`xfast.evaluate` (seqeval 1.2.2 default mode, docs/evaluation.md).

Private kernel: the caller (``xfast.evaluate``) validates shapes and builds the label
tables; this file assumes valid input. Plain-Python twin: ``xfast/_chunks_py.py``.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t

cnp.import_array()

DEF TAG_O = 79      # ord("O")
DEF TAG_DOT = 46    # ord(".")
DEF TAG_B = 66
DEF TAG_I = 73
DEF TAG_E = 69
DEF TAG_S = 83


cdef inline bint _ends(int pt, int t, int ptype, int ty) noexcept nogil:
    if pt == TAG_E or pt == TAG_S:
        return True
    if (pt == TAG_B or pt == TAG_I) and (t == TAG_B or t == TAG_S or t == TAG_O):
        return True
    return pt != TAG_O and pt != TAG_DOT and ptype != ty


cdef inline bint _starts(int pt, int t, int ptype, int ty) noexcept nogil:
    if t == TAG_B or t == TAG_S:
        return True
    if (pt == TAG_E or pt == TAG_S or pt == TAG_O) and (t == TAG_E or t == TAG_I):
        return True
    return t != TAG_O and t != TAG_DOT and ptype != ty


cdef Py_ssize_t _chunk(const int32_t[::1] ids, const int64_t[::1] offsets,
                       const uint8_t[::1] tag_of, const int32_t[::1] type_of,
                       int32_t sep_type,
                       int32_t[::1] c_type, int64_t[::1] c_start, int64_t[::1] c_end) noexcept nogil:
    """Write the chunks of all sentences; positions count one separator after each sentence."""
    cdef Py_ssize_t n_sent = offsets.shape[0] - 1
    cdef Py_ssize_t s, k, n = 0
    cdef int64_t pos = 0, begin = 0
    cdef int pt = TAG_O, t
    cdef int32_t ptype = -1, ty   # -1 plays seqeval's initial prev_type ''
    for s in range(n_sent):
        for k in range(offsets[s], offsets[s + 1] + 1):
            if k < offsets[s + 1]:
                t = tag_of[ids[k]]
                ty = type_of[ids[k]]
            else:  # the 'O' seqeval appends after every sentence
                t = TAG_O
                ty = sep_type
            if _ends(pt, t, ptype, ty):
                c_type[n] = ptype
                c_start[n] = begin
                c_end[n] = pos - 1
                n += 1
            if _starts(pt, t, ptype, ty):
                begin = pos
            pt = t
            ptype = ty
            pos += 1
    return n


def count(const int32_t[::1] gold, const int32_t[::1] pred, const int64_t[::1] offsets,
          const uint8_t[::1] tag_of, const int32_t[::1] type_of, int32_t sep_type, int n_types):
    """Return ``(tp, n_true, n_pred, correct_tokens)`` per type id, as seqeval counts them."""
    cdef Py_ssize_t cap = gold.shape[0] + offsets.shape[0] + 1
    cdef cnp.ndarray[int32_t, ndim=1] gt = np.empty(cap, np.int32), pt = np.empty(cap, np.int32)
    cdef cnp.ndarray[int64_t, ndim=1] gs = np.empty(cap, np.int64), ps = np.empty(cap, np.int64)
    cdef cnp.ndarray[int64_t, ndim=1] ge = np.empty(cap, np.int64), pe = np.empty(cap, np.int64)
    cdef cnp.ndarray[int64_t, ndim=1] tp = np.zeros(n_types, np.int64)
    cdef cnp.ndarray[int64_t, ndim=1] nt = np.zeros(n_types, np.int64)
    cdef cnp.ndarray[int64_t, ndim=1] npr = np.zeros(n_types, np.int64)
    cdef int32_t[::1] gt_v = gt, pt_v = pt
    cdef int64_t[::1] gs_v = gs, ps_v = ps, ge_v = ge, pe_v = pe
    cdef int64_t[::1] tp_v = tp, nt_v = nt, np_v = npr
    cdef Py_ssize_t ng, nq, a = 0, b = 0, k
    cdef int64_t correct = 0
    with nogil:
        ng = _chunk(gold, offsets, tag_of, type_of, sep_type, gt_v, gs_v, ge_v)
        nq = _chunk(pred, offsets, tag_of, type_of, sep_type, pt_v, ps_v, pe_v)
        for k in range(ng):
            nt_v[gt_v[k]] += 1
        for k in range(nq):
            np_v[pt_v[k]] += 1
        # chunk ends strictly increase on each side, so one merge pass finds equal chunks
        while a < ng and b < nq:
            if ge_v[a] < pe_v[b]:
                a += 1
            elif ge_v[a] > pe_v[b]:
                b += 1
            else:
                if gs_v[a] == ps_v[b] and gt_v[a] == pt_v[b]:
                    tp_v[gt_v[a]] += 1
                a += 1
                b += 1
        for k in range(gold.shape[0]):
            correct += gold[k] == pred[k]
    return tp, nt, npr, int(correct)


def ratio_sum(const int32_t[::1] gold, const int32_t[::1] pred, const int64_t[::1] offsets,
              const uint8_t[::1] is_b, double total):
    """``total`` plus, sentence by sentence in order, ``#B pred / #B gold`` (1.0 or 0.0 when
    gold has none): the running sum behind ``proj_ratio``. ``is_b[id]`` marks ``B-`` ids."""
    cdef Py_ssize_t s, k
    cdef int64_t ng, npr
    with nogil:
        for s in range(offsets.shape[0] - 1):
            ng = 0
            npr = 0
            for k in range(offsets[s], offsets[s + 1]):
                ng += is_b[gold[k]]
                npr += is_b[pred[k]]
            total += (<double>npr / <double>ng) if ng else (1.0 if npr == 0 else 0.0)
    return total
