/* The element-wise steps of csrc/_similarity.pyx (SimAlign's similarity for xfast.align), in C so
   that the compiler vectorises them. Header-only: static functions in the extension's one unit. */
#ifndef XFAST_SIMILARITY_H
#define XFAST_SIMILARITY_H

#include <Python.h>

/* plain loops over restrict pointers, so the compiler vectorises them */
static void xs_divide_rows(const float* restrict x, const float* restrict norms,
                           float* restrict out, Py_ssize_t m, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < m; i++) {
        const float d = norms[i];
        const float* restrict r = x + i * n;
        float* restrict o = out + i * n;
        for (Py_ssize_t j = 0; j < n; j++) o[j] = r[j] / d;
    }
}
static void xs_divide_rows_inplace(float* restrict x, const float* restrict norms,
                                   Py_ssize_t m, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < m; i++) {
        const float d = norms[i];
        float* restrict r = x + i * n;
        for (Py_ssize_t j = 0; j < n; j++) r[j] = r[j] / d;
    }
}
static void xs_rescale(float* restrict s, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) { float y = s[j] + 1.0f; s[j] = y / 2.0f; }
}

#endif
