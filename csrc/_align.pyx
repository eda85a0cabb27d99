# cython: language_level=3
"""Alignment extraction kernels owned by :mod:`xfast.align` (docs/alignment.md).

Private: :mod:`xfast.align` validates every input once and calls these with contiguous
rows, finite-checked sizes and a method code; ``_align_py`` is the plain-Python twin with
the same functions and results. The per-matrix work runs without the GIL.

Pairs are packed as ``row << 32 | col`` codes while a matrix is processed, so sorting a
matrix's pairs is sorting int64 codes, and unpacking one needs no division.
"""

from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF
cimport numpy as cnp
from libc.math cimport INFINITY, exp
from libc.stdint cimport INT64_MAX, int32_t, int64_t
from libc.stdlib cimport calloc, free, malloc, qsort, realloc
from libc.string cimport memcpy, memset

import numpy as np

cdef extern from "numpy/arrayobject.h":
    # steals a reference to descr
    object PyArray_NewFromDescr(PyTypeObject* subtype, cnp.dtype descr, int nd,
                                cnp.npy_intp* dims, cnp.npy_intp* strides, void* data,
                                int flags, object obj)

cnp.import_array()

ctypedef fused real:
    float
    double

# method codes: the index of the name in xfast.align._align_py.METHODS
cdef enum:
    FWD = 0
    REV = 1
    INTER = 2
    ITERMAX = 3
    MWMF = 4
    SOFTMAX = 5


cdef struct Params:
    int method
    Py_ssize_t max_count
    double w1          # itermax weight of a cell with exactly one free side
    double w2          # itermax weight of a cell with two free sides
    double threshold   # softmax
    bint swap          # emit (col, row) word pairs instead of (row, col)


cdef struct Work:
    int32_t* rowarg
    int32_t* colarg
    int32_t* newrow    # itermax: new pairs of a round
    double* colbest
    double* wv0        # itermax: per-column weights for a taken row
    double* wv1        # ... and for a free row
    char* rfree
    char* cfree
    # mwmf (shortest augmenting path)
    double* u
    double* v
    double* spc
    int32_t* path
    int32_t* col4row
    int32_t* row4col
    int32_t* remaining
    char* sr
    char* sc
    # softmax
    double* rsum
    double* csum
    double* rmax
    bint nonneg        # the last float pass saw no sign bit set (AVX2 passes only)
    # pair codes of one matrix, and their word codes
    int64_t* codes
    int64_t* wcodes


cdef struct Out:
    int32_t* data
    Py_ssize_t n       # pairs written
    Py_ssize_t cap     # pairs that fit


cdef inline int64_t _code(Py_ssize_t row, Py_ssize_t col) noexcept nogil:
    return (<int64_t>row << 32) | col


cdef inline int32_t _hi(int64_t code) noexcept nogil:
    return <int32_t>(code >> 32)


cdef inline int32_t _lo(int64_t code) noexcept nogil:
    return <int32_t>(code & <int64_t>0xffffffff)


cdef int _cmp_i64(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const int64_t*>a)[0]
    cdef int64_t y = (<const int64_t*>b)[0]
    return (x > y) - (x < y)


# the C passes: csrc/_align_simd.h (its comments document them)
cdef extern from "_align_simd.h":
    int XF_PAD
    Py_ssize_t xf_fetch_add(Py_ssize_t* p, Py_ssize_t v) nogil
    int xf_load(int* p) nogil
    void xf_store(int* p, int v) nogil
    int xf_join(int* gate) nogil
    int xf_close(int* gate) nogil
    void xf_done(int* finished) nogil
    void xf_wait(int* finished, int n) nogil
    int xf_simd(int level) nogil
    int XF_AHEAD
    void xf_prefetch(const char* p, Py_ssize_t m, Py_ssize_t row_bytes, Py_ssize_t ld_bytes) nogil
    int xf_nonfinite_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld) nogil
    int xf_nonfinite_d(const double* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld) nogil
    int xf_pass_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                  int32_t* rowarg, int32_t* colarg, float* cb) nogil
    int xf_pass_d(const double* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                  int32_t* rowarg, int32_t* colarg, double* cb) nogil
    int xf_wpass_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                   const char* rfree, const double* wv0, const double* wv1, double* tmp,
                   int32_t* rowarg, int32_t* colarg, double* cb) nogil
    Py_ssize_t xf_wround_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                           const char* rfree, const char* cfree, double w1, double w2,
                           const double* wv0, const double* wv1, int32_t* rows, int32_t* trows,
                           float* bf, int32_t* af, float* bt, int32_t* at, char* need,
                           int32_t* rowarg, int32_t* colarg, int32_t* newrow, int first,
                           int nonneg) nogil
    int xf_wpass_d(const double* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                   const char* rfree, const double* wv0, const double* wv1, double* tmp,
                   int32_t* rowarg, int32_t* colarg, double* cb) nogil


cdef inline bint _nonfinite(const real* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld) noexcept nogil:
    if real is float:
        return xf_nonfinite_f(s, m, n, ld)
    else:
        return xf_nonfinite_d(s, m, n, ld)


