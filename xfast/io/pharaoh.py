"""Pharaoh alignment text: one line per sentence pair, ``i-j`` pairs separated by spaces.

xfast writes ``labeled-receiving`` (docs/formats.md). The reference stores ``(receiving, labeled)``:
pass ``swap=True`` to read or write its order. A pair may carry a similarity score as
``i-j:0.8731``; readers return scores only when asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from xfast.errors import DataError, msg, short
from xfast.io.files import atomic_open, lines

__all__ = ["parse_pharaoh", "format_pharaoh", "read_pharaoh", "write_pharaoh"]


def _index(text: str) -> bool:
    return 0 < len(text) <= 10 and text.isascii() and text.isdigit() and int(text) <= 2**31 - 1


def parse_pharaoh(line: str, *, swap: bool = False, path: str | Path | None = None,
                  lineno: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse one line into int32 pairs of shape (k, 2) and float32 scores (or None)."""
    pairs, scores = [], []
    for item in line.split():
        pair, colon, score = item.partition(":")
        i, dash, j = pair.partition("-")
        # ASCII digits only (str.isdigit also accepts '²'), within int32
        if not (dash and _index(i) and _index(j)):
            raise DataError(path, lineno, msg("E107", pair=short(item)))
        pairs.append((int(j), int(i)) if swap else (int(i), int(j)))
        if colon:
            try:
                scores.append(float(score))
            except ValueError:
                raise DataError(path, lineno, msg("E107", pair=short(item))) from None
    if scores and len(scores) != len(pairs):
        raise DataError(path, lineno, msg("E107", pair=short(line.strip())))
    arr = np.array(pairs, np.int32).reshape(-1, 2)
    return arr, (np.array(scores, np.float32) if scores else None)


def format_pharaoh(pairs: Iterable, scores: Iterable[float] | None = None, *,
                   swap: bool = False) -> str:
    """Format pairs (and optional per-pair scores) as one Pharaoh line."""
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if swap:
        arr = arr[:, ::-1]
    if scores is None:
        return " ".join(f"{i}-{j}" for i, j in arr.tolist())
    return " ".join(f"{i}-{j}:{s:.4f}" for (i, j), s in zip(arr.tolist(), scores, strict=True))


def read_pharaoh(path: str | Path, *, swap: bool = False) -> Iterator[np.ndarray]:
    """Stream one (k, 2) int32 pair array per line (an empty line is an empty alignment)."""
    for no, text in lines(path):
        yield parse_pharaoh(text, swap=swap, path=path, lineno=no)[0]


def write_pharaoh(path: str | Path, alignments: Iterable, scores: Iterable | None = None, *,
                  swap: bool = False) -> int:
    """Write one line per alignment (atomically); return the number of lines."""
    n = 0
    score_iter = iter(scores) if scores is not None else None
    with atomic_open(path) as fh:
        for pairs in alignments:
            sc = next(score_iter) if score_iter is not None else None
            fh.write(format_pharaoh(pairs, sc, swap=swap) + "\n")
            n += 1
    return n
