"""Plain-Python twin of ``csrc/_wordcache.pyx`` (same signatures and results).

Selected when ``XFAST_PURE_PYTHON=1`` or when the extension is not built.
"""

from __future__ import annotations

import threading

import numpy as np


class WordCache:
    """Word bytes -> subword ids, bounded to about ``max_words`` words (see the kernel)."""

    def __init__(self, max_words: int = 1 << 20) -> None:
        if max_words < 1:
            raise ValueError("max_words must be >= 1")
        self.max_words = max_words
        self.hits = self.misses = self.clears = 0
        self._table: dict[bytes, list[int]] = {}
        self._ids = 0
        self.lock = threading.Lock()

    def clear(self) -> None:
        """Forget every word."""
        with self.lock:
            self._table, self._ids = {}, 0

    def __len__(self) -> int:
        return len(self._table)

    def subwords(self, text, tok_off, sent_off, tokenize) -> tuple:
        """``(ids int64 (U,), word int32 (U,), sub_off int64 (S+1,))`` for a batch."""
        with self.lock:
            text = bytes(text)
            to = np.asarray(tok_off).tolist()
            so = np.asarray(sent_off).tolist()
            T = len(to) - 1
            if self._table and (len(self._table) + T > self.max_words or self._ids > 8 * self.max_words):
                self.clears += 1
                self._table, self._ids = {}, 0
            keys = [text[to[k]:to[k + 1]] for k in range(T)]
            new = list(dict.fromkeys(k for k in keys if k not in self._table))
            self.misses += len(new)
            self.hits += T - len(new)
            if new:
                got = tokenize([k.decode("utf-8") for k in new])
                if len(got) != len(new):
                    raise ValueError(f"tokenize returned {len(got)} id lists for {len(new)} words")
                for k, ids in zip(new, got):
                    self._table[k] = [int(i) for i in ids]
                    self._ids += len(ids)
            ids, word, sub_off = [], [], [0]
            for s in range(len(so) - 1):
                for k in range(so[s], so[s + 1]):
                    sub = self._table[keys[k]]
                    ids.extend(sub)
                    word.extend([k - so[s]] * len(sub))
                sub_off.append(len(ids))
            return (np.array(ids, np.int64), np.array(word, np.int32), np.array(sub_off, np.int64))