cdef inline bint _argmax_pass(const real* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                              Work* w) noexcept nogil:
    """Row-wise and column-wise argmax, first index on ties (numpy's argmax); True when a
    value is NaN or infinite. Records in ``w.nonneg`` whether the pass knows every value's
    sign bit to be clear."""
    cdef int st
    if real is float:
        st = xf_pass_f(s, m, n, ld, w.rowarg, w.colarg, <float*>w.colbest)
    else:
        st = xf_pass_d(s, m, n, ld, w.rowarg, w.colarg, w.colbest)
    w.nonneg = (st & 2) != 0
    return (st & 1) != 0


cdef inline void _weighted_argmax_pass(const real* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                                       Work* w) noexcept nogil:
    """Argmax of ``sim * weight`` (weight per cell from the free rows and columns)."""
    if real is float:
        xf_wpass_f(s, m, n, ld, w.rfree, w.wv0, w.wv1, w.rsum, w.rowarg, w.colarg, w.colbest)
    else:
        xf_wpass_d(s, m, n, ld, w.rfree, w.wv0, w.wv1, w.rsum, w.rowarg, w.colarg, w.colbest)


cdef Py_ssize_t _itermax_rounds(const real* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                                const Params* p, Work* w, Py_ssize_t k) noexcept nogil:
    """Extend the ``k`` sorted inter codes in ``w.codes`` by SimAlign's itermax rounds,
    keeping them sorted: a round's pairs come in row order, and are merged in."""
    cdef Py_ssize_t i, j, t, count, added, a, b, k0
    # free rows and columns: an inter pair takes one row and one column of its own
    cdef Py_ssize_t nfr = m - k, nfc = n - k
    cdef int64_t x, y
    cdef bint take
    cdef char* rfree = w.rfree
    cdef char* cfree = w.cfree
    # a column's weights by whether it is free: a table, not a branch on the data
    cdef double wsel0[2]
    cdef double wsel1[2]
    wsel0[0] = 0.0
    wsel0[1] = p.w1
    wsel1[0] = p.w1
    wsel1[1] = p.w2
    memset(rfree, 1, m)
    memset(cfree, 1, n)
    for t in range(k):
        rfree[_hi(w.codes[t])] = 0
        cfree[_lo(w.codes[t])] = 0
    count = 1
    while count < p.max_count:
        if nfr == 0 or nfc == 0:
            break
        for j in range(n):
            w.wv0[j] = wsel0[cfree[j] != 0]
            w.wv1[j] = wsel1[cfree[j] != 0]
        added = -1
        if real is float:
            added = xf_wround_f(s, m, n, ld, w.rfree, w.cfree, p.w1, p.w2, w.wv0, w.wv1,
                                w.path, w.remaining, <float*>w.u, w.col4row, <float*>w.v,
                                w.row4col, w.sr, w.rowarg, w.colarg, w.newrow, count == 1,
                                w.nonneg)
        if added < 0:
            _weighted_argmax_pass(s, m, n, ld, w)
            added = 0
            for i in range(m):
                j = w.rowarg[i]
                w.newrow[added] = <int32_t>i
                added += (w.colarg[j] == i) & ((w.rfree[i] | w.cfree[j]) != 0)
        if added == 0:
            break
        if p.max_count == 2:
            # the only round (SimAlign's default): both runs hold at most one pair per row,
            # so the sorted union is built row by row, without a merge's dependent loads
            for i in range(m):
                w.path[i] = -1
                w.remaining[i] = -1
            for t in range(k):
                w.path[_hi(w.codes[t])] = _lo(w.codes[t])
            for t in range(added):
                i = w.newrow[t]
                w.remaining[i] = w.rowarg[i]
            k = 0
            for i in range(m):
                a = min(w.path[i], w.remaining[i])
                b = max(w.path[i], w.remaining[i])
                w.codes[k] = _code(i, a)
                k += a >= 0
                w.codes[k] = _code(i, b)
                k += b >= 0
            break
        k0 = k
        for t in range(added):
            i = w.newrow[t]
            j = w.rowarg[i]
            w.codes[k] = _code(i, j)
            k += 1
            nfr -= rfree[i]
            nfc -= cfree[j]
            rfree[i] = 0
            cfree[j] = 0
        # merge the sorted runs [0, k0) and [k0, k) (no pair is in both) without branching
        # on the data: run A is copied out, and both runs end in a sentinel
        memcpy(w.wcodes, w.codes, k0 * sizeof(int64_t))
        w.wcodes[k0] = INT64_MAX
        w.codes[k] = INT64_MAX
        a = 0
        b = k0
        for t in range(k):
            x = w.wcodes[a]
            y = w.codes[b]
            take = x < y
            w.codes[t] = x if take else y
            a += take
            b += 1 - take
        count += 1
    return k


