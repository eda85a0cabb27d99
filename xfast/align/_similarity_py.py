"""Plain-Python twin of ``csrc/_similarity.pyx`` (same signatures and results)."""

from __future__ import annotations

import numpy as np


def divide_rows(x: np.ndarray, norms: np.ndarray, inplace: bool = False) -> np.ndarray:
    """``x / norms[:, None]`` as float32; ``inplace`` writes it over ``x`` and returns ``x``."""
    return np.divide(x, np.asarray(norms)[:, None], out=x if inplace else None)


def rescale(mats: list) -> None:
    """``(s + 1) / 2`` in place for every float32 matrix of ``mats``."""
    for s in mats:
        s += 1.0
        s /= 2.0
