"""Compiled alignment kernels (csrc/_align.pyx); the plain-Python twin is ``_align_py``."""

import numpy as np

def extract_list(
    mats: list[np.ndarray],
    method: int,
    max_count: int,
    w1: float,
    w2: float,
    threshold: float,
    row_words: list[np.ndarray] | None = None,
    col_words: list[np.ndarray] | None = None,
    swap: bool = False,
) -> tuple[np.ndarray, np.ndarray, int]: ...
def extract_padded(
    sims: np.ndarray,
    lengths: np.ndarray,
    method: int,
    max_count: int,
    w1: float,
    w2: float,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, int]: ...
def union_list(
    pairs: list[np.ndarray], row_words: list[np.ndarray], col_words: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, int]: ...
# the passes in use: 0 the portable scans, 1 AVX2, 2 AVX-512; level >= 0 picks the best up
# to it that the CPU has (tests and benchmarks only), -1 only asks
def _simd(level: int = -1) -> int: ...
