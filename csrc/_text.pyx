# cython: language_level=3
"""Columnar text kernels for :mod:`xfast.io`: parse CoNLL / plain-text blocks into flat
token arrays, write CoNLL from them, and read entities off IOB2 label codes.

Private kernels: the caller (``xfast.io.conll``) hands in UTF-8-validated blocks that
start at a line boundary and checks the results; this file assumes valid input.
Plain-Python twin: ``xfast/io/_text_py.py`` (same signatures and results).

Label codes: ``0`` is ``O``, ``2*t+1`` is ``B-`` and ``2*t+2`` is ``I-`` of type id ``t``.
Whitespace is what Python's ``str.isspace`` accepts, matched on the UTF-8 bytes, so tokens
are exactly those of ``str.strip`` / ``str.split`` on the decoded line.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy

cnp.import_array()

# parse modes and error kinds (see xfast/io/_text_py.py)
DEF MODE_CONLL = 0
DEF MODE_TEXT = 1
DEF ERR_COLUMNS = 1    # E102: fewer than two columns where a label is needed
DEF ERR_NCOLS = 2      # E109: the column count changed
DEF ERR_LABEL = 3      # E103: not O, B-X or I-X


cdef inline int _ws_fwd(const uint8_t* p, const uint8_t* e) noexcept nogil:
    """Byte length of the whitespace character starting at ``p`` (< ``e``), else 0."""
    cdef uint8_t c = p[0]
    if c == 0x20 or (0x09 <= c <= 0x0d) or (0x1c <= c <= 0x1f):
        return 1
    if c == 0xc2:
        if p + 1 < e and (p[1] == 0x85 or p[1] == 0xa0):
            return 2
        return 0
    if c < 0xe1 or c > 0xe3 or p + 2 >= e:
        return 0
    if c == 0xe1:
        return 3 if p[1] == 0x9a and p[2] == 0x80 else 0
    if c == 0xe3:
        return 3 if p[1] == 0x80 and p[2] == 0x80 else 0
    if p[1] == 0x80 and (p[2] <= 0x8a or p[2] == 0xa8 or p[2] == 0xa9 or p[2] == 0xaf):
        return 3
    return 3 if p[1] == 0x81 and p[2] == 0x9f else 0


cdef inline int _ws_bwd(const uint8_t* s, const uint8_t* p) noexcept nogil:
    """Byte length of the whitespace character ending just before ``p`` (> ``s``), else 0."""
    cdef uint8_t c = (p - 1)[0]
    if c == 0x20 or (0x09 <= c <= 0x0d) or (0x1c <= c <= 0x1f):
        return 1
    if c < 0x80:
        return 0
    if p - s >= 2 and (p - 2)[0] == 0xc2 and (c == 0x85 or c == 0xa0):
        return 2
    if p - s < 3:
        return 0
    if (p - 3)[0] == 0xe1:
        return 3 if (p - 2)[0] == 0x9a and c == 0x80 else 0
    if (p - 3)[0] == 0xe3:
        return 3 if (p - 2)[0] == 0x80 and c == 0x80 else 0
    if (p - 3)[0] != 0xe2:
        return 0
    if (p - 2)[0] == 0x80 and (c <= 0x8a or c == 0xa8 or c == 0xa9 or c == 0xaf):
        return 3
    return 3 if (p - 2)[0] == 0x81 and c == 0x9f else 0


cdef inline const uint8_t* _lstrip(const uint8_t* a, const uint8_t* b) noexcept nogil:
    cdef int k
    while a < b:
        k = _ws_fwd(a, b)
        if k == 0:
            break
        a += k
    return a


cdef inline const uint8_t* _rstrip(const uint8_t* a, const uint8_t* b) noexcept nogil:
    cdef int k
    while b > a:
        k = _ws_bwd(a, b)
        if k == 0:
            break
        b -= k
    return b


cdef inline const uint8_t* _field_end(const uint8_t* a, const uint8_t* b) noexcept nogil:
    """End of the non-whitespace run starting at ``a``."""
    while a < b and _ws_fwd(a, b) == 0:
        a += 1
    return a


cdef inline const uint8_t* _line_at(const uint8_t* p, const uint8_t* end, bint final,
                                    const uint8_t** le) noexcept nogil:
    """The ``\\n`` ending the line at ``p`` (``end`` for a last line when ``final``), NULL when
    the line is not complete yet; ``le[0]``: the line's end before trailing CR/LF bytes."""
    cdef const uint8_t* nl = <const uint8_t*>memchr(p, 10, end - p)
    if nl == NULL:
        if not final:
            return NULL
        nl = end
    cdef const uint8_t* e = nl
    while e > p and ((e - 1)[0] == 13 or (e - 1)[0] == 10):
        e -= 1
    le[0] = e
    return nl


