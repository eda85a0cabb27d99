# cython: language_level=3
"""Per-word subword cache for :mod:`xfast.models.encoder`.

The encoder tokenizes every word on its own (words are pre-split), so a word's subword ids
depend on the word alone: a table from a word's UTF-8 bytes to its ids gives the same ids as
the tokenizer for a fraction of its cost (words repeat by Zipf's law). Open addressing over
64-bit FNV-1a hashes; keys and ids live in two pools. The table is bounded: a call that finds
it over ``max_words`` entries (or its pools over their budgets) empties it first.

Private kernel: the caller validates arrays. Plain-Python twin: ``xfast/models/_wordcache_py.py``.
"""

import threading

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

cnp.import_array()


cdef inline uint64_t _fnv(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef class WordCache:
    """Word bytes -> subword ids, bounded to about ``max_words`` words.

    ``subwords(text, tok_off, sent_off, tokenize)`` returns the ids of every token of a
    columnar batch; ``tokenize(words: list[str]) -> list[list[int]]`` is called once per call
    with the distinct words not yet in the table. ``hits`` / ``misses`` count token lookups.
    """

    cdef int32_t* slots
    cdef uint64_t* hashes
    cdef int64_t* key_off
    cdef int32_t* key_len
    cdef int64_t* ids_off
    cdef int32_t* ids_len
    cdef uint8_t* keys
    cdef int32_t* ids
    cdef Py_ssize_t n_slots, n_entries, cap_entries, key_used, key_cap, ids_used, ids_cap
    cdef readonly Py_ssize_t max_words
    cdef readonly int64_t hits, misses, clears
    cdef object lock

    def __init__(self, Py_ssize_t max_words=1 << 20):
        if max_words < 1:
            raise ValueError("max_words must be >= 1")
        self.max_words = max_words
        self.lock = threading.Lock()
        self.hits = self.misses = self.clears = 0
        self._alloc(64)

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        free(self.slots)
        free(self.hashes)
        free(self.key_off)
        free(self.key_len)
        free(self.ids_off)
        free(self.ids_len)
        free(self.keys)
        free(self.ids)
        self.slots = NULL
        self.hashes = NULL
        self.key_off = NULL
        self.key_len = NULL
        self.ids_off = NULL
        self.ids_len = NULL
        self.keys = NULL
        self.ids = NULL

    cdef int _alloc(self, Py_ssize_t entries) except -1:
        """Empty table for ``entries`` words (slots at most half full)."""
        cdef Py_ssize_t n = 16, i
        self._free()
        while n < 2 * entries:
            n *= 2
        self.n_slots = n
        self.cap_entries = entries
        self.slots = <int32_t*>malloc(n * sizeof(int32_t))
        self.hashes = <uint64_t*>malloc(entries * sizeof(uint64_t))
        self.key_off = <int64_t*>malloc(entries * sizeof(int64_t))
        self.key_len = <int32_t*>malloc(entries * sizeof(int32_t))
        self.ids_off = <int64_t*>malloc(entries * sizeof(int64_t))
        self.ids_len = <int32_t*>malloc(entries * sizeof(int32_t))
        self.key_cap = 16 * entries
        self.ids_cap = 8 * entries
        self.keys = <uint8_t*>malloc(self.key_cap)
        self.ids = <int32_t*>malloc(self.ids_cap * sizeof(int32_t))
        if (self.slots == NULL or self.hashes == NULL or self.key_off == NULL or self.key_len == NULL
                or self.ids_off == NULL or self.ids_len == NULL or self.keys == NULL or self.ids == NULL):
            self._free()
            raise MemoryError()
        for i in range(n):
            self.slots[i] = -1
        self.n_entries = self.key_used = self.ids_used = 0
        return 0

    def clear(self) -> None:
        """Forget every word."""
        with self.lock:
            self._alloc(64)

    def __len__(self) -> int:
        return self.n_entries

    cdef int _reserve(self, Py_ssize_t words, Py_ssize_t key_bytes) except -1:
        """Room for ``words`` more entries and ``key_bytes`` more key bytes; empties the
        table when it has outgrown its bound."""
        cdef Py_ssize_t need = self.n_entries + words
        if self.n_entries and (need > self.max_words or self.ids_used > 8 * self.max_words):
            self.clears += 1
            self._alloc(min(self.max_words, max(64, words)))
            need = words
        if need > self.cap_entries:
            self._grow(max(need, 2 * self.cap_entries))
        if self.key_used + key_bytes > self.key_cap:
            self.key_cap = max(self.key_used + key_bytes, 2 * self.key_cap)
            self.keys = <uint8_t*>_realloc(self.keys, self.key_cap)
        return 0

    cdef int _grow(self, Py_ssize_t entries) except -1:
        cdef Py_ssize_t n = self.n_slots, i, s
        while n < 2 * entries:
            n *= 2
        self.hashes = <uint64_t*>_realloc(self.hashes, entries * sizeof(uint64_t))
        self.key_off = <int64_t*>_realloc(self.key_off, entries * sizeof(int64_t))
        self.key_len = <int32_t*>_realloc(self.key_len, entries * sizeof(int32_t))
        self.ids_off = <int64_t*>_realloc(self.ids_off, entries * sizeof(int64_t))
        self.ids_len = <int32_t*>_realloc(self.ids_len, entries * sizeof(int32_t))
        self.cap_entries = entries
        if n != self.n_slots:
            free(self.slots)
            self.slots = <int32_t*>malloc(n * sizeof(int32_t))
            if self.slots == NULL:
                raise MemoryError()
            self.n_slots = n
            for i in range(n):
                self.slots[i] = -1
            for i in range(self.n_entries):
                s = <Py_ssize_t>(self.hashes[i] & <uint64_t>(n - 1))
                while self.slots[s] >= 0:
                    s = (s + 1) & (n - 1)
                self.slots[s] = <int32_t>i
        return 0

    cdef inline int32_t _find_or_add(self, const uint8_t* p, Py_ssize_t n, bint* added) noexcept nogil:
        cdef uint64_t h = _fnv(p, n)
        cdef Py_ssize_t s = <Py_ssize_t>(h & <uint64_t>(self.n_slots - 1))
        cdef int32_t e
        while True:
            e = self.slots[s]
            if e < 0:
                break
            if (self.hashes[e] == h and self.key_len[e] == n
                    and (n == 0 or memcmp(self.keys + self.key_off[e], p, n) == 0)):
                added[0] = False
                return e
            s = (s + 1) & (self.n_slots - 1)
        e = <int32_t>self.n_entries
        self.n_entries += 1
        self.slots[s] = e
        self.hashes[e] = h
        self.key_off[e] = self.key_used
        self.key_len[e] = <int32_t>n
        if n:
            memcpy(self.keys + self.key_used, p, n)
        self.key_used += n
        self.ids_len[e] = -1
        added[0] = True
        return e

    cdef int _fill(self, int32_t[::1] nv, Py_ssize_t n_new, tokenize) except -1:
        """Tokenize the new entries ``nv[:n_new]`` and store their ids."""
        cdef Py_ssize_t j, total = 0
        cdef int32_t e
        words = [(<const char*>(self.keys + self.key_off[nv[j]]))[:self.key_len[nv[j]]].decode("utf-8")
                 for j in range(n_new)]
        got = tokenize(words)
        if len(got) != n_new:
            raise ValueError(f"tokenize returned {len(got)} id lists for {n_new} words")
        for j in range(n_new):
            total += len(got[j])
        if self.ids_used + total > self.ids_cap:
            self.ids_cap = max(self.ids_used + total, 2 * self.ids_cap)
            self.ids = <int32_t*>_realloc(self.ids, self.ids_cap * sizeof(int32_t))
        for j in range(n_new):
            e = nv[j]
            self.ids_off[e] = self.ids_used
            self.ids_len[e] = <int32_t>len(got[j])
            for w in got[j]:
                self.ids[self.ids_used] = w
                self.ids_used += 1
        return 0

    def subwords(self, const uint8_t[::1] text, const int64_t[::1] tok_off,
                 const int64_t[::1] sent_off, tokenize):
        """``(ids int64 (U,), word int32 (U,), sub_off int64 (S+1,))`` for a batch: the
        subword ids of every token in order, each subword's word index in its sentence, and
        each sentence's range of subwords."""
        with self.lock:
            return self._subwords(text, tok_off, sent_off, tokenize)

    cdef tuple _subwords(self, const uint8_t[::1] text, const int64_t[::1] tok_off,
                         const int64_t[::1] sent_off, tokenize):
        cdef Py_ssize_t T = tok_off.shape[0] - 1, S = sent_off.shape[0] - 1, k, s, j, U = 0
        cdef Py_ssize_t n_new = 0, at
        cdef const uint8_t* base = &text[0] if text.shape[0] else NULL
        cdef bint added
        cdef int32_t e
        self._reserve(T, tok_off[T] - tok_off[0] if T else 0)
        cdef cnp.ndarray[int32_t, ndim=1] ent = np.empty(max(T, 1), np.int32)
        cdef cnp.ndarray[int32_t, ndim=1] new = np.empty(max(T, 1), np.int32)
        cdef int32_t[::1] ev = ent
        cdef int32_t[::1] nv = new
        with nogil:
            for k in range(T):
                e = self._find_or_add(base + tok_off[k], tok_off[k + 1] - tok_off[k], &added)
                ev[k] = e
                if added:
                    nv[n_new] = e
                    n_new += 1
        self.misses += n_new
        self.hits += T - n_new
        if n_new:
            try:
                self._fill(nv, n_new, tokenize)
            except BaseException:
                self._alloc(64)  # the new entries have no ids: forget them all
                raise
        cdef cnp.ndarray[int64_t, ndim=1] sub_off = np.zeros(S + 1, np.int64)
        cdef int64_t[::1] so = sub_off
        for k in range(T):
            U += self.ids_len[ev[k]]
        cdef cnp.ndarray[int64_t, ndim=1] ids = np.empty(U, np.int64)
        cdef cnp.ndarray[int32_t, ndim=1] word = np.empty(U, np.int32)
        cdef int64_t[::1] iv = ids
        cdef int32_t[::1] wv = word
        at = 0
        with nogil:
            for s in range(S):
                for k in range(sent_off[s], sent_off[s + 1]):
                    e = ev[k]
                    for j in range(self.ids_len[e]):
                        iv[at] = self.ids[self.ids_off[e] + j]
                        wv[at] = <int32_t>(k - sent_off[s])
                        at += 1
                so[s + 1] = at
        return ids, word, sub_off


cdef void* _realloc(void* p, size_t n) except NULL:
    cdef void* q = realloc(p, n if n else 1)
    if q == NULL:
        raise MemoryError()
    return q
