/* The C passes of the alignment kernel, csrc/_align.pyx (xfast.align._align), which
   includes this file through `cdef extern from "_align_simd.h"` and declares there the
   names it calls: xf_pass_f/_d, xf_wpass_f/_d, xf_wround_f, xf_nonfinite_f/_d, xf_simd,
   xf_prefetch, the batch scheduler's atomics (xf_fetch_add ... xf_wait), XF_PAD, XF_AHEAD.

   Header-only on purpose: everything is static (the small helpers static inline) in the
   extension's one translation unit, as when this text was a string in the .pyx, so GCC's
   target_clones resolvers and the target("avx512f") / target("avx2") passes are built
   exactly as before and the kernel's calls into them can still be inlined.

   Standalone (a C check or test): it brings Python.h for Py_ssize_t only (no libpython
   to link), so compile with Python's include directory, sysconfig.get_paths()["include"].
   xf_simd(level) then picks the passes to check, as the Python tests do. */
#ifndef XF_ALIGN_SIMD_H
#define XF_ALIGN_SIMD_H

/* Py_ssize_t; Python.h comes before any standard header, as Python asks (the extension
   has already included it: this one is then empty) */
#include <Python.h>

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

#endif /* XF_ALIGN_SIMD_H */