cdef class _Out:
    """Growable output columns of one parse call."""

    cdef cnp.ndarray text, tok_off, codes, sent_off, sent_line
    cdef uint8_t* tp
    cdef int64_t* to
    cdef int32_t* cp
    cdef int64_t* so
    cdef int64_t* sl
    cdef Py_ssize_t nt, ns, nb, cap_t, cap_s

    def __cinit__(self, Py_ssize_t nbytes, Py_ssize_t cap_t, Py_ssize_t cap_s):
        self.text = np.empty(max(nbytes, 1), np.uint8)
        self.tok_off = np.empty(cap_t + 1, np.int64)
        self.codes = np.empty(max(cap_t, 1), np.int32)
        self.sent_off = np.empty(cap_s + 1, np.int64)
        self.sent_line = np.empty(max(cap_s, 1), np.int64)
        self.tp = <uint8_t*>cnp.PyArray_DATA(self.text)
        self.to = <int64_t*>cnp.PyArray_DATA(self.tok_off)
        self.cp = <int32_t*>cnp.PyArray_DATA(self.codes)
        self.so = <int64_t*>cnp.PyArray_DATA(self.sent_off)
        self.sl = <int64_t*>cnp.PyArray_DATA(self.sent_line)
        self.cap_t, self.cap_s = cap_t, cap_s
        self.nt = self.ns = self.nb = 0
        self.to[0] = 0
        self.so[0] = 0

    cdef inline void token(self, const uint8_t* a, const uint8_t* b, int32_t code) noexcept nogil:
        memcpy(self.tp + self.nb, a, b - a)
        self.nb += b - a
        self.cp[self.nt] = code
        self.nt += 1
        self.to[self.nt] = self.nb

    cdef inline void sentence(self, int64_t line, Py_ssize_t first_tok) noexcept nogil:
        """Close the sentence of tokens ``first_tok..nt``, normalising IOB1 to IOB2."""
        cdef Py_ssize_t k
        cdef int32_t prev = 0, c
        for k in range(first_tok, self.nt):
            c = self.cp[k]
            if c > 0 and (c & 1) == 0 and (prev == 0 or (prev - 1) >> 1 != (c - 1) >> 1):
                c -= 1
                self.cp[k] = c
            prev = c
        self.sl[self.ns] = line
        self.ns += 1
        self.so[self.ns] = self.nt

    def result(self, bint with_codes):
        return (self.text[:self.nb].tobytes(), self.tok_off[:self.nt + 1].copy(),
                self.sent_off[:self.ns + 1].copy(),
                self.codes[:self.nt].copy() if with_codes else None,
                self.sent_line[:self.ns].copy())


cdef int32_t _code(const uint8_t* a, const uint8_t* b, dict types) except -2:
    """Label code of the stripped label ``[a, b)``; -1 when it is not O, B-X or I-X."""
    cdef Py_ssize_t n = b - a
    if n == 1 and a[0] == 79:  # "O"
        return 0
    if n > 2 and (a[0] == 66 or a[0] == 73) and a[1] == 45:  # "B-" / "I-"
        key = (<const char*>(a + 2))[:n - 2]
        t = types.get(key)
        if t is None:
            t = len(types)
            types[key] = t
        return 2 * <int32_t>t + (1 if a[0] == 66 else 2)
    return -1