cdef Py_ssize_t _mwmf(const real* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld, Work* w) noexcept nogil:
    """Maximum-weight matching of min(m, n) pairs: shortest augmenting paths
    (Jonker-Volgenant, as Crouse 2016 describes it) on the cost ``-sim``.

    Returns the pair count, or -1 when the costs overflow.
    """
    cdef bint tr = m > n
    cdef Py_ssize_t nr = n if tr else m
    cdef Py_ssize_t nc = m if tr else n
    cdef Py_ssize_t cur, i, j, it, index, nrem, sink, tmp
    cdef double minval, lowest, r, cost
    for i in range(nr):
        w.u[i] = 0.0
        w.col4row[i] = -1
    for j in range(nc):
        w.v[j] = 0.0
        w.row4col[j] = -1
    for cur in range(nr):
        minval = 0.0
        nrem = nc
        for it in range(nc):
            w.remaining[it] = <int32_t>(nc - 1 - it)
            w.spc[it] = INFINITY
        memset(w.sr, 0, <size_t>nr)
        memset(w.sc, 0, <size_t>nc)
        sink = -1
        i = cur
        while sink == -1:
            w.sr[i] = 1
            index = -1
            lowest = INFINITY
            for it in range(nrem):
                j = w.remaining[it]
                cost = -(<double>(s[j * ld + i] if tr else s[i * ld + j]))
                r = minval + cost - w.u[i] - w.v[j]
                if r < w.spc[j]:
                    w.path[j] = <int32_t>i
                    w.spc[j] = r
                # among equal lowest costs prefer a free column: it ends the path
                if w.spc[j] < lowest or (w.spc[j] == lowest and w.row4col[j] == -1):
                    lowest = w.spc[j]
                    index = it
            if index < 0:
                return -1
            minval = lowest
            j = w.remaining[index]
            if w.row4col[j] == -1:
                sink = j
            else:
                i = w.row4col[j]
            w.sc[j] = 1
            nrem -= 1
            w.remaining[index] = w.remaining[nrem]
        w.u[cur] += minval
        for i in range(nr):
            if w.sr[i] and i != cur:
                w.u[i] += minval - w.spc[w.col4row[i]]
        for j in range(nc):
            if w.sc[j]:
                w.v[j] -= minval - w.spc[j]
        j = sink
        while True:
            i = w.path[j]
            w.row4col[j] = <int32_t>i
            tmp = w.col4row[i]
            w.col4row[i] = <int32_t>j
            j = tmp
            if i == cur:
                break
    for i in range(nr):
        j = w.col4row[i]
        w.codes[i] = _code(j, i) if tr else _code(i, j)
    if tr:
        qsort(w.codes, nr, sizeof(int64_t), _cmp_i64)
    return nr


cdef Py_ssize_t _softmax(const real* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                         double threshold, Work* w) noexcept nogil:
    """AWESoME: keep (i, j) where the row softmax and the column softmax both exceed
    ``threshold`` (strictly). Computed in double."""
    cdef Py_ssize_t i, j, k = 0
    cdef const real* row
    cdef double x, best
    for j in range(n):
        w.colbest[j] = s[j]
        w.csum[j] = 0.0
    for i in range(m):
        row = s + i * ld
        best = row[0]
        for j in range(n):
            x = row[j]
            if x > best:
                best = x
            if x > w.colbest[j]:
                w.colbest[j] = x
        w.rmax[i] = best
    for i in range(m):
        row = s + i * ld
        w.rsum[i] = 0.0
        for j in range(n):
            w.rsum[i] += exp(<double>row[j] - w.rmax[i])
            w.csum[j] += exp(<double>row[j] - w.colbest[j])
    for i in range(m):
        row = s + i * ld
        for j in range(n):
            if (exp(<double>row[j] - w.rmax[i]) / w.rsum[i] > threshold
                    and exp(<double>row[j] - w.colbest[j]) / w.csum[j] > threshold):
                w.codes[k] = _code(i, j)
                k += 1
    return k


cdef Py_ssize_t _extract_one(const real* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                             const Params* p, Work* w) noexcept nogil:
    """Sorted pair codes of one matrix into ``w.codes``; returns their count, -1 when the
    matching failed, -2 when a value is NaN or infinite."""
    cdef Py_ssize_t i, j, k = 0
    if m == 0 or n == 0:
        return 0
    if p.method == MWMF or p.method == SOFTMAX:
        if _nonfinite(s, m, n, ld):
            return -2
        if p.method == MWMF:
            return _mwmf(s, m, n, ld, w)
        return _softmax(s, m, n, ld, p.threshold, w)
    if _argmax_pass(s, m, n, ld, w):
        return -2
    if p.method == FWD:
        for i in range(m):
            w.codes[i] = _code(i, w.rowarg[i])
        return m
    if p.method == REV:
        # counting sort by row; columns stay ascending within a row
        memset(w.newrow, 0, (m + 1) * sizeof(int32_t))
        for j in range(n):
            w.newrow[w.colarg[j] + 1] += 1
        for i in range(m):
            w.newrow[i + 1] += w.newrow[i]
        for j in range(n):
            i = w.colarg[j]
            w.codes[w.newrow[i]] = _code(i, j)
            w.newrow[i] += 1
        return n
    for i in range(m):  # no branch on the data: a miss is overwritten
        j = w.rowarg[i]
        w.codes[k] = _code(i, j)
        k += w.colarg[j] == i
    if p.method == ITERMAX and m > 2 and n > 2:
        k = _itermax_rounds(s, m, n, ld, p, w, k)
    return k


cdef int _emit(Out* out, Py_ssize_t add) noexcept nogil:
    cdef Py_ssize_t cap
    cdef int32_t* data
    if out.n + add <= out.cap:
        return 0
    cap = 2 * out.cap
    if cap < out.n + add:
        cap = out.n + add
    data = <int32_t*>realloc(out.data, 2 * cap * sizeof(int32_t))
    if data == NULL:
        return -1
    out.data = data
    out.cap = cap
    return 0


