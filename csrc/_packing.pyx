# cython: language_level=3
"""Model input of one encoder batch for :mod:`xfast.models.encoder`, in one pass.

Private kernel: the caller validates the arrays. Plain-Python twin: ``xfast/models/_packing_py.py``.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t

cnp.import_array()


def pack(const int64_t[::1] ids, const int64_t[::1] starts, const int64_t[::1] sizes,
         const int64_t[::1] prefix, const int64_t[::1] suffix):
    """Rows back to back: row r is ``prefix + ids[starts[r]:starts[r] + sizes[r]] + suffix``.

    Returns ``(tokens int64 (N,), first int64 (R,))``: the packed ids and, per row, the
    position of its first content token in ``tokens``.
    """
    cdef Py_ssize_t R = starts.shape[0], npre = prefix.shape[0], nsuf = suffix.shape[0]
    cdef Py_ssize_t r, k, at = 0, total = 0
    for r in range(R):
        total += sizes[r] + npre + nsuf
    cdef cnp.ndarray[int64_t, ndim=1] tokens = np.empty(total, np.int64)
    cdef cnp.ndarray[int64_t, ndim=1] first = np.empty(R, np.int64)
    cdef int64_t[::1] t = tokens
    cdef int64_t[::1] f = first
    with nogil:
        for r in range(R):
            for k in range(npre):
                t[at + k] = prefix[k]
            at += npre
            f[r] = at
            for k in range(sizes[r]):
                t[at + k] = ids[starts[r] + k]
            at += sizes[r]
            for k in range(nsuf):
                t[at + k] = suffix[k]
            at += nsuf
    return tokens, first