def parse(const uint8_t[::1] data, Py_ssize_t pos, int64_t line, int mode, bint labels,
          bint final, bint after_doc, Py_ssize_t ncols, dict types):
    """Parse the lines of ``data[pos:]`` (see ``_text_py.parse`` for the contract)."""
    cdef Py_ssize_t end = data.shape[0]
    cdef const uint8_t* base = &data[0] if end else NULL
    cdef const uint8_t* p
    cdef const uint8_t* nl
    cdef const uint8_t* le
    cdef const uint8_t* a
    cdef const uint8_t* b
    cdef const uint8_t* t0
    cdef const uint8_t* t1
    cdef const uint8_t* l0
    cdef const uint8_t* l1
    cdef const uint8_t* tab
    cdef const uint8_t* q
    cdef Py_ssize_t nlines = 0, cols, first_tok = 0, k
    cdef Py_ssize_t sent_pos = -1, sent_ncols = ncols
    cdef int64_t sent_line = 0, sent_first_line = 0
    cdef bint sent_after_doc = after_doc, in_sent = False
    cdef int32_t code
    cdef int err = 0
    cdef int64_t err_line = 0
    cdef Py_ssize_t err_a = 0, err_b = 0
    p = base + pos
    while p < base + end:
        nl = <const uint8_t*>memchr(p, 10, base + end - p)
        if nl == NULL:
            break
        nlines += 1
        p = nl + 1
    cdef Py_ssize_t cap_t = nlines + 2 if mode == MODE_CONLL else (end - pos) // 2 + 2
    cdef _Out out = _Out(end - pos, cap_t, nlines + 2)
    p = base + pos
    while p < base + end:
        nl = _line_at(p, base + end, final, &le)
        if nl == NULL:
            break
        if mode == MODE_TEXT:
            a = _lstrip(p, le)
            while a < le:
                b = _field_end(a, le)
                out.token(a, b, 0)
                a = _lstrip(b, le)
            out.sentence(line, out.so[out.ns])
            line += 1
            p = nl + 1
            continue
        # CoNLL
        a = _lstrip(p, le)
        if a == le:  # blank: ends a sentence, or is an empty one
            if in_sent:
                out.sentence(sent_first_line, first_tok)
                in_sent = False
            elif not after_doc:
                out.sentence(line, out.nt)
            line += 1
            p = nl + 1
            continue
        tab = <const uint8_t*>memchr(p, 9, le - p)
        if tab != NULL:
            cols = 1
            q = tab
            l0 = tab + 1
            while q != NULL:
                cols += 1
                l0 = q + 1
                q = <const uint8_t*>memchr(q + 1, 9, le - (q + 1))
            t0, t1 = _lstrip(p, tab), _rstrip(p, tab)
            if t1 < t0:
                t1 = t0
            l0, l1 = _lstrip(l0, le), _rstrip(l0, le)
            if l1 < l0:
                l1 = l0
        else:
            cols = 0
            t0 = a
            t1 = l0 = l1 = a
            while a < le:
                b = _field_end(a, le)
                if cols == 0:
                    t1 = b
                l0, l1 = a, b
                cols += 1
                a = _lstrip(b, le)
        if t1 - t0 == 10 and memcmp(t0, b"-DOCSTART-", 10) == 0:
            after_doc = True
            line += 1
            p = nl + 1
            continue
        if not in_sent:  # the state before this line, to restart a partial sentence
            sent_pos, sent_line, sent_after_doc, sent_ncols = p - base, line, after_doc, ncols
        after_doc = False
        code = 0
        if labels:
            if cols < 2:
                err = ERR_COLUMNS
            elif ncols >= 0 and cols != ncols:
                err = ERR_NCOLS
            else:
                if ncols < 0:
                    ncols = cols
                code = _code(l0, l1, types)
                if code < 0:
                    err = ERR_LABEL
            if err:
                err_line, err_a, err_b = line, p - base, le - base
                break
        if not in_sent:
            in_sent = True
            sent_first_line = line
            first_tok = out.nt
        out.token(t0, t1, code)
        line += 1
        p = nl + 1
    if p > base + end:
        p = base + end
    cdef Py_ssize_t consumed = p - base
    cdef int64_t next_line = line
    if mode == MODE_CONLL and in_sent and not err:
        if final and p >= base + end:
            out.sentence(sent_first_line, first_tok)
        else:  # restart the partial sentence with the next block
            out.nt = first_tok
            out.nb = out.to[first_tok]
            consumed, next_line, after_doc, ncols = sent_pos, sent_line, sent_after_doc, sent_ncols
    text, tok_off, sent_off, codes, sent_lines = out.result(labels)
    return (text, tok_off, sent_off, codes, sent_lines, consumed, next_line, after_doc, ncols,
            err, err_line, err_a, err_b)


def entities(const int32_t[::1] codes, const int64_t[::1] sent_off, bint compat):
    """Entities of IOB2 codes: ``(ent_off (S+1,), spans (E, 2), types (E,))``, int64.

    A ``B-`` or an ``I-`` that does not continue the open entity's type starts one. With
    ``compat`` an entity directly followed by a ``B-`` is dropped (the reference's reader).
    """
    cdef Py_ssize_t S = sent_off.shape[0] - 1, s, k, n = 0, start
    cdef int32_t c, typ
    cdef cnp.ndarray[int64_t, ndim=1] off = np.zeros(S + 1, np.int64)
    cdef cnp.ndarray[int64_t, ndim=2] spans = np.empty((max(codes.shape[0], 1), 2), np.int64)
    cdef cnp.ndarray[int64_t, ndim=1] types = np.empty(max(codes.shape[0], 1), np.int64)
    cdef int64_t[::1] ov = off
    cdef int64_t[:, ::1] sv = spans
    cdef int64_t[::1] tv = types
    with nogil:
        for s in range(S):
            start = -1
            typ = -1
            for k in range(sent_off[s], sent_off[s + 1] + 1):
                c = codes[k] if k < sent_off[s + 1] else 0
                if c > 0 and (c & 1) == 0 and start >= 0 and (c - 1) >> 1 == typ:
                    continue
                if start >= 0:
                    if not (compat and c > 0 and (c & 1) == 1):
                        sv[n, 0] = start - sent_off[s]
                        sv[n, 1] = k - sent_off[s]
                        tv[n] = typ
                        n += 1
                    start = -1
                if c > 0:
                    start = k
                    typ = (c - 1) >> 1
            ov[s + 1] = n
    return off, spans[:n].copy(), types[:n].copy()


