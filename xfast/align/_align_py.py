"""Plain-Python twin of the compiled kernel ``xfast.align._align`` (csrc/_align.pyx).

Same functions, arguments and results; selected with ``XFAST_PURE_PYTHON=1`` or when the
extension is not built. Private: :mod:`xfast.align` validates inputs before calling.
Pairs are packed as ``row * n + col`` codes while a matrix is processed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "extract_list", "extract_padded", "split", "union_list"]

# method code = index in METHODS (the kernel's enum follows this order)
METHODS = ("fwd", "rev", "inter", "itermax", "mwmf", "softmax")
FWD, REV, INTER, ITERMAX, MWMF, SOFTMAX = range(6)


def _mwmf(s: np.ndarray) -> np.ndarray:
    """Maximum-weight matching of min(m, n) pairs by shortest augmenting paths on ``-sim``.

    The same steps and tie-breaking as the kernel (Jonker-Volgenant as Crouse 2016
    describes it); the inner scan over columns is vectorised.
    """
    m, n = s.shape
    tr = m > n
    cost = -(s.T if tr else s).astype(np.float64)
    nr, nc = cost.shape
    u = np.zeros(nr)
    v = np.zeros(nc)
    col4row = np.full(nr, -1, dtype=np.int64)
    row4col = np.full(nc, -1, dtype=np.int64)
    path = np.zeros(nc, dtype=np.int64)
    for cur in range(nr):
        minval = 0.0
        remaining = list(range(nc - 1, -1, -1))
        spc = np.full(nc, np.inf)
        sr = np.zeros(nr, dtype=bool)
        sc = np.zeros(nc, dtype=bool)
        sink = -1
        i = cur
        while sink == -1:
            sr[i] = True
            rem = np.array(remaining, dtype=np.int64)
            r = minval + cost[i, rem] - u[i] - v[rem]
            better = r < spc[rem]
            path[rem[better]] = i
            spc[rem[better]] = r[better]
            vals = spc[rem]
            lowest = vals.min()
            if not np.isfinite(lowest):
                raise FloatingPointError("mwmf: costs overflow")
            ties = np.flatnonzero(vals == lowest)
            free = ties[row4col[rem[ties]] == -1]
            # the kernel's scan keeps the first lowest, then moves to each later free tie
            index = int(free[-1]) if len(free) else int(ties[0])
            minval = float(lowest)
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = int(row4col[j])
            sc[j] = True
            remaining[index] = remaining[-1]
            remaining.pop()
        u[cur] += minval
        others = sr.copy()
        others[cur] = False
        rows = np.flatnonzero(others)
        u[rows] += minval - spc[col4row[rows]]
        v[sc] -= minval - spc[sc]
        j = sink
        while True:
            i = int(path[j])
            row4col[j] = i
            col4row[i], j = j, int(col4row[i])
            if i == cur:
                break
    rows = np.arange(nr)
    if tr:
        return np.sort(col4row * n + rows)
    return rows * n + col4row


def _softmax(s: np.ndarray, threshold: float) -> np.ndarray:
    """AWESoME's two-way softmax filter in double, sums accumulated in index order."""
    m, n = s.shape
    x = s.astype(np.float64)
    er = np.exp(x - x.max(axis=1, keepdims=True))
    ec = np.exp(x - x.max(axis=0, keepdims=True))
    rsum = np.cumsum(er, axis=1)[:, -1:]
    csum = np.cumsum(ec, axis=0)[-1:, :]
    keep = (er / rsum > threshold) & (ec / csum > threshold)
    return np.flatnonzero(keep).astype(np.int64)


def _extract_one(s: np.ndarray, method: int, max_count: int, w1: float, w2: float,
                 threshold: float) -> np.ndarray:
    m, n = s.shape
    if m == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if method == MWMF:
        return _mwmf(s)
    if method == SOFTMAX:
        return _softmax(s, threshold)
    rowarg = s.argmax(axis=1)
    colarg = s.argmax(axis=0)
    rows = np.arange(m)
    if method == FWD:
        return rows * n + rowarg
    if method == REV:
        return np.sort(colarg * n + np.arange(n))
    mutual = colarg[rowarg] == rows
    codes = rows[mutual] * n + rowarg[mutual]
    if method != ITERMAX or m <= 2 or n <= 2:
        return codes
    rfree = np.ones(m, dtype=bool)
    cfree = np.ones(n, dtype=bool)
    rfree[codes // n] = False
    cfree[codes % n] = False
    x = s.astype(np.float64)
    found = [codes]
    for _ in range(1, max_count):
        if not rfree.any() or not cfree.any():
            break
        weight = np.where(rfree[:, None], np.where(cfree, w2, w1), np.where(cfree, w1, 0.0))
        ws = x * weight
        ra = ws.argmax(axis=1)
        ca = ws.argmax(axis=0)
        new = (ca[ra] == rows) & (rfree | cfree[ra])
        if not new.any():
            break
        found.append(rows[new] * n + ra[new])
        rfree[rows[new]] = False
        cfree[ra[new]] = False
    return np.sort(np.concatenate(found))


def _run(mats: list, method: int, max_count: int, w1: float, w2: float, threshold: float,
         row_words: list | None, col_words: list | None, swap: bool) -> tuple:
    for b, s in enumerate(mats):
        if not np.isfinite(s).all():
            return np.zeros((0, 2), dtype=np.int32), np.zeros(len(mats), dtype=np.int64), -2 - b
    out = []
    counts = np.zeros(len(mats), dtype=np.int64)
    for b, s in enumerate(mats):
        n = s.shape[1]
        try:
            codes = _extract_one(s, method, max_count, w1, w2, threshold)
        except FloatingPointError:
            return np.zeros((0, 2), dtype=np.int32), counts, b
        a, c = codes // max(n, 1), codes % max(n, 1)
        if row_words is not None:
            a, c = row_words[b][a].astype(np.int64), col_words[b][c].astype(np.int64)
            ok = (a >= 0) & (c >= 0)
            a, c = (c[ok], a[ok]) if swap else (a[ok], c[ok])
            width = int(c.max()) + 1 if len(c) else 1
            codes = np.unique(a * width + c)
            a, c = codes // width, codes % width
        counts[b] = len(a)
        out.append(np.stack([a, c], axis=1).astype(np.int32).reshape(-1, 2))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int32)
    return pairs, counts, -1