cdef Py_ssize_t _drive(const real** ptrs, const Py_ssize_t* ms, const Py_ssize_t* ns,
                       const Py_ssize_t* lds, const int32_t** rw, const int32_t** cw,
                       Py_ssize_t b0, Py_ssize_t b1, const Params* p, Work* w, Out* out,
                       int64_t* counts, int64_t* offs) noexcept nogil:
    """Extract matrices ``b0 .. b1 - 1`` into ``out``: matrix b's pairs start at pair
    ``offs[b]`` of it; with word maps, emit sorted unique word pairs.

    Returns -1 when done, else the index of the matrix that failed (non-finite values
    first: -2 - index), with ``counts`` filled up to it.
    """
    cdef Py_ssize_t b, k, t, m, n, a, c, before, i, j
    cdef int64_t code, prev
    cdef int32_t x
    cdef int32_t* dst
    for b in range(b0, b1):
        m = ms[b]
        n = ns[b]
        offs[b] = out.n
        if b + 1 < b1:
            xf_prefetch(<const char*>ptrs[b + 1], min(ms[b + 1], XF_AHEAD),
                        ns[b + 1] * sizeof(real), lds[b + 1] * sizeof(real))
        if rw == NULL and p.method == INTER and m and n:
            # pairs straight into the output, no sorted codes in between (+ 1: a miss is
            # written one past the last pair, then overwritten)
            if _emit(out, min(m, n) + 1) < 0:
                return b
            if _argmax_pass(ptrs[b], m, n, lds[b], w):
                return -2 - b
            dst = out.data + 2 * out.n
            k = 0
            for i in range(m):
                j = w.rowarg[i]
                dst[2 * k] = <int32_t>i
                dst[2 * k + 1] = <int32_t>j
                k += w.colarg[j] == i
            out.n += k
            counts[b] = k
            continue
        k = _extract_one(ptrs[b], m, n, lds[b], p, w)
        if k == -2:
            return -2 - b
        if k < 0:
            return b
        if _emit(out, k) < 0:
            return b
        before = out.n
        if rw == NULL:
            for t in range(k):
                out.data[2 * out.n] = _hi(w.codes[t])
                out.data[2 * out.n + 1] = _lo(w.codes[t])
                out.n += 1
        else:
            c = 0
            for t in range(k):
                a = rw[b][_hi(w.codes[t])]
                x = cw[b][_lo(w.codes[t])]
                if a < 0 or x < 0:
                    continue
                w.wcodes[c] = _code(x, a) if p.swap else _code(a, x)
                c += 1
            qsort(w.wcodes, c, sizeof(int64_t), _cmp_i64)
            prev = -1
            for t in range(c):
                code = w.wcodes[t]
                if code == prev:
                    continue
                prev = code
                out.data[2 * out.n] = _hi(code)
                out.data[2 * out.n + 1] = _lo(code)
                out.n += 1
        counts[b] = out.n - before
    return -1


