"""Per-link similarity scores for written alignments (Pharaoh ``i-j:score``).

A link's score is the best ``(cos + 1) / 2`` between any subword of its labeled word and any
subword of its receiving word. Only the linked word pairs are computed, not whole matrices.

Numba, not Cython, runs this kernel: it is float arithmetic over ragged arrays, parallel over
sentence pairs with ``prange``, needs no stable C ABI, and is only compiled (once, cached on
disk under xfast's cache folder) when a user asks for scores, so it adds nothing to start-up or to the build.
``link_scores_py`` is its plain-Python twin, selected by ``XFAST_PURE_PYTHON=1``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from xfast._native import use_numba
from xfast.models.cache import cache_dir

__all__ = ["link_scores", "link_scores_py"]

_NUMBA = use_numba("xfast.align.scores.link_scores")  # False under XFAST_PURE_PYTHON=1
_kernel = None  # compiled on the first call


def _compile():
    # Numba caches compiled kernels beside their source by default: inside an installed package
    # that leaves a __pycache__ folder which outlives an uninstall and then shadows the next
    # install. xfast's cache folder holds them instead (a NUMBA_CACHE_DIR the user set wins).
    numba_dir = os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))
    import numba
    import numba.core.config

    numba.core.config.CACHE_DIR = numba_dir  # read when the kernel is compiled, also if numba was imported first

    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(xs, xo, xw, ys, yo, yw, pairs, po, out):  # pragma: no cover - compiled
        for b in numba.prange(len(po) - 1):
            for k in range(po[b], po[b + 1]):
                i, j = pairs[k, 0], pairs[k, 1]
                best = -1.0
                for a in range(xo[b], xo[b + 1]):
                    if xw[a] != i:
                        continue
                    for c in range(yo[b], yo[b + 1]):
                        if yw[c] != j:
                            continue
                        dot = 0.0
                        for d in range(xs.shape[1]):
                            dot += xs[a, d] * ys[c, d]
                        if dot > best:
                            best = dot
                out[k] = (best + 1.0) / 2.0

    return kernel


def _unit(states: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    dim = next((s.shape[1] for s in states if s.ndim == 2), 1)
    flat = np.concatenate([np.asarray(s, np.float32).reshape(-1, dim) for s in states]) if states else \
        np.zeros((0, dim), np.float32)
    norms = np.linalg.norm(flat, axis=1)
    norms[norms == 0] = 1.0
    off = np.zeros(len(states) + 1, np.int64)
    np.cumsum([len(s) for s in states], out=off[1:])
    return flat / norms[:, None], off


def link_scores_py(x_states, x_word_ids, y_states, y_word_ids, alignments) -> list[np.ndarray]:
    """Plain-Python twin of :func:`link_scores` (whole similarity matrices, then maxima)."""
    out = []
    for x, xw, y, yw, pairs in zip(x_states, x_word_ids, y_states, y_word_ids, alignments):
        pairs = np.asarray(pairs).reshape(-1, 2)
        sc = np.empty(len(pairs), np.float32)
        if len(pairs):
            xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
            yn = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-30)
            sim = xn @ yn.T
            for k, (i, j) in enumerate(pairs.tolist()):
                sc[k] = (sim[np.asarray(xw) == i][:, np.asarray(yw) == j].max() + 1.0) / 2.0
        out.append(sc)
    return out


def link_scores(x_states: Sequence[np.ndarray], x_word_ids: Sequence[np.ndarray],
                y_states: Sequence[np.ndarray], y_word_ids: Sequence[np.ndarray],
                alignments: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scores of every ``(labeled, receiving)`` word pair in ``alignments``, float32 per pair.

    ``x_*`` are the labeled side's per-subword states and word ids, ``y_*`` the receiving
    side's; each alignment's pairs must name words that have subwords (as the aligner's do).
    """
    if not _NUMBA:
        return link_scores_py(x_states, x_word_ids, y_states, y_word_ids, alignments)
    global _kernel
    if _kernel is None:
        _kernel = _compile()
    xs, xo = _unit(x_states)
    ys, yo = _unit(y_states)
    xw = np.concatenate([np.asarray(w, np.int64) for w in x_word_ids] or [np.zeros(0, np.int64)])
    yw = np.concatenate([np.asarray(w, np.int64) for w in y_word_ids] or [np.zeros(0, np.int64)])
    parts = [np.asarray(a, np.int64).reshape(-1, 2) for a in alignments]
    po = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([len(p) for p in parts], out=po[1:])
    pairs = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    out = np.empty(len(pairs), np.float32)
    _kernel(xs, xo, xw, ys, yo, yw, pairs, po, out)
    return [out[po[b]:po[b + 1]] for b in range(len(parts))]