def extract_list(mats: list, method: int, max_count: int, w1: float, w2: float,
                 threshold: float, row_words: list | None = None,
                 col_words: list | None = None, swap: bool = False, n_threads: int = 1,
                 submit: object = None) -> tuple:
    """Extract pairs from each 2-D array of ``mats``.

    ``mats``: one dtype (float32 or float64), unit column stride. With ``row_words`` and
    ``col_words`` (int32 arrays, one entry per row / column, negative: no word) the result
    is each matrix's sorted unique word pairs, ``(col word, row word)`` when ``swap``.
    ``n_threads`` and ``submit`` (the kernel's pool threads) are accepted and unused here.
    Returns ``(pairs int32 (K, 2), counts int64 (len(mats),), status)``; ``status`` is -1,
    or ``-2 - b`` when matrix ``b`` holds NaN or inf, or ``b`` when matrix ``b`` failed.
    """
    for b, a in enumerate(mats):
        if (not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != mats[0].dtype
                or a.dtype not in (np.float32, np.float64)
                or (a.size and a.shape[1] > 1 and a.strides[1] != a.itemsize)):
            raise TypeError(f"mats[{b}]: expected a 2-D array of one float dtype with unit column stride")
    return _run(mats, method, max_count, w1, w2, threshold, row_words, col_words, swap)


def extract_padded(sims: np.ndarray, lengths: np.ndarray, method: int, max_count: int,
                   w1: float, w2: float, threshold: float, n_threads: int = 1,
                   submit: object = None) -> tuple:
    """Like :func:`extract_list` on ``sims[b, :lengths[b, 0], :lengths[b, 1]]``.

    ``sims``: C-contiguous float32 or float64 (B, M, N); ``lengths`` within (M, N).
    """
    mats = [sims[b, : lengths[b, 0], : lengths[b, 1]] for b in range(sims.shape[0])]
    return _run(mats, method, max_count, w1, w2, threshold, None, None, False)


def union_list(pairs: list, row_words: list, col_words: list) -> tuple:
    """Sorted unique word pairs ``(row_words[i], col_words[j])`` of each (k, 2) int32 array
    of ``pairs`` (C-contiguous int32; ids int32, negative: no word).
    Returns ``(pairs int32 (K, 2), counts int64 (len(pairs),), status)``; ``status`` is -1,
    or ``b`` when ``pairs[b]`` indexes outside its maps."""
    for b, (p, rw, cw) in enumerate(zip(pairs, row_words, col_words)):
        for name, a, ndim in (("pairs", p, 2), ("row_words", rw, 1), ("col_words", cw, 1)):
            if (not isinstance(a, np.ndarray) or a.dtype != np.int32 or a.ndim != ndim
                    or (ndim == 2 and a.shape[1] != 2)):
                raise TypeError(f"{name}[{b}]: expected int32")
    out = []
    counts = np.zeros(len(pairs), dtype=np.int64)
    for b, p in enumerate(pairs):
        if len(p) and ((p < 0).any() or p[:, 0].max() >= len(row_words[b])
                       or p[:, 1].max() >= len(col_words[b])):
            return np.zeros((0, 2), dtype=np.int32), counts, b
        a = row_words[b][p[:, 0]].astype(np.int64)
        c = col_words[b][p[:, 1]].astype(np.int64)
        ok = (a >= 0) & (c >= 0)
        a, c = a[ok], c[ok]
        width = int(c.max()) + 1 if len(c) else 1
        codes = np.unique(a * width + c)
        counts[b] = len(codes)
        out.append(np.stack([codes // width, codes % width], axis=1).astype(np.int32).reshape(-1, 2))
    pairs_out = np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int32)
    return pairs_out, counts, -1


def split(pairs: np.ndarray, counts: np.ndarray) -> list:
    """Views ``pairs[start:start + counts[b]]``, one per ``counts`` entry."""
    ends = np.cumsum(counts).tolist()
    return [pairs[a:b] for a, b in zip([0] + ends[:-1], ends)]