cdef Py_ssize_t _capacity(const Params* p, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """Most pairs one m x n matrix can give."""
    cdef Py_ssize_t lo = m if m < n else n
    if p.method == FWD:
        return m
    if p.method == REV:
        return n
    if p.method == ITERMAX and p.max_count < m * n // (lo if lo > 0 else 1):
        return p.max_count * lo
    if p.method == INTER or p.method == MWMF:
        return lo
    return m * n


cdef int _alloc_work(Work* w, Py_ssize_t big, Py_ssize_t cap) noexcept nogil:
    # + 1: REV's row counts; whole blocks for the AVX-512 column state
    cdef Py_ssize_t L = (big + 1 + XF_PAD - 1) // XF_PAD * XF_PAD + XF_PAD
    if cap < 1:
        cap = 1
    w.rowarg = <int32_t*>malloc(L * sizeof(int32_t))
    w.colarg = <int32_t*>calloc(L, sizeof(int32_t))
    w.newrow = <int32_t*>malloc(L * sizeof(int32_t))
    w.colbest = <double*>calloc(L, sizeof(double))
    w.wv0 = <double*>calloc(L, sizeof(double))
    w.wv1 = <double*>calloc(L, sizeof(double))
    w.rfree = <char*>malloc(L)
    w.cfree = <char*>malloc(L)
    w.u = <double*>malloc(L * sizeof(double))
    w.v = <double*>malloc(L * sizeof(double))
    w.spc = <double*>malloc(L * sizeof(double))
    w.path = <int32_t*>malloc(L * sizeof(int32_t))
    w.col4row = <int32_t*>malloc(L * sizeof(int32_t))
    w.row4col = <int32_t*>malloc(L * sizeof(int32_t))
    w.remaining = <int32_t*>malloc(L * sizeof(int32_t))
    w.sr = <char*>malloc(L)
    w.sc = <char*>malloc(L)
    w.rsum = <double*>malloc(L * sizeof(double))
    w.csum = <double*>malloc(L * sizeof(double))
    w.rmax = <double*>malloc(L * sizeof(double))
    # + 1: itermax's merge ends both runs in a sentinel
    w.codes = <int64_t*>malloc((cap + 1) * sizeof(int64_t))
    w.wcodes = <int64_t*>malloc((cap + 1) * sizeof(int64_t))
    if (w.rowarg == NULL or w.colarg == NULL or w.newrow == NULL or w.colbest == NULL
            or w.wv0 == NULL or w.wv1 == NULL or w.rfree == NULL or w.cfree == NULL
            or w.u == NULL or w.v == NULL or w.spc == NULL or w.path == NULL
            or w.col4row == NULL or w.row4col == NULL or w.remaining == NULL
            or w.sr == NULL or w.sc == NULL or w.rsum == NULL or w.csum == NULL
            or w.rmax == NULL or w.codes == NULL or w.wcodes == NULL):
        return -1
    return 0


cdef void _free_work(Work* w) noexcept nogil:
    free(w.rowarg); free(w.colarg); free(w.newrow); free(w.colbest); free(w.wv0)
    free(w.wv1); free(w.rfree); free(w.cfree); free(w.u); free(w.v); free(w.spc)
    free(w.path); free(w.col4row); free(w.row4col); free(w.remaining); free(w.sr)
    free(w.sc); free(w.rsum); free(w.csum); free(w.rmax); free(w.codes); free(w.wcodes)


cdef struct Shared:
    # one batch, extracted by the calling thread and any pool threads that join in time
    const void** ptrs
    const Py_ssize_t* ms
    const Py_ssize_t* ns
    const Py_ssize_t* lds
    const int32_t** rw
    const int32_t** cw
    Py_ssize_t nmat
    Params p
    bint single
    int nt              # participants at most (0: the caller)
    Work* works         # one per participant
    Out* outs
    int32_t* who        # per matrix: the participant that extracted it
    int64_t* offs       # ... its first pair in that participant's output
    int64_t* counts
    Py_ssize_t* fails   # per participant: -1, or the kernel status of its failed matrix
    Py_ssize_t next     # next matrix to claim (atomic)
    int gate            # pool threads that joined; XF_CLOSED once the caller is done (atomic)
    int finished        # pool threads done (atomic)
    int stop            # a matrix failed: claim no more (atomic)


cdef enum:
    CHUNK = 16          # matrices per claim: a few microseconds of work


cdef void _participate(Shared* sh, int pid) noexcept nogil:
    """Claim chunks of matrices until none is left (or one failed)."""
    cdef Py_ssize_t b0, b1, status, b
    while not xf_load(&sh.stop):
        b0 = xf_fetch_add(&sh.next, CHUNK)
        if b0 >= sh.nmat:
            return
        b1 = min(b0 + CHUNK, sh.nmat)
        if sh.single:
            status = _drive[float](<const float**>sh.ptrs, sh.ms, sh.ns, sh.lds, sh.rw, sh.cw,
                                   b0, b1, &sh.p, &sh.works[pid], &sh.outs[pid], sh.counts,
                                   sh.offs)
        else:
            status = _drive[double](<const double**>sh.ptrs, sh.ms, sh.ns, sh.lds, sh.rw,
                                    sh.cw, b0, b1, &sh.p, &sh.works[pid], &sh.outs[pid],
                                    sh.counts, sh.offs)
        for b in range(b0, b1):
            sh.who[b] = pid
        if status != -1:
            sh.fails[pid] = status
            xf_store(&sh.stop, 1)
            return


cdef class _Batch:
    """A batch shared by the calling thread and pool threads: each claims chunks of
    matrices as it arrives, so a pool thread that wakes late costs nothing; the caller
    waits only for threads that joined, and then for at most one chunk each."""
    cdef Shared sh
    cdef object keep

    def __cinit__(self):
        memset(&self.sh, 0, sizeof(Shared))

    def __dealloc__(self):
        cdef int t
        if self.sh.works != NULL:
            for t in range(self.sh.nt):
                _free_work(&self.sh.works[t])
                free(self.sh.outs[t].data)
        free(self.sh.works)
        free(self.sh.outs)
        free(self.sh.who)
        free(self.sh.offs)
        free(self.sh.fails)

    def join(self, int pid):
        """Run by a pool thread: help with the batch unless the caller already finished."""
        with nogil:
            if xf_join(&self.sh.gate):
                _participate(&self.sh, pid)
                xf_done(&self.sh.finished)

    cdef int setup(self, object keep, const void** ptrs, const Py_ssize_t* dims,
                   const int32_t** rw, const int32_t** cw, Py_ssize_t nmat, Params* p,
                   bint single, int nt, cnp.ndarray counts) except -1:
        cdef Py_ssize_t b, big = 0, cap = 0, c, total = 0
        cdef int t
        self.keep = keep
        self.sh.ptrs = ptrs
        self.sh.ms = dims
        self.sh.ns = dims + nmat
        self.sh.lds = dims + 2 * nmat
        self.sh.rw = rw
        self.sh.cw = cw
        self.sh.nmat = nmat
        self.sh.p = p[0]
        self.sh.single = single
        self.sh.nt = nt
        self.sh.counts = <int64_t*>cnp.PyArray_DATA(counts)
        for b in range(nmat):
            big = max(big, dims[b], dims[nmat + b])
            c = _capacity(p, dims[b], dims[nmat + b])
            cap = max(cap, c)
            total += min(c, dims[b] + dims[nmat + b]) + 1
        self.sh.works = <Work*>calloc(nt, sizeof(Work))
        self.sh.outs = <Out*>calloc(nt, sizeof(Out))
        self.sh.who = <int32_t*>calloc(max(nmat, 1), sizeof(int32_t))
        self.sh.offs = <int64_t*>calloc(max(nmat, 1), sizeof(int64_t))
        self.sh.fails = <Py_ssize_t*>malloc(nt * sizeof(Py_ssize_t))
        if (self.sh.works == NULL or self.sh.outs == NULL or self.sh.who == NULL
                or self.sh.offs == NULL or self.sh.fails == NULL):
            raise MemoryError()
        for t in range(nt):
            self.sh.fails[t] = -1
            self.sh.outs[t].cap = max(total // nt + 64, 1) if t else max(total, 1)
            self.sh.outs[t].data = <int32_t*>malloc(2 * self.sh.outs[t].cap * sizeof(int32_t))
            if self.sh.outs[t].data == NULL or _alloc_work(&self.sh.works[t], big, cap) < 0:
                raise MemoryError()
        return 0

    cdef object finish(self):
        """The caller's share, then the pairs of every matrix in order."""
        cdef Py_ssize_t b, b0, c, status = -1, first = self.sh.nmat, f, fb, total = 0, pos = 0
        cdef int joined, t
        cdef cnp.ndarray pairs
        cdef int32_t* dst
        with nogil:
            _participate(&self.sh, 0)
            joined = xf_close(&self.sh.gate)
            xf_wait(&self.sh.finished, joined)
        for t in range(self.sh.nt):
            f = self.sh.fails[t]
            if f != -1:
                fb = -2 - f if f < -1 else f
                if fb < first:
                    first = fb
                    status = f
        if status != -1:
            return np.empty((0, 2), dtype=np.int32), status
        for b in range(self.sh.nmat):
            total += self.sh.counts[b]
        pairs = np.empty((total, 2), dtype=np.int32)
        dst = <int32_t*>cnp.PyArray_DATA(pairs)
        if joined == 0:  # the caller did everything: its output is in order
            if total:
                memcpy(dst, self.sh.outs[0].data, 2 * total * sizeof(int32_t))
            return pairs, status
        with nogil:  # a chunk's pairs lie together in the output of the thread that took it
            b0 = 0
            while b0 < self.sh.nmat:
                c = 0
                for b in range(b0, min(b0 + <Py_ssize_t>CHUNK, self.sh.nmat)):
                    c += self.sh.counts[b]
                memcpy(dst + 2 * pos, self.sh.outs[self.sh.who[b0]].data + 2 * self.sh.offs[b0],
                       2 * c * sizeof(int32_t))
                pos += c
                b0 += CHUNK
        return pairs, status


cdef object _run(object keep, const void** ptrs, const Py_ssize_t* dims, const int32_t** rw,
                 const int32_t** cw, Py_ssize_t nmat, Params* p, bint single, int n_threads,
                 object submit):
    """Extract a batch with the caller and ``n_threads - 1`` pool threads (``submit``)."""
    cdef cnp.ndarray counts = np.zeros(nmat, dtype=np.int64)
    cdef _Batch batch = _Batch()
    cdef int t, nt = 1 if submit is None else max(1, min(n_threads, (nmat + CHUNK - 1) // CHUNK))
    batch.setup(keep, ptrs, dims, rw, cw, nmat, p, single, nt, counts)
    for t in range(1, nt):
        try:
            submit(batch.join, t)
        except RuntimeError:  # the pool is shut down (interpreter exit): work alone
            break
    pairs, status = batch.finish()
    return pairs, counts, status


cdef Params _params(int method, Py_ssize_t max_count, double w1, double w2, double threshold,
                    bint swap):
    cdef Params p
    p.method = method
    p.max_count = max_count
    p.w1 = w1
    p.w2 = w2
    p.threshold = threshold
    p.swap = swap
    return p


def _simd(int level=-1):
    """The passes in use: 0 the portable scans, 1 AVX2, 2 AVX-512. ``level`` >= 0 picks
    the best up to it that the CPU has (tests and benchmarks only: not thread-safe against
    running kernels); -1 leaves them."""
    return xf_simd(level)


def extract_list(list mats, int method, Py_ssize_t max_count, double w1, double w2,
                 double threshold, list row_words=None, list col_words=None, bint swap=False,
                 int n_threads=1, object submit=None):
    """Extract pairs from each 2-D array of ``mats``.

    ``mats``: one dtype (float32 or float64), unit column stride. With ``row_words`` and
    ``col_words`` (int32 arrays, one entry per row / column, negative: no word) the result
    is each matrix's sorted unique word pairs, ``(col word, row word)`` when ``swap``.
    With ``submit`` (a thread pool's ``submit``), up to ``n_threads - 1`` pool threads help.
    Returns ``(pairs int32 (K, 2), counts int64 (len(mats),), status)``; ``status`` is -1,
    or ``-2 - b`` when matrix ``b`` holds NaN or inf, or ``b`` when matrix ``b`` failed.
    """
    cdef Py_ssize_t nmat = len(mats), b
    cdef Params p = _params(method, max_count, w1, w2, threshold, swap)
    cdef void** ptrs = <void**>malloc(max(nmat, 1) * sizeof(void*))
    cdef Py_ssize_t* dims = <Py_ssize_t*>malloc(3 * max(nmat, 1) * sizeof(Py_ssize_t))
    cdef const int32_t** rw = NULL
    cdef const int32_t** cw = NULL
    cdef cnp.ndarray a
    cdef bint single = True
    cdef Py_ssize_t size = sizeof(float)
    try:
        if ptrs == NULL or dims == NULL:
            raise MemoryError()
        if row_words is not None:
            rw = <const int32_t**>malloc(max(nmat, 1) * sizeof(void*))
            cw = <const int32_t**>malloc(max(nmat, 1) * sizeof(void*))
            if rw == NULL or cw == NULL:
                raise MemoryError()
        for b in range(nmat):
            a = mats[b]
            if b == 0:
                single = cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT
                size = sizeof(float) if single else sizeof(double)
            # checked on the C fields: this loop holds the GIL while other threads wait
            if (cnp.PyArray_NDIM(a) != 2
                    or cnp.PyArray_TYPE(a) != (cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE)
                    or (cnp.PyArray_SIZE(a) and cnp.PyArray_DIM(a, 1) > 1
                        and cnp.PyArray_STRIDE(a, 1) != size)
                    or cnp.PyArray_STRIDE(a, 0) % size):
                raise TypeError(f"mats[{b}]: expected a 2-D array of one float dtype with unit column stride")
            ptrs[b] = cnp.PyArray_DATA(a)
            dims[b] = cnp.PyArray_DIM(a, 0)
            dims[nmat + b] = cnp.PyArray_DIM(a, 1)
            dims[2 * nmat + b] = cnp.PyArray_STRIDE(a, 0) // size
            if rw != NULL:
                a = row_words[b]
                if a.dtype != np.int32 or a.ndim != 1 or a.shape[0] != dims[b] or not a.flags.c_contiguous:
                    raise TypeError(f"row_words[{b}]: expected int32 of length {dims[b]}")
                rw[b] = <const int32_t*>cnp.PyArray_DATA(a)
                a = col_words[b]
                if a.dtype != np.int32 or a.ndim != 1 or a.shape[0] != dims[nmat + b] or not a.flags.c_contiguous:
                    raise TypeError(f"col_words[{b}]: expected int32 of length {dims[nmat + b]}")
                cw[b] = <const int32_t*>cnp.PyArray_DATA(a)
        return _run((mats, row_words, col_words), <const void**>ptrs, dims, rw, cw, nmat, &p,
                    single, n_threads, submit)
    finally:
        free(ptrs)
        free(dims)
        free(rw)
        free(cw)


def extract_padded(cnp.ndarray sims, const int64_t[:, ::1] lengths, int method, Py_ssize_t max_count,
                   double w1, double w2, double threshold, int n_threads=1, object submit=None):
    """Like :func:`extract_list` on ``sims[b, :lengths[b, 0], :lengths[b, 1]]``.

    ``sims``: C-contiguous float32 or float64 (B, M, N); ``lengths`` within (M, N).
    """
    cdef Py_ssize_t nmat = sims.shape[0], b
    cdef Params p = _params(method, max_count, w1, w2, threshold, False)
    cdef void** ptrs = <void**>malloc(max(nmat, 1) * sizeof(void*))
    cdef Py_ssize_t* dims = <Py_ssize_t*>malloc(3 * max(nmat, 1) * sizeof(Py_ssize_t))
    cdef char* base = <char*>cnp.PyArray_DATA(sims)
    try:
        if ptrs == NULL or dims == NULL:
            raise MemoryError()
        if (sims.ndim != 3 or not sims.flags.c_contiguous or lengths.shape[0] != nmat
                or sims.dtype not in (np.float32, np.float64)):
            raise TypeError("sims: expected a C-contiguous float (B, M, N) array and (B, 2) lengths")
        for b in range(nmat):
            if not (0 <= lengths[b, 0] <= sims.shape[1] and 0 <= lengths[b, 1] <= sims.shape[2]):
                raise TypeError(f"lengths[{b}] outside the padded shape")
            ptrs[b] = base + b * sims.strides[0]
            dims[b] = lengths[b, 0]
            dims[nmat + b] = lengths[b, 1]
            dims[2 * nmat + b] = sims.shape[2]
        return _run(sims, <const void**>ptrs, dims, NULL, NULL, nmat, &p, sims.dtype == np.float32,
                    n_threads, submit)
    finally:
        free(ptrs)
        free(dims)


def union_list(list pairs, list row_words, list col_words):
    """Sorted unique word pairs ``(row_words[i], col_words[j])`` of each (k, 2) int32 array
    of ``pairs`` (C-contiguous int32; ids int32, negative: no word).
    Returns ``(pairs int32 (K, 2), counts int64 (len(pairs),), status)``; ``status`` is -1,
    or ``b`` when ``pairs[b]`` indexes outside its maps."""
    cdef Py_ssize_t nmat = len(pairs), b, t, k, c, cap = 1, total = 0, nr, nc, nrw, ncw
    cdef const int32_t** pp = <const int32_t**>malloc(max(nmat, 1) * sizeof(void*))
    cdef const int32_t** rw = <const int32_t**>malloc(max(nmat, 1) * sizeof(void*))
    cdef const int32_t** cw = <const int32_t**>malloc(max(nmat, 1) * sizeof(void*))
    cdef Py_ssize_t* dims = <Py_ssize_t*>malloc(3 * max(nmat, 1) * sizeof(Py_ssize_t))
    cdef int64_t* codes = NULL
    cdef int32_t* out = NULL
    cdef int64_t code, prev
    cdef int32_t a, x
    cdef cnp.ndarray arr
    cdef cnp.ndarray counts = np.zeros(nmat, dtype=np.int64)
    cdef int64_t* cnt = <int64_t*>cnp.PyArray_DATA(counts)
    cdef cnp.ndarray result
    cdef Py_ssize_t status = -1
    try:
        if pp == NULL or rw == NULL or cw == NULL or dims == NULL:
            raise MemoryError()
        for b in range(nmat):
            arr = pairs[b]
            if arr.dtype != np.int32 or arr.ndim != 2 or arr.shape[1] != 2 or not arr.flags.c_contiguous:
                raise TypeError(f"pairs[{b}]: expected C-contiguous int32 (k, 2)")
            pp[b] = <const int32_t*>cnp.PyArray_DATA(arr)
            dims[b] = arr.shape[0]
            cap = max(cap, dims[b])
            total += dims[b]
            arr = row_words[b]
            if arr.dtype != np.int32 or arr.ndim != 1 or not arr.flags.c_contiguous:
                raise TypeError(f"row_words[{b}]: expected int32")
            rw[b] = <const int32_t*>cnp.PyArray_DATA(arr)
            dims[nmat + b] = arr.shape[0]
            arr = col_words[b]
            if arr.dtype != np.int32 or arr.ndim != 1 or not arr.flags.c_contiguous:
                raise TypeError(f"col_words[{b}]: expected int32")
            cw[b] = <const int32_t*>cnp.PyArray_DATA(arr)
            dims[2 * nmat + b] = arr.shape[0]
        codes = <int64_t*>malloc(cap * sizeof(int64_t))
        out = <int32_t*>malloc(2 * max(total, 1) * sizeof(int32_t))
        if codes == NULL or out == NULL:
            raise MemoryError()
        with nogil:
            total = 0
            for b in range(nmat):
                nr = dims[nmat + b]
                nc = dims[2 * nmat + b]
                nrw = 0
                for t in range(nr):
                    if rw[b][t] >= nrw:
                        nrw = rw[b][t] + 1
                ncw = 0
                for t in range(nc):
                    if cw[b][t] >= ncw:
                        ncw = cw[b][t] + 1
                c = 0
                for t in range(dims[b]):
                    if not (0 <= pp[b][2 * t] < nr and 0 <= pp[b][2 * t + 1] < nc):
                        status = b
                        break
                    a = rw[b][pp[b][2 * t]]
                    x = cw[b][pp[b][2 * t + 1]]
                    if a >= 0 and x >= 0:
                        codes[c] = a * ncw + x
                        c += 1
                if status >= 0:
                    break
                qsort(codes, c, sizeof(int64_t), _cmp_i64)
                prev = -1
                k = 0
                for t in range(c):
                    code = codes[t]
                    if code != prev:
                        prev = code
                        out[2 * total] = <int32_t>(code // ncw)
                        out[2 * total + 1] = <int32_t>(code % ncw)
                        total += 1
                        k += 1
                cnt[b] = k
        result = np.empty((total, 2), dtype=np.int32)
        if total:
            memcpy(cnp.PyArray_DATA(result), out, 2 * total * sizeof(int32_t))
        return result, counts, status
    finally:
        free(pp)
        free(rw)
        free(cw)
        free(dims)
        free(codes)
        free(out)


def split(cnp.ndarray pairs, cnp.ndarray counts):
    """Views ``pairs[start:start + counts[b]]`` of a C-contiguous (K, 2) array, one per
    ``counts`` entry (int64), made in C: a Python slice per matrix costs twice as much."""
    cdef Py_ssize_t nmat = counts.shape[0], b
    cdef const int64_t* cnt = <const int64_t*>cnp.PyArray_DATA(counts)
    cdef char* base = <char*>cnp.PyArray_DATA(pairs)
    cdef Py_ssize_t row = pairs.strides[0] if pairs.shape[0] else 2 * pairs.itemsize
    cdef cnp.npy_intp dims[2]
    cdef cnp.npy_intp strides[2]
    cdef cnp.dtype descr = pairs.dtype
    cdef list out = [None] * nmat
    cdef object view
    cdef int64_t start = 0
    if (pairs.ndim != 2 or not pairs.flags.c_contiguous or counts.dtype != np.int64
            or counts.ndim != 1 or counts.sum() != pairs.shape[0]):
        raise TypeError("split: expected C-contiguous (K, 2) pairs and int64 counts summing to K")
    dims[1] = pairs.shape[1]
    strides[0] = row
    strides[1] = pairs.itemsize
    for b in range(nmat):
        dims[0] = cnt[b]
        Py_INCREF(descr)  # PyArray_NewFromDescr steals it
        view = PyArray_NewFromDescr(<PyTypeObject*>cnp.ndarray, descr, 2, dims, strides,
                                    base + start * row, cnp.NPY_ARRAY_CARRAY, None)
        cnp.set_array_base(view, pairs)
        out[b] = view
        start += cnt[b]
    return out
