"""Plain-Python twin of ``csrc/_packing.pyx`` (same signature and results)."""

from __future__ import annotations

import numpy as np


def pack(ids, starts, sizes, prefix, suffix) -> tuple[np.ndarray, np.ndarray]:
    """Rows back to back: row r is ``prefix + ids[starts[r]:starts[r] + sizes[r]] + suffix``.

    Returns ``(tokens int64 (N,), first int64 (R,))``.
    """
    tokens, first, at = [], [], 0
    for s, n in zip(np.asarray(starts).tolist(), np.asarray(sizes).tolist()):
        row = [*np.asarray(prefix).tolist(), *np.asarray(ids[s:s + n]).tolist(), *np.asarray(suffix).tolist()]
        first.append(at + len(prefix))
        tokens.extend(row)
        at += len(row)
    return np.array(tokens, np.int64), np.array(first, np.int64)
