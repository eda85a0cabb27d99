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


cdef extern from *:
    """
    /* The scans that touch every cell, written so that the compiler vectorises them:
       branch-free selects and fixed-width lanes. GCC builds AVX-512 / AVX2 / baseline
       clones and picks one at load time. No fused multiply-add is formed: each value is
       one product, as SimAlign's numpy computes it. */
    #include <stdint.h>
    #include <float.h>
    #include <math.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define XF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define XF_CLONES
    #endif
    #include <string.h>

    /* 32-byte vectors of values and of same-width ints (GCC/Clang vector extensions) */
    typedef float xf_vf __attribute__((vector_size(32)));
    typedef int32_t xf_vfi __attribute__((vector_size(32)));
    typedef double xf_vd __attribute__((vector_size(32)));
    typedef int64_t xf_vdi __attribute__((vector_size(32)));

    /* Row argmax keeps, per lane, the first maximum (strict >) and merges the lanes by
       value, then lowest index: the first index of the maximum, as numpy's argmax. The
       column update keeps each column's first maximum the same way. */
    #define XF_DEFINE(SUF, T, IT, VT, VI, EXPO)                                         \
    static inline int32_t xf_rowarg_##SUF(const T* r, Py_ssize_t n) {                   \
        const Py_ssize_t W = (Py_ssize_t)(sizeof(VT) / sizeof(T));                      \
        Py_ssize_t j, l;                                                                \
        T best = r[0];                                                                  \
        IT arg = 0;                                                                     \
        if (n < W) {                                                                    \
            for (j = 1; j < n; j++)                                                     \
                if (r[j] > best) { best = r[j]; arg = (IT)j; }                          \
            return (int32_t)arg;                                                        \
        }                                                                               \
        VT lb, x, bv;                                                                   \
        VI la, idx, mask;                                                               \
        memcpy(&lb, r, sizeof lb);                                                      \
        for (l = 0; l < W; l++) la[l] = (IT)l;                                          \
        idx = la;                                                                       \
        for (j = W; j + W <= n; j += W) {                                               \
            memcpy(&x, r + j, sizeof x);                                                \
            idx += (IT)W;                                                               \
            mask = (VI)(x > lb);                                                        \
            lb = (VT)(((VI)x & mask) | ((VI)lb & ~mask));                               \
            la = (idx & mask) | (la & ~mask);                                           \
        }                                                                               \
        if (j < n) {  /* last W cells, overlapping: each cell is still in its own lane */ \
            memcpy(&x, r + n - W, sizeof x);                                            \
            for (l = 0; l < W; l++) idx[l] = (IT)(n - W + l);                           \
            mask = (VI)(x > lb);                                                        \
            lb = (VT)(((VI)x & mask) | ((VI)lb & ~mask));                               \
            la = (idx & mask) | (la & ~mask);                                           \
        }                                                                               \
        /* merge: the lowest index among the lanes holding the maximum */               \
        best = lb[0];                                                                   \
        for (l = 1; l < W; l++) best = lb[l] > best ? lb[l] : best;                     \
        for (l = 0; l < W; l++) bv[l] = best;                                           \
        mask = (VI)(lb == bv);                                                          \
        la = (la & mask) | (~mask & (IT)n);                                              \
        arg = la[0];                                                                    \
        for (l = 1; l < W; l++) arg = la[l] < arg ? la[l] : arg;                        \
        return (int32_t)arg;                                                            \
    }                                                                                   \
    static inline void xf_colupd_##SUF(const T* r, Py_ssize_t n, int32_t i,              \
                                       T* cb, int32_t* ca) {                            \
        for (Py_ssize_t j = 0; j < n; j++) {                                            \
            T x = r[j];                                                                 \
            int c = x > cb[j];                                                          \
            cb[j] = c ? x : cb[j];                                                      \
            ca[j] = c ? i : ca[j];                                                      \
        }                                                                               \
    }                                                                                   \
    /* NaN or +-inf: all exponent bits set, tested on the bits */                       \
    XF_CLONES static int xf_nonfinite_##SUF(const T* s, Py_ssize_t m, Py_ssize_t n,     \
                                            Py_ssize_t ld) {                            \
        const Py_ssize_t W = (Py_ssize_t)(sizeof(VT) / sizeof(T));                      \
        const IT expo = (IT)(EXPO);                                                     \
        for (Py_ssize_t i = 0; i < m; i++) {                                            \
            const T* r = s + i * ld;                                                    \
            Py_ssize_t j = 0;                                                           \
            VI acc = {0}, x;                                                            \
            IT bits, bad = 0;                                                           \
            for (; j + W <= n; j += W) {                                                \
                memcpy(&x, r + j, sizeof x);                                            \
                acc |= (VI)((x & expo) == expo);                                        \
            }                                                                           \
            for (; j < n; j++) {                                                        \
                memcpy(&bits, r + j, sizeof bits);                                      \
                bad |= (bits & expo) == expo;                                           \
            }                                                                           \
            for (Py_ssize_t l = 0; l < W; l++) bad |= acc[l];                           \
            if (bad) return 1;                                                          \
        }                                                                               \
        return 0;                                                                       \
    }                                                                                   \
    /* both argmaxes; returns 1 when a value is NaN or +-inf (checked on the same loads) */ \
    XF_CLONES static int xf_argmax_##SUF(const T* s, Py_ssize_t m, Py_ssize_t n,         \
                                         Py_ssize_t ld, int32_t* rowarg,                \
                                         int32_t* colarg, T* cb) {                      \
        const IT expo = (IT)(EXPO);                                                     \
        IT bad = 0, bits;                                                               \
        for (Py_ssize_t j = 0; j < n; j++) {                                            \
            cb[j] = s[j]; colarg[j] = 0;                                                \
            memcpy(&bits, s + j, sizeof bits);                                          \
            bad |= (bits & expo) == expo;                                               \
        }                                                                               \
        rowarg[0] = xf_rowarg_##SUF(s, n);                                              \
        for (Py_ssize_t i = 1; i < m; i++) {                                            \
            const T* r = s + i * ld;                                                    \
            rowarg[i] = xf_rowarg_##SUF(r, n);                                          \
            for (Py_ssize_t j = 0; j < n; j++) {                                        \
                T x = r[j];                                                             \
                int c = x > cb[j];                                                      \
                cb[j] = c ? x : cb[j];                                                  \
                colarg[j] = c ? (int32_t)i : colarg[j];                                 \
                memcpy(&bits, r + j, sizeof bits);                                      \
                bad |= (bits & expo) == expo;                                           \
            }                                                                           \
        }                                                                               \
        return bad != 0;                                                                \
    }                                                                                   \
    /* argmax of sim * weight, the product in double (SimAlign's float64 mask) */         \
    XF_CLONES static void xf_wargmax_##SUF(const T* s, Py_ssize_t m, Py_ssize_t n,       \
                                           Py_ssize_t ld, const char* rfree,            \
                                           const double* wv0, const double* wv1,        \
                                           double* tmp, int32_t* rowarg,                \
                                           int32_t* colarg, double* cb) {               \
        for (Py_ssize_t i = 0; i < m; i++) {                                            \
            const T* r = s + i * ld;                                                    \
            const double* wv = rfree[i] ? wv1 : wv0;                                    \
            for (Py_ssize_t j = 0; j < n; j++) tmp[j] = (double)r[j] * wv[j];           \
            rowarg[i] = xf_rowarg_d(tmp, n);                                            \
            if (i) xf_colupd_d(tmp, n, (int32_t)i, cb, colarg);                         \
            else for (Py_ssize_t j = 0; j < n; j++) { cb[j] = tmp[j]; colarg[j] = 0; }  \
        }                                                                               \
    }

    /* ask for the next matrix while this one is scanned: separate arrays a few KB each
       defeat the hardware prefetchers at every page */
    static inline void xf_prefetch(const char* p, Py_ssize_t m, Py_ssize_t row_bytes,
                                   Py_ssize_t ld_bytes) {
        for (Py_ssize_t i = 0; i < m; i++, p += ld_bytes)
            for (Py_ssize_t off = 0; off < row_bytes; off += 64)
                __builtin_prefetch(p + off, 0, 2);
    }

    /* the batch scheduler's atomics; XF_CLOSED marks the caller done in the gate word */
    #define XF_CLOSED (1 << 30)
    static inline Py_ssize_t xf_fetch_add(Py_ssize_t* p, Py_ssize_t v) {
        return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    }
    static inline int xf_load(int* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void xf_store(int* p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    /* a pool thread joins unless the caller closed the batch */
    static inline int xf_join(int* gate) {
        int g = __atomic_load_n(gate, __ATOMIC_ACQUIRE);
        while (!(g & XF_CLOSED))
            if (__atomic_compare_exchange_n(gate, &g, g + 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return 1;
        return 0;
    }
    static inline int xf_close(int* gate) {
        return __atomic_fetch_or(gate, XF_CLOSED, __ATOMIC_ACQ_REL) & ~XF_CLOSED;
    }
    static inline void xf_done(int* finished) { __atomic_fetch_add(finished, 1, __ATOMIC_RELEASE); }
    /* the threads that joined are working, at most a chunk each is left: spin, and yield
       the core after a while in case one of them was descheduled */
    #if !defined(_WIN32)
    #include <sched.h>
    #endif
    static inline void xf_wait(int* finished, int n) {
        for (long spins = 0; __atomic_load_n(finished, __ATOMIC_ACQUIRE) < n; spins++) {
    #if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
    #endif
    #if !defined(_WIN32)
            if (spins > 20000) sched_yield();
    #endif
        }
    }

    /* the double helpers first: the float wargmax uses them */
    XF_DEFINE(d, double, int64_t, xf_vd, xf_vdi, 0x7ff0000000000000LL)
    XF_DEFINE(f, float, int32_t, xf_vf, xf_vfi, 0x7f800000)

    /* AVX-512 passes, chosen at run time when the CPU has AVX-512F (the scans above
       otherwise). One pass per row: masked loads cover the row's last block, the column
       maxima and their rows update with a strict >, the row max is reduced once and its
       first column found from the equality masks without branches. Both are numpy's
       argmax (first index of the maximum). The column state lives in buffers padded to
       whole blocks (XF_PAD). Non-finite values: the largest |bits| reaches the exponent. */
    #define XF_PAD 16
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #include <immintrin.h>
    #define XF5 __attribute__((target("avx512f")))

    #define XF5_PASS(NAME, T, W, V, MASK, CB, WARGS, WROW, LOAD, NF_STEP, NF_RESULT)         \
    XF5 static int NAME(const T* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld WARGS,      \
                        int32_t* rowarg, int32_t* colarg, CB* cb) {                       \
        const MASK tail = (MASK)((1u << (n % W ? n % W : W)) - 1);                        \
        const Py_ssize_t last = (n - 1) / W * W;                                          \
        __m512i bad = _mm512_setzero_si512();                                             \
        Py_ssize_t i, jb, pos, at, hit;                                                   \
        MASK k, g;                                                                        \
        V x, c, rm;                                                                       \
        for (jb = 0; jb < n; jb += W) {                                                   \
            XV_STORE(cb + jb, XV_SET1(-INFINITY));                                        \
            _mm512_storeu_si512((void*)(colarg + jb), _mm512_setzero_si512());            \
        }                                                                                 \
        for (i = 0; i < m; i++) {                                                         \
            const T* r = s + i * ld;                                                      \
            const __m512i iv = _mm512_set1_epi32((int)i);                                 \
            WROW                                                                          \
            rm = XV_SET1(-INFINITY);                                                      \
            k = (MASK)~0u;                                                                \
            for (jb = 0; jb < n; jb += W) {                                               \
                if (jb == last) k = tail;                                                 \
                x = LOAD(k, r + jb, jb);                                                  \
                rm = XV_MAX(rm, k, rm, x);                                                \
                NF_STEP                                                                   \
                c = XV_LOAD(cb + jb);                                                     \
                g = XV_CMP(k, x, c, _CMP_GT_OQ);                                          \
                XV_STORE(cb + jb, XV_BLEND(c, g, x));                                     \
                XA_UPDATE(colarg + jb, g, iv);                                            \
            }                                                                             \
            rm = XV_SET1(XV_REDMAX(rm));                                                  \
            /* the lowest block holding the max wins: scan from the last block */         \
            pos = 0;                                                                      \
            k = tail;                                                                     \
            for (jb = last; jb >= 0; jb -= W) {                                          \
                g = XV_CMP(k, LOAD(k, r + jb, jb), rm, _CMP_EQ_OQ);                       \
                k = (MASK)~0u;                                                            \
                at = jb + __builtin_ctz((unsigned)g | (1u << W));                         \
                hit = -(Py_ssize_t)(g != 0);                                              \
                pos = (at & hit) | (pos & ~hit);                                          \
            }                                                                             \
            rowarg[i] = (int32_t)pos;                                                     \
        }                                                                                 \
        return NF_RESULT;                                                                 \
    }

    /* float values, 16 lanes */
    #define XV_SET1 _mm512_set1_ps
    #define XV_MAX _mm512_mask_max_ps
    #define XV_LOAD _mm512_loadu_ps
    #define XV_STORE _mm512_storeu_ps
    #define XV_CMP _mm512_mask_cmp_ps_mask
    #define XV_BLEND _mm512_mask_mov_ps
    #define XV_REDMAX _mm512_reduce_max_ps
    #define XA_UPDATE(p, g, iv) _mm512_storeu_si512((void*)(p),                           \
        _mm512_mask_mov_epi32(_mm512_loadu_si512((const void*)(p)), g, iv))
    #define XF5_LOAD_F(k, p, jb) _mm512_maskz_loadu_ps(k, p)
    #define XF5_NF_F bad = _mm512_max_epu32(bad, _mm512_and_si512(_mm512_castps_si512(x),  \
                                                                _mm512_set1_epi32(0x7fffffff)));
    XF5_PASS(xf5_argmax_f, float, 16, __m512, __mmask16, float, , , XF5_LOAD_F, XF5_NF_F,
             _mm512_reduce_max_epu32(bad) >= 0x7f800000u)
    #undef XV_SET1
    #undef XV_MAX
    #undef XV_LOAD
    #undef XV_STORE
    #undef XV_CMP
    #undef XV_BLEND
    #undef XV_REDMAX
    #undef XA_UPDATE

    /* double values, 8 lanes; the column rows are 8 int32 */
    #define XV_SET1 _mm512_set1_pd
    #define XV_MAX _mm512_mask_max_pd
    #define XV_LOAD _mm512_loadu_pd
    #define XV_STORE _mm512_storeu_pd
    #define XV_CMP _mm512_mask_cmp_pd_mask
    #define XV_BLEND _mm512_mask_mov_pd
    #define XV_REDMAX _mm512_reduce_max_pd
    #define XA_UPDATE(p, g, iv) _mm256_storeu_si256((__m256i*)(p), _mm512_castsi512_si256(   \
        _mm512_mask_mov_epi32(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(p))), \
                              g, iv)))
    #define XF5_LOAD_D(k, p, jb) _mm512_maskz_loadu_pd(k, p)
    #define XF5_NF_D bad = _mm512_max_epu64(bad, _mm512_and_si512(_mm512_castpd_si512(x),  \
                                                   _mm512_set1_epi64(0x7fffffffffffffffLL)));
    XF5_PASS(xf5_argmax_d, double, 8, __m512d, __mmask8, double, , , XF5_LOAD_D, XF5_NF_D,
             _mm512_reduce_max_epu64(bad) >= 0x7ff0000000000000ULL)
    /* itermax: (double)sim * weight, weight wv1[col] on a free row, else wv0[col] (padded) */
    #define XF5_WARGS , const char* rfree, const double* wv0, const double* wv1
    #define XF5_WROW const double* wv = rfree[i] ? wv1 : wv0;
    #define XF5_WLOAD_F(k, p, jb) _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(       \
        _mm512_maskz_loadu_ps((__mmask16)(k), p))), _mm512_loadu_pd(wv + (jb)))
    #define XF5_WLOAD_D(k, p, jb) _mm512_mul_pd(_mm512_maskz_loadu_pd(k, p), _mm512_loadu_pd(wv + (jb)))
    XF5_PASS(xf5_wargmax_f, float, 8, __m512d, __mmask8, double, XF5_WARGS, XF5_WROW,
             XF5_WLOAD_F, , 0)
    XF5_PASS(xf5_wargmax_d, double, 8, __m512d, __mmask8, double, XF5_WARGS, XF5_WROW,
             XF5_WLOAD_D, , 0)

    /* float matrices up to 16 * XF5R_MAX columns: the column maxima and their rows stay in
       registers (one specialisation per block count), the row's blocks too, so each cell is
       loaded once. Each block's values go into a running sum: a NaN or +-inf leaves it
       non-finite (an overflow of huge finite values may too, so the exact scan decides). */
    #define XF5R_MAX 8
    /* one specialisation per 16-column block count (n <= 16 * XF5R_MAX); CALL(NB) ends in
       return or break */
    #define XF5R_CASES(CALL) switch ((n + 15) / 16) {                                    \
        case 1: CALL(1); case 2: CALL(2); case 3: CALL(3); case 4: CALL(4);              \
        case 5: CALL(5); case 6: CALL(6); case 7: CALL(7); default: CALL(8); }
    #define XF_AHEAD 6
    #define XF5R __attribute__((target("avx512f,bmi"), always_inline)) static inline
    XF5R int xf5r_argmax_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                           int32_t* rowarg, int32_t* colarg, const int NB) {
        const __mmask16 tail = (__mmask16)((1u << (n - 16 * (NB - 1))) - 1);
        const __m512 ninf = _mm512_set1_ps(-INFINITY);
        __m512 cb[XF5R_MAX], x[XF5R_MAX], acc = _mm512_setzero_ps();
        __m512i ca[XF5R_MAX];
        int b;
        for (b = 0; b < NB; b++) { cb[b] = ninf; ca[b] = _mm512_setzero_si512(); }
        for (Py_ssize_t i = 0; i < m; i++) {
            const float* r = s + i * ld;
            const __m512i iv = _mm512_set1_epi32((int)i);
            if (i + XF_AHEAD < m)  /* rows ahead; the first ones came with the previous matrix */
                for (b = 0; b <= NB; b++) __builtin_prefetch(r + XF_AHEAD * ld + 16 * b, 0, 3);
            for (b = 0; b < NB - 1; b++) x[b] = _mm512_loadu_ps(r + 16 * b);
            x[NB - 1] = _mm512_mask_loadu_ps(ninf, tail, r + 16 * (NB - 1));
            __m512 rm = x[0];
            __m512 sum = _mm512_maskz_mov_ps(NB == 1 ? tail : (__mmask16)0xFFFF, x[0]);
            for (b = 0; b < NB; b++) {
                const __mmask16 g = _mm512_cmp_ps_mask(x[b], cb[b], _CMP_GT_OQ);
                cb[b] = _mm512_mask_mov_ps(cb[b], g, x[b]);
                ca[b] = _mm512_mask_mov_epi32(ca[b], g, iv);
                if (b) {
                    rm = _mm512_max_ps(rm, x[b]);
                    sum = b == NB - 1 ? _mm512_mask_add_ps(sum, tail, sum, x[b])
                                      : _mm512_add_ps(sum, x[b]);
                }
            }
            acc = _mm512_add_ps(acc, sum);
            const __m512 bv = _mm512_set1_ps(_mm512_reduce_max_ps(rm));
            uint64_t lo = 0, hi = 0;
            for (b = 0; b < NB; b++) {
                const uint64_t e = (uint64_t)(__mmask16)_mm512_cmp_ps_mask(x[b], bv, _CMP_EQ_OQ);
                if (b < 4) lo |= e << (16 * b); else hi |= e << (16 * (b - 4));
            }
            /* no branch on where the maximum is: it would be mispredicted */
            uint64_t at = _tzcnt_u64(lo);
            if (NB > 4) at += _tzcnt_u64(hi) & (0 - (uint64_t)(lo == 0));
            rowarg[i] = (int32_t)at;
        }
        for (b = 0; b < NB; b++) _mm512_storeu_si512((void*)(colarg + 16 * b), ca[b]);
        acc = _mm512_mul_ps(acc, _mm512_setzero_ps());  /* NaN exactly where acc is not finite */
        return _mm512_cmp_ps_mask(acc, acc, _CMP_UNORD_Q) != 0;
    }
    __attribute__((target("avx512f,bmi"))) static int xf5r_pass_f(
            const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld, int32_t* rowarg,
            int32_t* colarg, float* cb) {
        int suspect;
        if (n > 16 * XF5R_MAX) return xf5_argmax_f(s, m, n, ld, rowarg, colarg, cb);
        #define XF5R_CALL(NB) suspect = xf5r_argmax_f(s, m, n, ld, rowarg, colarg, NB); break
        XF5R_CASES(XF5R_CALL)
        #undef XF5R_CALL
        return suspect && xf_nonfinite_f(s, m, n, ld);
    }

    /* One itermax round on a float matrix (m, n >= 1; values checked finite) without
       computing sim * weight in double for every cell. Column argmax: within the free rows
       every cell of a column has one weight, and so within the taken rows; rounding x * w
       to double keeps the order of distinct float32 values while the products are normal
       doubles (w == 0 or w >= 1e-200, checked by the caller), so each group's first
       maximum is found on the floats and only the two winners are weighed in double (a
       group with w == 0 is all zeros: its first row wins). Row argmax the same way over
       free and taken columns, only for the rows that can make a new pair. Float64 input
       keeps the double pass: rounding can tie distinct doubles. */
    XF5R void xf5r_colgroup_f(const float* s, Py_ssize_t ld, const int32_t* rows,
                              Py_ssize_t nr, Py_ssize_t n, float* best, int32_t* arg,
                              const int NB) {
        const __mmask16 tail = (__mmask16)((1u << (n - 16 * (NB - 1))) - 1);
        const __m512 ninf = _mm512_set1_ps(-INFINITY);
        __m512 cb[XF5R_MAX], x;
        __m512i ca[XF5R_MAX];
        int b;
        for (b = 0; b < NB; b++) { cb[b] = ninf; ca[b] = _mm512_set1_epi32(rows[0]); }
        for (Py_ssize_t t = 0; t < nr; t++) {
            const float* r = s + rows[t] * ld;
            const __m512i iv = _mm512_set1_epi32(rows[t]);
            for (b = 0; b < NB; b++) {
                x = b == NB - 1 ? _mm512_mask_loadu_ps(ninf, tail, r + 16 * b)
                                : _mm512_loadu_ps(r + 16 * b);
                const __mmask16 g = _mm512_cmp_ps_mask(x, cb[b], _CMP_GT_OQ);
                cb[b] = _mm512_mask_mov_ps(cb[b], g, x);
                ca[b] = _mm512_mask_mov_epi32(ca[b], g, iv);
            }
        }
        for (b = 0; b < NB; b++) {
            _mm512_storeu_ps(best + 16 * b, cb[b]);
            _mm512_storeu_si512((void*)(arg + 16 * b), ca[b]);
        }
    }
    /* Weighted row argmax on float groups, as the column side: the free columns (lanes in
       fm) weigh wa, the others wb; each group's maximum is found on the floats, the two are
       weighed in double, and the first column holding the winning value(s) is the argmax.
       A group of weight 0 is all zeros; an empty group never wins. */
    XF5R int32_t xf5r_wrowarg_f(const float* r, Py_ssize_t n, const __mmask16* fm,
                                int has_f, int has_t, double wa, double wb, const int NB,
                                const int ZT) {
        const __mmask16 tail = (__mmask16)((1u << (n - 16 * (NB - 1))) - 1);
        const __m512 ninf = _mm512_set1_ps(-INFINITY);
        __m512 x[XF5R_MAX], mf = ninf, mt = ninf;
        int b;
        for (b = 0; b < NB; b++) {
            x[b] = b == NB - 1 ? _mm512_mask_loadu_ps(ninf, tail, r + 16 * b)
                               : _mm512_loadu_ps(r + 16 * b);
            mf = _mm512_mask_max_ps(mf, fm[b], mf, x[b]);
            if (!ZT)  /* ZT: the other columns weigh 0 (a taken row), their max is not needed */
                mt = _mm512_mask_max_ps(mt, (__mmask16)(~fm[b] & (b == NB - 1 ? tail : 0xFFFF)), mt, x[b]);
        }
        const float bf = _mm512_reduce_max_ps(mf), bt = ZT ? 0.0f : _mm512_reduce_max_ps(mt);
        const double df = !has_f ? -INFINITY : wa == 0.0 ? 0.0 : (double)bf * wa;
        const double dt = !has_t ? -INFINITY : ZT || wb == 0.0 ? 0.0 : (double)bt * wb;
        const int use_f = df >= dt, use_t = dt >= df;
        const __m512 vf = _mm512_set1_ps(bf), vt = _mm512_set1_ps(bt);
        uint64_t lo = 0, hi = 0;
        for (b = 0; b < NB; b++) {
            const __mmask16 in_f = use_f ? fm[b] : 0;
            const __mmask16 in_t = use_t ? (__mmask16)(~fm[b] & (b == NB - 1 ? tail : 0xFFFF)) : 0;
            const __mmask16 ef = wa == 0.0 ? in_f : _mm512_mask_cmp_ps_mask(in_f, x[b], vf, _CMP_EQ_OQ);
            const __mmask16 et = ZT || wb == 0.0 ? in_t : _mm512_mask_cmp_ps_mask(in_t, x[b], vt, _CMP_EQ_OQ);
            const uint64_t e = (uint64_t)(__mmask16)(ef | et);
            if (b < 4) lo |= e << (16 * b); else hi |= e << (16 * (b - 4));
        }
        uint64_t at = _tzcnt_u64(lo);
        if (NB > 4) at += _tzcnt_u64(hi) & (0 - (uint64_t)(lo == 0));
        return (int32_t)at;
    }
    /* the weighted row argmax of a free row (both column groups weigh > 0 as alpha > 0) */
    __attribute__((target("avx512f,bmi"))) static int32_t xf5r_wrow_free_f(
            const float* r, Py_ssize_t n, const __mmask16* fm, int has_f, int has_t,
            double wa, double wb) {
        #define XF5R_CALL(NB) return xf5r_wrowarg_f(r, n, fm, has_f, has_t, wa, wb, NB, 0)
        XF5R_CASES(XF5R_CALL)
        #undef XF5R_CALL
    }
    /* ... and of a taken row: the taken columns weigh 0 */
    __attribute__((target("avx512f,bmi"))) static int32_t xf5r_wrow_taken_f(
            const float* r, Py_ssize_t n, const __mmask16* fm, int has_f, int has_t,
            double wa) {
        #define XF5R_CALL(NB) return xf5r_wrowarg_f(r, n, fm, has_f, has_t, wa, 0.0, NB, 1)
        XF5R_CASES(XF5R_CALL)
        #undef XF5R_CALL
    }
    __attribute__((target("avx512f,bmi"))) static void xf5r_colgroup_nb_f(
            const float* s, Py_ssize_t ld, const int32_t* rows, Py_ssize_t nr, Py_ssize_t n,
            float* best, int32_t* arg) {
        #define XF5R_CALL(NB) xf5r_colgroup_f(s, ld, rows, nr, n, best, arg, NB); break
        XF5R_CASES(XF5R_CALL)
        #undef XF5R_CALL
    }
    /* Returns the rows with a new pair, ascending, in newrow (their columns in rowarg).
       Scratch: rows and trows m ints; bf, bt, af, at whole 16-lane blocks; need m chars.
       The loops over rows and columns do not branch on the data. */
    __attribute__((target("avx512f,avx512vl,bmi"))) static Py_ssize_t xf5r_wround_f(
            const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld, const char* rfree,
            const char* cfree, double w1, double w2, const double* wv0, const double* wv1,
            int32_t* rows, int32_t* trows, float* bf, int32_t* af, float* bt, int32_t* at,
            char* need, int32_t* rowarg, int32_t* colarg, int32_t* newrow) {
        Py_ssize_t nf = 0, nt = 0, i, j, added = 0;
        for (i = 0; i < m; i++) {
            rows[nf] = (int32_t)i;
            trows[nt] = (int32_t)i;
            nf += rfree[i] != 0;
            nt += rfree[i] == 0;
        }
        if (nf) xf5r_colgroup_nb_f(s, ld, rows, nf, n, bf, af);
        if (nt) xf5r_colgroup_nb_f(s, ld, trows, nt, n, bt, at);
        /* the two winners of each column, weighed in double; empty group: -inf */
        const __m512d zero = _mm512_setzero_pd(), ninf = _mm512_set1_pd(-INFINITY);
        const __m256i f0 = _mm256_set1_epi32(nf ? rows[0] : 0);
        const __m256i t0 = _mm256_set1_epi32(nt ? trows[0] : 0);
        for (j = 0; j < n; j += 8) {
            const __m512d w1v = _mm512_loadu_pd(wv1 + j), w0v = _mm512_loadu_pd(wv0 + j);
            const __mmask8 zf = _mm512_cmp_pd_mask(w1v, zero, _CMP_EQ_OQ);
            const __mmask8 zt = _mm512_cmp_pd_mask(w0v, zero, _CMP_EQ_OQ);
            __m512d df = nf ? _mm512_maskz_mul_pd((__mmask8)~zf, _mm512_cvtps_pd(
                                  _mm256_loadu_ps(bf + j)), w1v) : ninf;
            __m512d dt = nt ? _mm512_maskz_mul_pd((__mmask8)~zt, _mm512_cvtps_pd(
                                  _mm256_loadu_ps(bt + j)), w0v) : ninf;
            __m256i fi = _mm256_mask_mov_epi32(_mm256_loadu_si256((const __m256i*)(af + j)), zf, f0);
            __m256i ti = _mm256_mask_mov_epi32(_mm256_loadu_si256((const __m256i*)(at + j)), zt, t0);
            __m256i best = _mm256_min_epi32(fi, ti);
            best = _mm256_mask_mov_epi32(best, _mm512_cmp_pd_mask(df, dt, _CMP_GT_OQ), fi);
            best = _mm256_mask_mov_epi32(best, _mm512_cmp_pd_mask(df, dt, _CMP_LT_OQ), ti);
            _mm256_storeu_si256((__m256i*)(colarg + j), best);
        }
        memset(need, 0, (size_t)m);
        for (j = 0; j < n; j++) need[colarg[j]] |= rfree[colarg[j]] | cfree[j];
        /* free-column lanes; a free row weighs them w2, the others w1; a taken row weighs
           them w1, the others 0 */
        __mmask16 fm[XF5R_MAX];
        Py_ssize_t nfc = 0;
        const Py_ssize_t nb = (n + 15) / 16;
        for (Py_ssize_t b = 0; b < nb; b++) {
            const __mmask16 lanes = b == nb - 1 ? (__mmask16)((1u << (n - 16 * b)) - 1) : 0xFFFF;
            fm[b] = _mm512_mask_cmpneq_epi32_mask(lanes, _mm512_cvtepi8_epi32(
                _mm_loadu_si128((const __m128i*)(cfree + 16 * b))), _mm512_setzero_si512());
            nfc += __builtin_popcount((unsigned)fm[b]);
        }
        /* the rows that can make a new pair: free ones, then taken ones */
        Py_ssize_t cf = 0, ct = 0;
        for (i = 0; i < m; i++) {
            rows[cf] = (int32_t)i;
            trows[ct] = (int32_t)i;
            cf += need[i] & (rfree[i] != 0);
            ct += need[i] & (rfree[i] == 0);
            rowarg[i] = 0;
        }
        for (Py_ssize_t t = 0; t < cf; t++)
            rowarg[rows[t]] = xf5r_wrow_free_f(s + rows[t] * ld, n, fm, nfc > 0, nfc < n, w2, w1);
        for (Py_ssize_t t = 0; t < ct; t++)
            rowarg[trows[t]] = xf5r_wrow_taken_f(s + trows[t] * ld, n, fm, nfc > 0, nfc < n, w1);
        for (i = 0; i < m; i++) {
            j = rowarg[i];
            newrow[added] = (int32_t)i;
            added += need[i] & (colarg[j] == i) & ((rfree[i] | cfree[j]) != 0);
        }
        return added;
    }

    /* AVX2 passes (CPUs with AVX2 but no AVX-512, e.g. AMD Zen 2/3): the AVX-512 passes
       above with 8-lane blocks. No mask registers: a comparison gives a lane mask that
       blends, movemask turns it into bits, and the row's last block is read with a masked
       load (lanes past the row end are neither read nor faulted) and then set to -inf, so
       it never holds a row maximum. Row and column argmax keep numpy's first index of the
       maximum: strict > for the columns, the lowest set bit of the equality masks for the
       rows. No fused multiply-add (target "avx2" alone does not allow contraction to it). */
    #define XF2 __attribute__((target("avx2,bmi")))
    #define XF2R __attribute__((target("avx2,bmi"), always_inline)) static inline
    /* all-ones in the first k lanes (k = 1 .. 8) */
    XF2R __m256i xf2_lanes(int k) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    /* the maximum of the 8 lanes, in every lane */
    XF2R __m256 xf2_hmax_ps(__m256 v) {
        v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
        v = _mm256_max_ps(v, _mm256_permute_ps(v, 0x4e));
        return _mm256_max_ps(v, _mm256_permute_ps(v, 0xb1));
    }
    XF2R __m256d xf2_hmax_pd(__m256d v) {
        v = _mm256_max_pd(v, _mm256_permute2f128_pd(v, v, 1));
        return _mm256_max_pd(v, _mm256_permute_pd(v, 5));
    }
    /* a 4 x 64-bit lane mask as 4 x 32-bit */
    XF2R __m128 xf2_narrow(__m256d g) {
        const __m256 f = _mm256_castpd_ps(g);
        return _mm_shuffle_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1), 0x88);
    }

    /* General passes (any n; float64; itermax's double weighing): the column maxima and
       their rows in the padded buffers, one pass per row, then the row's maximum and its
       first column found from the equality masks without branches, last block first. */
    #define XF2_PASS(NAME, T, W, V, CB, WARGS, WROW, SETUP, LOAD, NF_STEP, NF_RESULT)         \
    XF2 static int NAME(const T* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld WARGS,      \
                        int32_t* rowarg, int32_t* colarg, CB* cb) {                       \
        const Py_ssize_t last = (n - 1) / W * W;                                          \
        SETUP                                                                             \
        Py_ssize_t i, jb, pos, at, hit;                                                   \
        unsigned g;                                                                       \
        V x, raw, c, gt, rm;                                                              \
        for (jb = 0; jb < n; jb += W) {                                                   \
            XV_STORE(cb + jb, XV_SET1(-INFINITY));                                        \
            XA_ZERO(colarg + jb);                                                         \
        }                                                                                 \
        for (i = 0; i < m; i++) {                                                         \
            const T* r = s + i * ld;                                                      \
            const __m256i iv = _mm256_set1_epi32((int)i);                                 \
            WROW                                                                          \
            rm = XV_SET1(-INFINITY);                                                      \
            for (jb = 0; jb < n; jb += W) {                                               \
                LOAD(jb == last, r + jb, jb)                                              \
                NF_STEP                                                                   \
                rm = XV_MAX(rm, x);                                                       \
                c = XV_LOAD(cb + jb);                                                     \
                gt = XV_CMP(x, c, _CMP_GT_OQ);                                            \
                XV_STORE(cb + jb, XV_MAX(x, c));                                          \
                XA_UPDATE(colarg + jb, gt, iv);                                           \
            }                                                                             \
            rm = XV_HMAX(rm);                                                             \
            pos = 0;                                                                      \
            for (jb = last; jb >= 0; jb -= W) {                                          \
                LOAD(jb == last, r + jb, jb)                                              \
                g = (unsigned)XV_MOVEMASK(XV_CMP(x, rm, _CMP_EQ_OQ));                     \
                at = jb + (Py_ssize_t)_tzcnt_u32(g | (1u << W));                          \
                hit = -(Py_ssize_t)(g != 0);                                              \
                pos = (at & hit) | (pos & ~hit);                                          \
            }                                                                             \
            rowarg[i] = (int32_t)pos;                                                     \
        }                                                                                 \
        return NF_RESULT;                                                                 \
    }

    /* float values, 8 lanes (the AVX-512 double macros end here) */
    #undef XV_SET1
    #undef XV_MAX
    #undef XV_LOAD
    #undef XV_STORE
    #undef XV_CMP
    #undef XV_BLEND
    #undef XV_REDMAX
    #undef XA_UPDATE
    #define XV_SET1 _mm256_set1_ps
    #define XV_MAX _mm256_max_ps
    #define XV_LOAD _mm256_loadu_ps
    #define XV_STORE _mm256_storeu_ps
    #define XV_CMP _mm256_cmp_ps
    #define XV_HMAX xf2_hmax_ps
    #define XV_MOVEMASK _mm256_movemask_ps
    #define XA_ZERO(p) _mm256_storeu_si256((__m256i*)(p), _mm256_setzero_si256())
    #define XA_UPDATE(p, gt, iv) _mm256_storeu_ps((float*)(p), _mm256_blendv_ps(          \
        _mm256_loadu_ps((const float*)(p)), _mm256_castsi256_ps(iv), gt))
    #define XF2_SETUP_F                                                                   \
        const __m256i tail = xf2_lanes((int)(n - last));                                  \
        const __m256 fill = _mm256_andnot_ps(_mm256_castsi256_ps(tail), _mm256_set1_ps(-INFINITY)); \
        __m256i bad = _mm256_setzero_si256();
    #define XF2_LOAD_F(is_last, p, jb)                                                    \
        if (is_last) { raw = _mm256_maskload_ps(p, tail); x = _mm256_or_ps(raw, fill); }  \
        else x = raw = _mm256_loadu_ps(p);
    /* the largest |bits| reaches the exponent's: NaN or +-inf (masked lanes read 0) */
    #define XF2_NF_F bad = _mm256_max_epu32(bad, _mm256_and_si256(_mm256_castps_si256(raw), \
                                                            _mm256_set1_epi32(0x7fffffff)));
    XF2_PASS(xf2_argmax_f, float, 8, __m256, float, , , XF2_SETUP_F, XF2_LOAD_F, XF2_NF_F,
             _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(
                 bad, _mm256_set1_epi32(0x7f7fffff)))) != 0)
    #undef XV_SET1
    #undef XV_MAX
    #undef XV_LOAD
    #undef XV_STORE
    #undef XV_CMP
    #undef XV_HMAX
    #undef XV_MOVEMASK
    #undef XA_ZERO
    #undef XA_UPDATE

    /* double values, 4 lanes; the column rows are 4 int32 */
    #define XV_SET1 _mm256_set1_pd
    #define XV_MAX _mm256_max_pd
    #define XV_LOAD _mm256_loadu_pd
    #define XV_STORE _mm256_storeu_pd
    #define XV_CMP _mm256_cmp_pd
    #define XV_HMAX xf2_hmax_pd
    #define XV_MOVEMASK _mm256_movemask_pd
    #define XA_ZERO(p) _mm_storeu_si128((__m128i*)(p), _mm_setzero_si128())
    #define XA_UPDATE(p, gt, iv) _mm_storeu_ps((float*)(p), _mm_blendv_ps(                \
        _mm_loadu_ps((const float*)(p)), _mm_castsi128_ps(_mm256_castsi256_si128(iv)),    \
        xf2_narrow(gt)))
    #define XF2_SETUP_D                                                                   \
        const __m256i tail = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - last),             \
                                                _mm256_setr_epi64x(0, 1, 2, 3));          \
        const __m256d fill = _mm256_andnot_pd(_mm256_castsi256_pd(tail), _mm256_set1_pd(-INFINITY)); \
        __m256d bad = _mm256_setzero_pd();
    #define XF2_LOAD_D(is_last, p, jb)                                                    \
        if (is_last) { raw = _mm256_maskload_pd(p, tail); x = _mm256_or_pd(raw, fill); }  \
        else x = raw = _mm256_loadu_pd(p);
    /* x - x is +0 for a finite x and NaN for NaN or +-inf: the OR of them is NaN exactly
       when a value is not finite */
    #define XF2_NF_D bad = _mm256_or_pd(bad, _mm256_sub_pd(raw, raw));
    XF2_PASS(xf2_argmax_d, double, 4, __m256d, double, , , XF2_SETUP_D, XF2_LOAD_D, XF2_NF_D,
             _mm256_movemask_pd(_mm256_cmp_pd(bad, bad, _CMP_UNORD_Q)) != 0)
    /* itermax: (double)sim * weight, weight wv1[col] on a free row, else wv0[col] (padded) */
    #define XF2_WARGS , const char* rfree, const double* wv0, const double* wv1
    #define XF2_WROW const double* wv = rfree[i] ? wv1 : wv0;
    #define XF2_SETUP_WD                                                                  \
        const __m256i tail = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - last),             \
                                                _mm256_setr_epi64x(0, 1, 2, 3));          \
        const __m256d fill = _mm256_andnot_pd(_mm256_castsi256_pd(tail), _mm256_set1_pd(-INFINITY));
    #define XF2_SETUP_WF                                                                  \
        const __m128i tail32 = _mm_cmpgt_epi32(_mm_set1_epi32((int)(n - last)),           \
                                               _mm_setr_epi32(0, 1, 2, 3));               \
        const __m256d fill = _mm256_castsi256_pd(_mm256_andnot_si256(                      \
            _mm256_cvtepi32_epi64(tail32), _mm256_castpd_si256(_mm256_set1_pd(-INFINITY))));
    #define XF2_WLOAD_F(is_last, p, jb)                                                   \
        x = _mm256_mul_pd(_mm256_cvtps_pd(is_last ? _mm_maskload_ps(p, tail32)            \
                                                  : _mm_loadu_ps(p)),                     \
                          _mm256_loadu_pd(wv + (jb)));                                    \
        if (is_last) x = _mm256_or_pd(x, fill);
    #define XF2_WLOAD_D(is_last, p, jb)                                                   \
        x = _mm256_mul_pd(is_last ? _mm256_maskload_pd(p, tail) : _mm256_loadu_pd(p),     \
                          _mm256_loadu_pd(wv + (jb)));                                    \
        if (is_last) x = _mm256_or_pd(x, fill);
    XF2_PASS(xf2_wargmax_f, float, 4, __m256d, double, XF2_WARGS, XF2_WROW, XF2_SETUP_WF,
             XF2_WLOAD_F, (void)raw;, 0)
    XF2_PASS(xf2_wargmax_d, double, 4, __m256d, double, XF2_WARGS, XF2_WROW, XF2_SETUP_WD,
             XF2_WLOAD_D, (void)raw;, 0)
    #undef XV_SET1
    #undef XV_MAX
    #undef XV_LOAD
    #undef XV_STORE
    #undef XV_CMP
    #undef XV_HMAX
    #undef XV_MOVEMASK
    #undef XA_ZERO
    #undef XA_UPDATE

    /* Float matrices up to 8 * XF2R_MAX columns, one specialisation per block count: the
       column maxima stay in registers (named per block: GCC keeps arrays of vectors on the
       stack), their rows in the padded colarg buffer (16 registers hold no more), so each
       cell is loaded once per use and no branch depends on the data.
       INTD (the common case, similarities >= 0): while no value has its sign bit set, the
       float order of the values is the int32 order of their bits and equal values have
       equal bits, so compares and maxima run on the integer units (twice the float
       throughput on Zen); a NaN or +inf is then the row's maximum, so the rows' maxima tell
       whether one is present. A sign bit anywhere (negative values, -0.0, -inf) returns 2,
       checked every 8 rows, and the float pass decides: there each row's blocks go into a
       running sum, non-finite when a value is (or when huge finite values overflow, so the
       exact scan decides). */
    #define XF2R_MAX 16
    #define XF2R_CASES(CALL) switch ((n + 7) / 8) {                                      \
        case 1: CALL(1); case 2: CALL(2); case 3: CALL(3); case 4: CALL(4);              \
        case 5: CALL(5); case 6: CALL(6); case 7: CALL(7); case 8: CALL(8);              \
        case 9: CALL(9); case 10: CALL(10); case 11: CALL(11); case 12: CALL(12);        \
        case 13: CALL(13); case 14: CALL(14); case 15: CALL(15); default: CALL(16); }
    #define XF2R_EACH(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)   \
                         F(12) F(13) F(14) F(15)
    /* the lowest set bit of up to 128 equality bits, without a branch */
    #define XF2R_FIRST(lo, hi, NB)                                                        \
        ((int32_t)(_tzcnt_u64(lo) + ((NB) > 8 ? _tzcnt_u64(hi) & (0 - (uint64_t)((lo) == 0)) : 0)))
    #define XF2R_BITS(b, e) if ((b) < 8) lo |= (e) << (8 * ((b) & 7)); else hi |= (e) << (8 * ((b) & 7));
    #define XF2_I(v) _mm256_castps_si256(v)
    #define XF2_F(v) _mm256_castsi256_ps(v)
    /* the maximum of the 8 int32 lanes, in every lane */
    XF2R __m256i xf2_hmax_epi32(__m256i v) {
        v = _mm256_max_epi32(v, _mm256_shuffle_epi32(v, 0x4e));
        v = _mm256_max_epi32(v, _mm256_shuffle_epi32(v, 0xb1));
        return _mm256_max_epi32(v, _mm256_permute2x128_si256(v, v, 1));
    }
    #define XF2R_GT(a, b) (INTD ? XF2_F(_mm256_cmpgt_epi32(XF2_I(a), XF2_I(b)))          \
                                : _mm256_cmp_ps(a, b, _CMP_GT_OQ))
    #define XF2R_EQ(a, b) (INTD ? XF2_F(_mm256_cmpeq_epi32(XF2_I(a), XF2_I(b)))          \
                                : _mm256_cmp_ps(a, b, _CMP_EQ_OQ))
    #define XF2R_MAXV(a, b) (INTD ? XF2_F(_mm256_max_epi32(XF2_I(a), XF2_I(b))) : _mm256_max_ps(a, b))
    /* INTD: the sign bits seen; else the row's sum */
    #define XF2R_ACC(a, x) (INTD ? _mm256_or_ps(a, x) : _mm256_add_ps(a, x))
    XF2R int xf2r_argmax_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                           int32_t* rowarg, int32_t* colarg, const int NB, const int INTD) {
        const __m256i tail = xf2_lanes((int)(n - 8 * (NB - 1)));
        /* below every value: lanes past the row end hold it */
        const __m256 low = INTD ? XF2_F(_mm256_set1_epi32(INT32_MIN)) : _mm256_set1_ps(-INFINITY);
        const __m256 fill = _mm256_andnot_ps(XF2_F(tail), low);
        __m256 x, acc = _mm256_setzero_ps(), top = low;
        #define XF2R_DECL(b) __m256 cb##b = low;
        XF2R_EACH(XF2R_DECL)
        #undef XF2R_DECL
        for (int b = 0; b < NB; b++)
            _mm256_storeu_si256((__m256i*)(colarg + 8 * b), _mm256_setzero_si256());
        for (Py_ssize_t i = 0; i < m; i++) {
            const float* r = s + i * ld;
            const __m256 iv = XF2_F(_mm256_set1_epi32((int)i));
            if (i + XF_AHEAD < m)  /* rows ahead; the first ones came with the previous matrix */
                for (int f = 0; f < 8 * NB + 16; f += 16) __builtin_prefetch(r + XF_AHEAD * ld + f, 0, 3);
            const __m256 raw = _mm256_maskload_ps(r + 8 * (NB - 1), tail);  /* 0 past the end */
            const __m256 xl = _mm256_or_ps(raw, fill);
            __m256 rm = xl, rs = raw;
            #define XF2R_UPD(b) if ((b) < NB) {                                              \
                x = (b) == NB - 1 ? xl : _mm256_loadu_ps(r + 8 * (b));                        \
                const __m256 g = XF2R_GT(x, cb##b);                                           \
                cb##b = XF2R_MAXV(x, cb##b);                                                  \
                float* cp = (float*)(colarg + 8 * (b));                                       \
                _mm256_storeu_ps(cp, _mm256_blendv_ps(_mm256_loadu_ps(cp), iv, g));           \
                if ((b) < NB - 1) { rm = XF2R_MAXV(rm, x); rs = XF2R_ACC(rs, x); } }
            XF2R_EACH(XF2R_UPD)
            #undef XF2R_UPD
            acc = XF2R_ACC(acc, rs);
            const __m256 bv = INTD ? XF2_F(xf2_hmax_epi32(XF2_I(rm))) : xf2_hmax_ps(rm);
            if (INTD) top = XF2R_MAXV(top, bv);
            uint64_t lo = 0, hi = 0;
            #define XF2R_ROW(b) if ((b) < NB) {                                              \
                x = (b) == NB - 1 ? xl : _mm256_loadu_ps(r + 8 * (b));                        \
                XF2R_BITS(b, (uint64_t)(unsigned)_mm256_movemask_ps(XF2R_EQ(x, bv))) }
            XF2R_EACH(XF2R_ROW)
            #undef XF2R_ROW
            /* no branch on where the maximum is: it would be mispredicted */
            rowarg[i] = XF2R_FIRST(lo, hi, NB);
            if (INTD && (i & 7) == 0 && _mm256_movemask_ps(acc)) return 2;
        }
        if (INTD)
            return _mm256_movemask_ps(acc) ? 2 : _mm256_movemask_ps(XF2_F(_mm256_cmpgt_epi32(
                XF2_I(top), _mm256_set1_epi32(0x7f7fffff)))) != 0;
        acc = _mm256_mul_ps(acc, _mm256_setzero_ps());  /* NaN exactly where acc is not finite */
        return _mm256_movemask_ps(_mm256_cmp_ps(acc, acc, _CMP_UNORD_Q)) != 0;
    }
    XF2 static int xf2r_pass_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                               int32_t* rowarg, int32_t* colarg, float* cb) {
        int st = 0;
        if (n > 8 * XF2R_MAX) return xf2_argmax_f(s, m, n, ld, rowarg, colarg, cb);
        #define XF2R_CALL(NB) st = xf2r_argmax_f(s, m, n, ld, rowarg, colarg, NB, 1); break
        XF2R_CASES(XF2R_CALL)
        #undef XF2R_CALL
        if (st < 2) return st | 2;  /* bit 1: every value's sign bit is clear */
        #define XF2R_CALL(NB) st = xf2r_argmax_f(s, m, n, ld, rowarg, colarg, NB, 0); break
        XF2R_CASES(XF2R_CALL)
        #undef XF2R_CALL
        return st && xf_nonfinite_f(s, m, n, ld);
    }

    /* One itermax round on a float matrix, as xf5r_wround_f (see there): each group's
       first maximum is found on the floats, only the winners are weighed in double. */
    XF2R void xf2r_colgroup_f(const float* s, Py_ssize_t ld, const int32_t* rows,
                              Py_ssize_t nr, Py_ssize_t n, float* best, int32_t* arg,
                              const int NB) {
        const __m256i tail = xf2_lanes((int)(n - 8 * (NB - 1)));
        const __m256 ninf = _mm256_set1_ps(-INFINITY);
        const __m256 fill = _mm256_andnot_ps(XF2_F(tail), ninf);
        const __m256 first = XF2_F(_mm256_set1_epi32(rows[0]));
        __m256 x;
        #define XF2R_DECL(b) __m256 cb##b = ninf, ca##b = first;
        XF2R_EACH(XF2R_DECL)
        #undef XF2R_DECL
        for (Py_ssize_t t = 0; t < nr; t++) {
            const float* r = s + rows[t] * ld;
            const __m256 iv = XF2_F(_mm256_set1_epi32(rows[t]));
            #define XF2R_UPD(b) if ((b) < NB) {                                              \
                x = (b) == NB - 1 ? _mm256_or_ps(_mm256_maskload_ps(r + 8 * (b), tail), fill) \
                                  : _mm256_loadu_ps(r + 8 * (b));                             \
                const __m256 g = _mm256_cmp_ps(x, cb##b, _CMP_GT_OQ);                         \
                cb##b = _mm256_max_ps(x, cb##b);                                              \
                ca##b = _mm256_blendv_ps(ca##b, iv, g); }
            XF2R_EACH(XF2R_UPD)
            #undef XF2R_UPD
        }
        #define XF2R_STORE(b) if ((b) < NB) {                                                \
            _mm256_storeu_ps(best + 8 * (b), cb##b);                                          \
            _mm256_storeu_ps((float*)(arg + 8 * (b)), ca##b); }
        XF2R_EACH(XF2R_STORE)
        #undef XF2R_STORE
    }
    /* Weighted row argmax of the rows rows[0 .. cnt), as xf5r_wrowarg_f: the free columns
       (lanes of fm) weigh wa, the others (lanes of tm) wb (ZT: 0, a taken row); each
       group's maximum is found on the floats, the two are weighed in double, and the first
       column holding the winning value(s) is the argmax. A group of weight 0 is all zeros
       (each of its cells holds the maximum); an empty group never wins.
       KT: the other group's first maximum is the row's unweighted argmax, rowarg[row] (see
       xf2r_wround_f), so only the free columns are scanned. */
    XF2R void xf2r_wrows_f(const float* s, Py_ssize_t ld, const int32_t* rows, Py_ssize_t cnt,
                           Py_ssize_t n, const __m256* fm, const __m256* tm, int has_f,
                           int has_t, double wa, double wb, int32_t* rowarg, const int NB,
                           const int ZT, const int KT) {
        const __m256i tail = xf2_lanes((int)(n - 8 * (NB - 1)));
        const __m256 ninf = _mm256_set1_ps(-INFINITY);
        const __m256 zf = XF2_F(_mm256_set1_epi32(-(int)(wa == 0.0)));
        const __m256 zt = XF2_F(_mm256_set1_epi32(-(int)(ZT || wb == 0.0)));
        for (Py_ssize_t t = 0; t < cnt; t++) {
            const float* r = s + rows[t] * ld;
            __m256 x, mf = ninf, mt = ninf;
            #define XF2R_MAXES(b) if ((b) < NB) {                                            \
                x = (b) == NB - 1 ? _mm256_maskload_ps(r + 8 * (b), tail)                     \
                                  : _mm256_loadu_ps(r + 8 * (b));                             \
                mf = _mm256_max_ps(mf, _mm256_blendv_ps(ninf, x, fm[b]));                     \
                if (!ZT && !KT) mt = _mm256_max_ps(mt, _mm256_blendv_ps(ninf, x, tm[b])); }
            XF2R_EACH(XF2R_MAXES)
            #undef XF2R_MAXES
            const int32_t jx = KT ? rowarg[rows[t]] : 0;
            const __m256 vf = xf2_hmax_ps(mf);
            const __m256 vt = ZT || KT ? _mm256_setzero_ps() : xf2_hmax_ps(mt);
            const double df = !has_f ? -INFINITY : wa == 0.0 ? 0.0 : (double)_mm256_cvtss_f32(vf) * wa;
            const double dt = !has_t ? -INFINITY : ZT || wb == 0.0 ? 0.0
                              : (double)(KT ? r[jx] : _mm256_cvtss_f32(vt)) * wb;
            const __m256 use_f = XF2_F(_mm256_set1_epi32(-(int)(df >= dt)));
            const __m256 use_t = XF2_F(_mm256_set1_epi32(-(int)(dt >= df)));
            uint64_t lo = 0, hi = 0;
            #define XF2R_ROW(b) if ((b) < NB) {                                              \
                x = (b) == NB - 1 ? _mm256_maskload_ps(r + 8 * (b), tail)                     \
                                  : _mm256_loadu_ps(r + 8 * (b));                             \
                const __m256 ef = _mm256_and_ps(_mm256_and_ps(use_f, fm[b]),                  \
                    _mm256_or_ps(zf, _mm256_cmp_ps(x, vf, _CMP_EQ_OQ)));                      \
                const __m256 et = KT ? _mm256_setzero_ps() : _mm256_and_ps(                   \
                    _mm256_and_ps(use_t, tm[b]),                                              \
                    _mm256_or_ps(zt, _mm256_cmp_ps(x, vt, _CMP_EQ_OQ)));                      \
                XF2R_BITS(b, (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_or_ps(ef, et))) }
            XF2R_EACH(XF2R_ROW)
            #undef XF2R_ROW
            if (KT) {  /* the other group's first maximum, when it may win */
                const uint64_t bit = (uint64_t)(dt >= df) << (jx & 63);
                lo |= jx < 64 ? bit : 0;
                hi |= jx < 64 ? 0 : bit;
            }
            rowarg[rows[t]] = XF2R_FIRST(lo, hi, NB);
        }
    }
    /* the rows' weighted row argmax: free rows (both column groups weigh > 0 as alpha > 0;
       kt: the taken columns' first maximum is rowarg's) */
    XF2 static void xf2r_wrows_free_f(const float* s, Py_ssize_t ld, const int32_t* rows,
                                      Py_ssize_t cnt, Py_ssize_t n, const __m256* fm,
                                      const __m256* tm, int has_f, int has_t, double wa,
                                      double wb, int32_t* rowarg, int kt) {
        #define XF2R_CALL(NB) if (kt) xf2r_wrows_f(s, ld, rows, cnt, n, fm, tm, has_f, has_t, \
                                                   wa, wb, rowarg, NB, 0, 1);                 \
                              else xf2r_wrows_f(s, ld, rows, cnt, n, fm, tm, has_f, has_t,    \
                                                wa, wb, rowarg, NB, 0, 0);                    \
                              break
        XF2R_CASES(XF2R_CALL)
        #undef XF2R_CALL
    }
    /* ... and taken rows: the taken columns weigh 0 */
    XF2 static void xf2r_wrows_taken_f(const float* s, Py_ssize_t ld, const int32_t* rows,
                                       Py_ssize_t cnt, Py_ssize_t n, const __m256* fm,
                                       const __m256* tm, int has_f, int has_t, double wa,
                                       int32_t* rowarg) {
        #define XF2R_CALL(NB) xf2r_wrows_f(s, ld, rows, cnt, n, fm, tm, has_f, has_t, wa, 0.0, \
                                           rowarg, NB, 1, 0); break
        XF2R_CASES(XF2R_CALL)
        #undef XF2R_CALL
    }
    XF2 static void xf2r_colgroup_nb_f(const float* s, Py_ssize_t ld, const int32_t* rows,
                                       Py_ssize_t nr, Py_ssize_t n, float* best, int32_t* arg) {
        #define XF2R_CALL(NB) xf2r_colgroup_f(s, ld, rows, nr, n, best, arg, NB); break
        XF2R_CASES(XF2R_CALL)
        #undef XF2R_CALL
    }
    /* as xf5r_wround_f; bf, bt, af, at: whole 8-lane blocks.
       quick: the first round on a matrix whose values all have a clear sign bit (>= +0),
       with 0 < w1 <= w2, so rowarg and colarg hold the unweighted argmaxes of the pass. A
       free row weighs every cell at least as much as a taken row does (and a free column as
       a taken one), and products of values >= 0 keep their order (the caller checked the
       weights), so: a column whose first maximum M lies in a free row r goes to r; one whose
       first maximum lies in a taken row has it as the taken rows' first maximum, and only
       the free rows are scanned. Rows likewise: a free row whose first maximum lies in a
       free column keeps it; one whose maximum lies in a taken column scans the free columns
       only. (A tie at equal weighed values goes to the lower index, which the first maximum
       is; a column of zeros goes to row 0, its first maximum.) */
    XF2 static Py_ssize_t xf2r_wround_f(
            const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld, const char* rfree,
            const char* cfree, double w1, double w2, const double* wv0, const double* wv1,
            int32_t* rows, int32_t* trows, float* bf, int32_t* af, float* bt, int32_t* at,
            char* need, int32_t* rowarg, int32_t* colarg, int32_t* newrow, int quick) {
        Py_ssize_t nf = 0, nt = 0, i, j, added = 0;
        for (i = 0; i < m; i++) {
            rows[nf] = (int32_t)i;
            trows[nt] = (int32_t)i;
            nf += rfree[i] != 0;
            nt += rfree[i] == 0;
        }
        if (nf) xf2r_colgroup_nb_f(s, ld, rows, nf, n, bf, af);
        if (quick) {
            /* the taken rows' first maximum of each column, or none (-inf) where the column's
               first maximum lies in a free row (that row wins) */
            for (j = 0; j < n; j++) {
                const int32_t r = colarg[j];
                const float v[2] = {s[r * ld + j], -INFINITY};
                bt[j] = v[rfree[r] != 0];
                at[j] = r;
            }
        } else if (nt) {
            xf2r_colgroup_nb_f(s, ld, trows, nt, n, bt, at);
        }
        /* the two winners of each column, weighed in double; empty group: -inf; a group of
           weight 0 is all zeros: its first row */
        const __m256d zero = _mm256_setzero_pd(), ninf = _mm256_set1_pd(-INFINITY);
        const __m128i f0 = _mm_set1_epi32(nf ? rows[0] : 0);
        const __m128i t0 = _mm_set1_epi32(nt ? trows[0] : 0);
        for (j = 0; j < n; j += 4) {
            const __m256d w1v = _mm256_loadu_pd(wv1 + j), w0v = _mm256_loadu_pd(wv0 + j);
            const __m256d zf = _mm256_cmp_pd(w1v, zero, _CMP_EQ_OQ);
            const __m256d zt = _mm256_cmp_pd(w0v, zero, _CMP_EQ_OQ);
            const __m256d df = nf ? _mm256_andnot_pd(zf, _mm256_mul_pd(_mm256_cvtps_pd(
                                    _mm_loadu_ps(bf + j)), w1v)) : ninf;
            const __m256d tv = _mm256_cvtps_pd(_mm_loadu_ps(bt + j));
            const __m256d dt = nt ? _mm256_blendv_pd(_mm256_andnot_pd(zt, _mm256_mul_pd(tv, w0v)),
                                                     ninf, _mm256_cmp_pd(tv, ninf, _CMP_EQ_OQ))
                                  : ninf;
            const __m128i fi = _mm_castps_si128(_mm_blendv_ps(
                _mm_loadu_ps((const float*)(af + j)), _mm_castsi128_ps(f0), xf2_narrow(zf)));
            const __m128i ti = _mm_castps_si128(_mm_blendv_ps(
                _mm_loadu_ps((const float*)(at + j)), _mm_castsi128_ps(t0), xf2_narrow(zt)));
            __m128 best = _mm_castsi128_ps(_mm_min_epi32(fi, ti));
            best = _mm_blendv_ps(best, _mm_castsi128_ps(fi), xf2_narrow(_mm256_cmp_pd(df, dt, _CMP_GT_OQ)));
            best = _mm_blendv_ps(best, _mm_castsi128_ps(ti), xf2_narrow(_mm256_cmp_pd(df, dt, _CMP_LT_OQ)));
            _mm_storeu_ps((float*)(colarg + j), best);
        }
        memset(need, 0, (size_t)m);
        for (j = 0; j < n; j++) need[colarg[j]] |= rfree[colarg[j]] | cfree[j];
        /* free-column lanes (fm) and the other columns (tm); a free row weighs them w2 and
           w1, a taken row w1 and 0 */
        __m256 fm[XF2R_MAX], tm[XF2R_MAX];
        Py_ssize_t nfc = 0;
        const Py_ssize_t nb = (n + 7) / 8;
        for (Py_ssize_t b = 0; b < nb; b++) {
            const __m256 lanes = _mm256_castsi256_ps(xf2_lanes(b == nb - 1 ? (int)(n - 8 * b) : 8));
            const __m256i c = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(cfree + 8 * b)));
            const __m256 taken = _mm256_castsi256_ps(_mm256_cmpeq_epi32(c, _mm256_setzero_si256()));
            fm[b] = _mm256_andnot_ps(taken, lanes);
            tm[b] = _mm256_and_ps(taken, lanes);
            nfc += __builtin_popcount((unsigned)_mm256_movemask_ps(fm[b]));
        }
        /* the rows that can make a new pair: free ones, then taken ones (quick: a free row
           whose first maximum lies in a free column keeps it); the other rows keep a valid
           column */
        Py_ssize_t cf = 0, ct = 0;
        for (i = 0; i < m; i++) {
            const int fr = rfree[i] != 0, keep = quick & (cfree[rowarg[i]] != 0);
            rows[cf] = (int32_t)i;
            trows[ct] = (int32_t)i;
            cf += need[i] & fr & !keep;
            ct += need[i] & !fr;
        }
        if (cf) xf2r_wrows_free_f(s, ld, rows, cf, n, fm, tm, nfc > 0, nfc < n, w2, w1, rowarg,
                                  quick);
        if (ct) xf2r_wrows_taken_f(s, ld, trows, ct, n, fm, tm, nfc > 0, nfc < n, w1, rowarg);
        for (i = 0; i < m; i++) {
            j = rowarg[i];
            newrow[added] = (int32_t)i;
            added += need[i] & (colarg[j] == i) & ((rfree[i] | cfree[j]) != 0);
        }
        return added;
    }

    /* the best level the CPU has: 2 the AVX-512 passes (AVX-512F/VL, BMI), 1 the AVX2
       passes (AVX2, BMI), 0 the portable scans */
    static int xf_cpu_level(void) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                && __builtin_cpu_supports("bmi"))
            return 2;
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi");
    }
    #define XF_FAST5(call) if (xf_level() == 2) return call;
    #define XF_FAST2(call) if (xf_level() == 1) return call;
    #else
    static int xf_cpu_level(void) { return 0; }
    #define XF_FAST5(call)
    #define XF_FAST2(call)
    #endif
    static int xf_lv = -1;
    static inline int xf_level(void) {
        int lv = __atomic_load_n(&xf_lv, __ATOMIC_RELAXED);
        if (lv < 0) {
            lv = xf_cpu_level();
            __atomic_store_n(&xf_lv, lv, __ATOMIC_RELAXED);
        }
        return lv;
    }
    /* tests choose the passes: 0 the portable scans, 1 up to AVX2, 2 up to AVX-512, capped
       at what the CPU has (not thread-safe against running kernels); a negative level
       leaves them. Returns the level in use. */
    static int xf_simd(int level) {
        if (level >= 0) {
            const int cpu = xf_cpu_level();
            __atomic_store_n(&xf_lv, level < cpu ? level : cpu, __ATOMIC_RELAXED);
        }
        return xf_level();
    }

    /* the passes the kernel calls; wargmax's tmp is scratch for the portable scan */
    static int xf_pass_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                         int32_t* rowarg, int32_t* colarg, float* cb) {
        XF_FAST5(xf5r_pass_f(s, m, n, ld, rowarg, colarg, cb))
        XF_FAST2(xf2r_pass_f(s, m, n, ld, rowarg, colarg, cb))
        return xf_argmax_f(s, m, n, ld, rowarg, colarg, cb);
    }
    static int xf_pass_d(const double* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                         int32_t* rowarg, int32_t* colarg, double* cb) {
        XF_FAST5(xf5_argmax_d(s, m, n, ld, rowarg, colarg, cb))
        XF_FAST2(xf2_argmax_d(s, m, n, ld, rowarg, colarg, cb))
        return xf_argmax_d(s, m, n, ld, rowarg, colarg, cb);
    }
    static int xf_wpass_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                          const char* rfree, const double* wv0, const double* wv1, double* tmp,
                          int32_t* rowarg, int32_t* colarg, double* cb) {
        XF_FAST5(xf5_wargmax_f(s, m, n, ld, rfree, wv0, wv1, rowarg, colarg, cb))
        XF_FAST2(xf2_wargmax_f(s, m, n, ld, rfree, wv0, wv1, rowarg, colarg, cb))
        xf_wargmax_f(s, m, n, ld, rfree, wv0, wv1, tmp, rowarg, colarg, cb);
        return 0;
    }
    static int xf_wpass_d(const double* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                          const char* rfree, const double* wv0, const double* wv1, double* tmp,
                          int32_t* rowarg, int32_t* colarg, double* cb) {
        XF_FAST5(xf5_wargmax_d(s, m, n, ld, rfree, wv0, wv1, rowarg, colarg, cb))
        XF_FAST2(xf2_wargmax_d(s, m, n, ld, rfree, wv0, wv1, rowarg, colarg, cb))
        xf_wargmax_d(s, m, n, ld, rfree, wv0, wv1, tmp, rowarg, colarg, cb);
        return 0;
    }
    /* new rows of an itermax round on the float groups (AVX-512 for n <= 16 * XF5R_MAX,
       AVX2 for n <= 8 * XF2R_MAX), -1 when the caller must run the double pass */
    static Py_ssize_t xf_wround_f(const float* s, Py_ssize_t m, Py_ssize_t n, Py_ssize_t ld,
                                  const char* rfree, const char* cfree, double w1, double w2,
                                  const double* wv0, const double* wv1, int32_t* rows,
                                  int32_t* trows, float* bf, int32_t* af, float* bt,
                                  int32_t* at, char* need, int32_t* rowarg, int32_t* colarg,
                                  int32_t* newrow, int first, int nonneg) {
    #ifdef XF5
        /* order kept only while x * w stays a normal double for every nonzero float32 x
           (>= 2^-149): a weight below 2^-873 makes products subnormal, and ties appear */
        if ((w1 == 0.0 || w1 >= 1e-200) && (w2 == 0.0 || w2 >= 1e-200)) {
            const int lv = xf_level();
            if (lv == 2 && n <= 16 * XF5R_MAX)
                return xf5r_wround_f(s, m, n, ld, rfree, cfree, w1, w2, wv0, wv1, rows, trows,
                                     bf, af, bt, at, need, rowarg, colarg, newrow);
            if (lv == 1 && n <= 8 * XF2R_MAX)
                return xf2r_wround_f(s, m, n, ld, rfree, cfree, w1, w2, wv0, wv1, rows, trows,
                                     bf, af, bt, at, need, rowarg, colarg, newrow,
                                     first && nonneg && w1 > 0.0 && w2 >= w1);
        }
    #endif
        return -1;
    }
    """
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