def stop_mask(const uint8_t[::1] text, const int64_t[::1] tok_off, list stops):
    """uint8 (T,): 1 where the token's bytes equal one of ``stops`` (bytes)."""
    cdef Py_ssize_t T = tok_off.shape[0] - 1, k, j, n_stop = len(stops), ln
    cdef cnp.ndarray[uint8_t, ndim=1] mask = np.zeros(T, np.uint8)
    cdef const uint8_t* base = &text[0] if text.shape[0] else NULL
    cdef bytes s
    for j in range(n_stop):
        s = stops[j]
        ln = len(s)
        for k in range(T):
            if tok_off[k + 1] - tok_off[k] == ln and (ln == 0 or memcmp(base + tok_off[k], <const char*>s, ln) == 0):
                mask[k] = 1
    return mask


def format_conll(const uint8_t[::1] text, const int64_t[::1] tok_off, const int64_t[::1] sent_off,
                 const int64_t[::1] codes, list table):
    """``token<TAB>label`` lines and a blank line after each sentence, as UTF-8 bytes.

    ``codes`` (T,) index ``table`` (one bytes label per code).
    """
    cdef Py_ssize_t T = tok_off.shape[0] - 1, S = sent_off.shape[0] - 1, k, n, size = 0
    cdef Py_ssize_t nlab = len(table), at = 0, s
    cdef const char** lab_ptr = <const char**>malloc(max(nlab, 1) * sizeof(char*))
    cdef Py_ssize_t* lab_len = <Py_ssize_t*>malloc(max(nlab, 1) * sizeof(Py_ssize_t))
    cdef const char* base = <const char*>&text[0] if text.shape[0] else NULL
    cdef char* o
    if lab_ptr == NULL or lab_len == NULL:
        free(lab_ptr)
        free(lab_len)
        raise MemoryError()
    try:
        for k in range(nlab):
            if type(table[k]) is not bytes:
                raise TypeError("format_conll: table must hold bytes")
            lab_ptr[k] = PyBytes_AS_STRING(table[k])  # table keeps the objects alive
            lab_len[k] = PyBytes_GET_SIZE(table[k])
        for k in range(T):
            size += tok_off[k + 1] - tok_off[k] + 2 + lab_len[codes[k]]
        out = PyBytes_FromStringAndSize(NULL, size + S)
        o = PyBytes_AS_STRING(out)
        with nogil:
            for s in range(S):
                for k in range(sent_off[s], sent_off[s + 1]):
                    n = tok_off[k + 1] - tok_off[k]
                    memcpy(o + at, base + tok_off[k], n)
                    at += n
                    o[at] = 9
                    at += 1
                    n = lab_len[codes[k]]
                    memcpy(o + at, lab_ptr[codes[k]], n)
                    at += n
                    o[at] = 10
                    at += 1
                o[at] = 10
                at += 1
        return out
    finally:
        free(lab_ptr)
        free(lab_len)


def count(const uint8_t[::1] data, Py_ssize_t pos, int mode, bint final, bint after_doc, bint in_sent):
    """Sentences completed in the whole lines of ``data[pos:]`` (the last one too with
    ``final``), without reading tokens: ``(n, consumed, after_doc, in_sent)`` to carry into
    the next block. Same sentence rules as :func:`parse`."""
    cdef Py_ssize_t end = data.shape[0], n = 0
    cdef const uint8_t* base = &data[0] if end else NULL
    cdef const uint8_t* p = base + pos
    cdef const uint8_t* nl
    cdef const uint8_t* le
    cdef const uint8_t* a
    cdef const uint8_t* b
    cdef const uint8_t* tab
    with nogil:
        while p < base + end:
            nl = _line_at(p, base + end, final, &le)
            if nl == NULL:
                break
            if mode == MODE_TEXT:
                n += 1
                p = nl + 1
                continue
            a = _lstrip(p, le)
            if a == le:
                if in_sent:
                    n += 1
                    in_sent = False
                elif not after_doc:
                    n += 1
                p = nl + 1
                continue
            tab = <const uint8_t*>memchr(p, 9, le - p)
            if tab != NULL:
                a, b = _lstrip(p, tab), _rstrip(p, tab)
            else:
                b = _field_end(a, le)
            if b - a == 10 and memcmp(a, b"-DOCSTART-", 10) == 0:
                after_doc = True
            else:
                after_doc = False
                in_sent = True
            p = nl + 1
        if final and in_sent and p >= base + end:
            n += 1
            in_sent = False
    if p > base + end:
        p = base + end
    return n, p - base, after_doc, in_sent
