# cython: language_level=3
"""Element-wise steps of SimAlign's similarity for :mod:`xfast.align`, in one pass each.

``divide_rows`` is the division of :func:`xfast.align.unit_rows` (each row by its norm) and
``rescale`` SimAlign's ``(cos + 1) / 2`` in place; both are single IEEE operations per
element in the input's precision, so the results equal numpy's bit for bit. Private kernels:
the caller validates dtypes and shapes. Plain-Python twin: ``xfast/align/_similarity_py.py``.
"""

import numpy as np

cimport numpy as cnp

cnp.import_array()


cdef extern from "_similarity_simd.h":
    void xs_divide_rows(const float* x, const float* norms, float* out, Py_ssize_t m, Py_ssize_t n) nogil
    void xs_divide_rows_inplace(float* x, const float* norms, Py_ssize_t m, Py_ssize_t n) nogil
    void xs_rescale(float* s, Py_ssize_t n) nogil


def divide_rows(x, const float[::1] norms, bint inplace=False):
    """``x / norms[:, None]`` for a C-contiguous float32 ``x``; ``inplace`` writes it over
    ``x`` (no new memory to fault in) and returns ``x``."""
    cdef float[:, ::1] xv = x
    cdef Py_ssize_t m = xv.shape[0], n = xv.shape[1]
    if inplace:
        if m and n:
            with nogil:
                xs_divide_rows_inplace(&xv[0, 0], &norms[0], m, n)
        return x
    cdef cnp.ndarray[float, ndim=2] out = np.empty((m, n), np.float32)
    if m and n:
        with nogil:
            xs_divide_rows(&xv[0, 0], &norms[0], <float*>cnp.PyArray_DATA(out), m, n)
    return out


def rescale(list mats):
    """``(s + 1) / 2`` in place for every float32 matrix of ``mats`` (C-contiguous)."""
    cdef float[:, ::1] s
    for a in mats:
        s = a
        if s.shape[0] and s.shape[1]:
            with nogil:
                xs_rescale(&s[0, 0], s.shape[0] * s.shape[1])
