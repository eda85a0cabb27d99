"""Independent plain-Python/numpy readings of SPEC §2 for the alignment tests.

Shares no code with xfast. SimAlign's own functions (PyPI ``simalign`` 0.4) are the oracle
for fwd / rev / inter / itermax / similarity; these cover what SimAlign does not.
"""

from __future__ import annotations

import numpy as np


def softmax_pairs(scores: np.ndarray, threshold: float = 1e-3) -> list[tuple[int, int]]:
    """AWESoME (SPEC §2): softmax over j and over i, keep cells where both > threshold."""
    a = np.asarray(scores, dtype=np.float64)
    if a.size == 0:
        return []
    p_fwd = np.exp(a - a.max(axis=1, keepdims=True))
    p_fwd = p_fwd / p_fwd.sum(axis=1, keepdims=True)
    p_rev = np.exp(a - a.max(axis=0, keepdims=True))
    p_rev = p_rev / p_rev.sum(axis=0, keepdims=True)
    keep = (p_fwd > threshold) & (p_rev > threshold)
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(keep))]


def near_threshold(scores: np.ndarray, threshold: float, tol: float = 1e-12) -> bool:
    """True when some probability is within ``tol`` (relative) of the threshold, where
    two correct float64 computations may disagree in the last bits."""
    a = np.asarray(scores, dtype=np.float64)
    if a.size == 0:
        return False
    for axis in (1, 0):
        p = np.exp(a - a.max(axis=axis, keepdims=True))
        p = p / p.sum(axis=axis, keepdims=True)
        if (np.abs(p - threshold) <= tol * threshold).any():
            return True
    return False


def union_words(pairs, labeled_word_ids, receiving_word_ids) -> list[tuple[int, int]]:
    """Sorted unique (labeled word, receiving word) pairs of subword pairs."""
    out = set()
    for i, j in pairs:
        a, b = int(labeled_word_ids[i]), int(receiving_word_ids[j])
        if a >= 0 and b >= 0:
            out.add((a, b))
    return sorted(out)


def reference_awesome_order(pairs, labeled_word_ids, receiving_word_ids) -> list[tuple[int, int]]:
    """The reference's AWESoME output order (SPEC §2 compat), from a dense matrix.

    The reference's matrix has receiving subwords as rows; it adds (receiving word,
    labeled word) to a set while walking the nonzero cells row by row and returns
    ``list(set)``; here converted to (labeled, receiving).
    """
    pairs = list(pairs)
    if not pairs:
        return []
    n_lab = len(labeled_word_ids)
    n_rec = len(receiving_word_ids)
    dense = np.zeros((n_rec, n_lab), dtype=bool)
    for i, j in pairs:
        dense[j, i] = True
    aligned = set()
    for r, c in zip(*np.nonzero(dense)):
        if receiving_word_ids[r] >= 0 and labeled_word_ids[c] >= 0:  # subwords without a word
            aligned.add((int(receiving_word_ids[r]), int(labeled_word_ids[c])))
    return [(lab, rec) for rec, lab in list(aligned)]
