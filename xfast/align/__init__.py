"""Word alignment from encoder states: SimAlign similarity and extraction, AWESoME softmax.

See docs/alignment.md. A similarity matrix has one row per labeled-side token and one column per
receiving-side token unless a function says otherwise; pairs are int32 ``(k, 2)`` arrays of
``(row, col)`` sorted ascending. Inputs are validated here once; the extraction runs in the
compiled kernel ``_align`` (csrc/_align.pyx) without the GIL, or in its plain-Python twin
``_align_py`` when ``XFAST_PURE_PYTHON=1`` is set or the extension is not built (the one rule:
:mod:`xfast._native`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
from threadpoolctl import ThreadpoolController

from xfast._native import load
from xfast.errors import ParameterError, check_choice, msg

from . import _align_py, _similarity_py

_kernel = load("xfast.align", "_align")
_sim = load("xfast.align", "_similarity")

__all__ = [
    "METHODS",
    "align_states_batch",
    "align_unit_states",
    "extract",
    "extract_batch",
    "extract_columnar",
    "similarity",
    "softmax_extract",
    "to_words",
    "to_words_batch",
    "unit_rows",
    "unit_rows_inplace",
    "word_average",
    "simd",
]

#: Extraction methods: SimAlign's ``fwd``, ``rev``, ``inter`` (argmax), ``itermax``,
#: ``mwmf`` (match) and AWESoME's ``softmax``.
METHODS = _align_py.METHODS
TOKEN_TYPES = ("bpe", "word")


# ---------------------------------------------------------------- instruction-set level
#: ``XFAST_SIMD`` names a level of the extraction passes; ``auto`` (the default) times them on
#: this CPU at import. They give identical pairs at every level; only the speed differs.
SIMD_LEVELS = {"portable": 0, "avx2": 1, "avx512": 2}
_SIMD: dict = {}


def _calibrate() -> dict:
    """Choose the extraction passes' level: the one ``XFAST_SIMD`` names, else the faster of
    AVX-512 and AVX2 on a fixed set of 400 itermax matrices (best of five alternating rounds,
    about 5 ms): some CPUs run AVX-512 as two 256-bit halves, where the AVX2 passes win.
    Returns what :func:`simd` reports."""
    if _kernel is _align_py:
        return {"level": None, "name": "python", "chosen_by": "no compiled kernel"}
    top = _kernel._simd(2)  # the best this CPU has
    wanted = os.environ.get("XFAST_SIMD", "auto").strip().lower() or "auto"
    if wanted not in ("auto", *SIMD_LEVELS):
        print(f"xfast: warning: XFAST_SIMD={wanted!r} is none of auto, {', '.join(SIMD_LEVELS)}; timing the "
              "levels instead", file=sys.stderr)
        wanted = "auto"
    if wanted != "auto":
        level = _kernel._simd(SIMD_LEVELS[wanted])
        return {"level": level, "name": _name(level), "chosen_by": "XFAST_SIMD"}
    if top < 2:
        return {"level": top, "name": _name(top), "chosen_by": "the CPU's best"}
    rng = np.random.default_rng(0)
    mats = [rng.standard_normal((int(rng.integers(20, 50)), int(rng.integers(20, 50)))).astype(np.float32)
            for _ in range(400)]
    code = _check_params("itermax", 2, 0.9, 1e-3)
    best = {1: float("inf"), 2: float("inf")}
    for _ in range(5):
        for level in (2, 1):
            _kernel._simd(level)
            t = time.perf_counter()
            _kernel.extract_list(mats, *code)
            best[level] = min(best[level], time.perf_counter() - t)
    level = 1 if best[1] < 0.97 * best[2] else 2  # AVX-512 unless AVX2 is clearly faster
    _kernel._simd(level)
    return {"level": level, "name": _name(level), "chosen_by": "timing",
            "seconds": {_name(lv): round(t, 6) for lv, t in best.items()}}


def _name(level: int) -> str:
    return next(k for k, v in SIMD_LEVELS.items() if v == level)


def simd() -> dict:
    """The extraction passes' level in use (``{"level", "name", "chosen_by"}``, with the
    calibration's times when it timed them)."""
    if not _SIMD:
        _SIMD.update(_calibrate())
    return dict(_SIMD, level=None if _kernel is _align_py else _kernel._simd())


# ---------------------------------------------------------------- validation
def _check_params(method: str, max_count: int, alpha: float, threshold: float) -> tuple:
    """Method code and kernel weights; raises ParameterError [E201]/[E202]."""
    check_choice("method", method, METHODS)
    if isinstance(max_count, bool) or not isinstance(max_count, Integral) or max_count < 1:
        raise ParameterError(msg("E202", name="max_count", expected="an int >= 1", value=max_count))
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 <= alpha <= 1.0:
        raise ParameterError(msg("E202", name="alpha", expected="a real number in [0, 1]", value=alpha))
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not 0.0 <= threshold < 1.0:
        raise ParameterError(
            msg("E202", name="threshold", expected="a real number in [0, 1)", value=threshold)
        )
    alpha = float(alpha)
    # SimAlign's weight clip(alpha * free_row + alpha * free_col, 0, 1) for one / two free sides
    w1 = min(max(alpha * 1.0 + alpha * 0.0, 0.0), 1.0)
    w2 = min(max(alpha * 1.0 + alpha * 1.0, 0.0), 1.0)
    return METHODS.index(method), min(int(max_count), 2**62), w1, w2, float(threshold)


def _as_float(a: object, name: str, ndim: int = 2) -> np.ndarray:
    """``a`` as a float32 (kept) or float64 array with unit last stride, else ParameterError."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise ParameterError(msg("E310", name=name, dtype=arr.dtype))
    if arr.ndim != ndim:
        raise ParameterError(msg("E301", name=name, shape=arr.shape) if ndim == 2
                             else msg("E312", name=name, ndim=ndim, shape=arr.shape))
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim and arr.shape[-1] > 1 and arr.strides[-1] != arr.itemsize:
        arr = np.ascontiguousarray(arr)
    return arr


def _check_status(status: int, names: Sequence[str] | str) -> None:
    """Raise for a kernel's status (see ``_align_py.extract_list``)."""
    if status == -1:
        return
    b = -2 - status if status < -1 else status
    name = names if isinstance(names, str) else names[b]
    if status < -1:
        raise ParameterError(msg("E302", name=name))
    raise ParameterError(msg("E313", name=name))


def _check_threads(n_threads: int) -> int:
    if isinstance(n_threads, bool) or not isinstance(n_threads, Integral) or n_threads < 1:
        raise ParameterError(msg("E202", name="n_threads", expected="an int >= 1", value=n_threads))
    return int(n_threads)


_MIN_PER_THREAD = 32  # below this a thread costs more than it saves
_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_WORKERS = 0
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The module's worker threads, kept between calls (starting threads per call cost
    more than a whole batch of small matrices); a forked child makes its own."""
    global _POOL, _POOL_PID, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid() or _POOL_WORKERS < workers:
            if _POOL is not None and _POOL_PID == os.getpid():
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(workers, thread_name_prefix="xfast-align")
            _POOL_PID, _POOL_WORKERS = os.getpid(), workers
        return _POOL


def _parallel(fn: Callable, seqs: tuple, n_threads: int) -> tuple:
    """``fn(*seqs)`` (a kernel call returning pairs, counts, status) on contiguous chunks of
    ``seqs`` in ``n_threads`` pool threads (the kernel releases the GIL), joined in order.
    The caller waits rather than taking a chunk: measured faster, its thread would contend
    for the GIL with the workers' set-up."""
    n = len(seqs[0])
    k = max(1, min(n_threads, n // _MIN_PER_THREAD))
    if k == 1:
        return fn(*seqs)
    bounds = [n * t // k for t in range(k + 1)]
    parts = list(_pool(k).map(lambda t: fn(*(s[bounds[t]:bounds[t + 1]] for s in seqs)), range(k)))
    for t, (_, _, status) in enumerate(parts):
        if status < -1:
            return parts[t][0], None, status - bounds[t]
        if status >= 0:
            return parts[t][0], None, status + bounds[t]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), -1)


def _helpers(n_threads: int, n: int) -> dict:
    """Keyword arguments that let an extraction kernel call share its batch with up to
    ``n_threads - 1`` pool threads (they claim matrices as they arrive)."""
    k = max(1, min(n_threads, n // _MIN_PER_THREAD))
    return {"n_threads": k, "submit": _pool(k - 1).submit} if k > 1 else {}


def _offsets(counts: np.ndarray) -> np.ndarray:
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return off


# ---------------------------------------------------------------- extraction
def extract(sim: object, method: str = "itermax", *, max_count: int = 2, alpha: float = 0.9,
            threshold: float = 1e-3) -> np.ndarray:
    """Aligned cells of one similarity matrix (docs/alignment.md).

    Args:
        sim: (m, n) real matrix; float32 is used as is, other dtypes as float64.
        method: ``fwd``, ``rev``, ``inter``, ``itermax``, ``mwmf`` or ``softmax``
            (then ``sim`` holds raw dot products, see :func:`softmax_extract`).
        max_count, alpha: itermax's rounds and weight (SimAlign: 2, 0.9).
        threshold: softmax's strict probability threshold.

    Returns:
        int32 (k, 2) ``(row, col)`` pairs sorted ascending; empty when m or n is 0.

    Raises:
        ParameterError: not 2-D, not real, NaN/inf values, or a bad parameter.
    """
    code, max_count, w1, w2, threshold = _check_params(method, max_count, alpha, threshold)
    arr = _as_float(sim, "sim")
    pairs, _, status = _kernel.extract_list([arr], code, max_count, w1, w2, threshold)
    _check_status(status, "sim")
    return pairs


def extract_batch(sims: object, method: str = "itermax", *, lengths: object = None,
                  max_count: int = 2, alpha: float = 0.9, threshold: float = 1e-3,
                  n_threads: int = 1) -> list[np.ndarray]:
    """:func:`extract` on many matrices in one compiled call (GIL released).

    Args:
        sims: a sequence of 2-D matrices, or a padded (B, M, N) array with ``lengths``.
        lengths: with a 3-D ``sims``: (B, 2) ints, matrix b is ``sims[b, :lengths[b, 0],
            :lengths[b, 1]]`` (padding is never read). Without it a 3-D array is B full matrices.
        n_threads: threads sharing the batch (results do not depend on it).

    Returns:
        One int32 (k, 2) pair array per matrix, as :func:`extract` gives it (views into one
        buffer; :func:`extract_columnar` returns that buffer and its offsets).
    """
    pairs, counts = _extract_many(sims, method, lengths, max_count, alpha, threshold, n_threads)
    return _kernel.split(pairs, counts)


def extract_columnar(sims: object, method: str = "itermax", *, lengths: object = None,
                     max_count: int = 2, alpha: float = 0.9, threshold: float = 1e-3,
                     n_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`extract_batch` in the columnar layout: no array per matrix is made.

    Returns:
        ``(offsets, pairs)``: int64 (B+1,) and int32 (P, 2); matrix b's pairs are
        ``pairs[offsets[b]:offsets[b + 1]]``. ``xfast.project``'s ``*_columnar`` forms take
        them as ``aln_offsets`` and ``pairs``.
    """
    pairs, counts = _extract_many(sims, method, lengths, max_count, alpha, threshold, n_threads)
    return _offsets(counts), pairs


def _extract_many(sims: object, method: str, lengths: object, max_count: int, alpha: float,
                  threshold: float, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated kernel call behind :func:`extract_batch`: ``(pairs, counts)``."""
    code, max_count, w1, w2, threshold = _check_params(method, max_count, alpha, threshold)
    n_threads = _check_threads(n_threads)

    def run(mats: list) -> tuple:
        return _kernel.extract_list(mats, code, max_count, w1, w2, threshold,
                                    **_helpers(n_threads, len(mats)))

    if isinstance(sims, np.ndarray) and sims.ndim == 3:
        arr = _as_float(sims, "sims", ndim=3)
        nb, mm, nn = arr.shape
        if lengths is None:
            lens = np.tile(np.array([mm, nn], dtype=np.int64), (nb, 1))
        else:
            lens = np.asarray(lengths)
            if (lens.dtype.kind not in "iu" or lens.shape != (nb, 2)
                    or (lens < 0).any() or (lens[:, 0] > mm).any() or (lens[:, 1] > nn).any()):
                raise ParameterError(msg("E311", shape=(nb, mm, nn), got=lens.tolist()
                                         if lens.size <= 8 else f"shape {lens.shape}"))
            lens = np.ascontiguousarray(lens, dtype=np.int64)
        arr = np.ascontiguousarray(arr)
        pairs, counts, status = _kernel.extract_padded(arr, lens, code, max_count, w1, w2,
                                                       threshold, **_helpers(n_threads, nb))
        _check_status(status, [f"sims[{b}]" for b in range(nb)] if status != -1 else "")
        return pairs, counts
    if lengths is not None:
        raise ParameterError(msg("E202", name="lengths", expected="None unless sims is a 3-D array",
                                 value=type(lengths).__name__))
    if isinstance(sims, np.ndarray) and sims.ndim != 3:
        raise ParameterError(msg("E312", name="sims", ndim=3, shape=sims.shape))
    mats = sims if isinstance(sims, list) else list(sims)
    try:  # arrays of one float dtype go to the kernel as they are; it checks them
        pairs, counts, status = run(mats)
    except (TypeError, AttributeError, ValueError):
        mats = [_as_float(s, f"sims[{b}]") for b, s in enumerate(mats)]
        if any(a.dtype != np.float32 for a in mats):
            mats = [a.astype(np.float64, copy=False) for a in mats]
        pairs, counts, status = run(mats)
    if status != -1:
        _check_status(status, [f"sims[{b}]" for b in range(len(mats))])
    return pairs, counts


def softmax_extract(scores: object, threshold: float = 1e-3) -> np.ndarray:
    """AWESoME extraction: cells whose row softmax and column softmax both exceed
    ``threshold`` (strictly), on raw dot products ``x @ y.T`` (docs/alignment.md). Computed in float64.

    Returns int32 (k, 2) ``(row, col)`` pairs sorted ascending.
    """
    return extract(scores, "softmax", threshold=threshold)


# ---------------------------------------------------------------- similarity
def _normalize_rows(x: np.ndarray, copy: bool = True) -> np.ndarray:
    # as scikit-learn's normalize(): einsum row norms, near-zero norms left as 1, divide
    out = np.array(x, copy=True) if copy else x
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    out /= norms[:, None]
    return out


def _distort(sim: np.ndarray, ratio: float) -> np.ndarray:
    m, n = sim.shape
    if m < 2 or n < 2 or ratio == 0.0:
        return sim
    cols = np.arange(n, dtype=np.float64) / float(n - 1)
    rows = np.arange(m, dtype=np.float64) / float(m - 1)
    mask = 1.0 - ((cols[None, :] - rows[:, None]) ** 2) * ratio
    return sim * mask


def similarity(x: object, y: object, *, distortion: float = 0.0) -> np.ndarray:
    """SimAlign's similarity ``(cos(x_i, y_j) + 1) / 2`` (docs/alignment.md).

    Computed as SimAlign does (scikit-learn ``cosine_similarity``: L2-normalise rows, then
    one matrix product), so float32 states give bit-identical float32 values and near ties
    break as in SimAlign. With ``distortion`` r > 0 (and both sides >= 2 tokens) the matrix is
    multiplied by ``1 - r * (j/(n-1) - i/(m-1))**2``; as in SimAlign that mask is float64,
    so the result is then float64.

    Args:
        x: (m, d) states; y: (n, d) states. float32 stays float32, else float64.

    Returns:
        (m, n) matrix; (0, n) or (m, 0) when a side is empty.
    """
    xa = _as_float(x, "x")
    ya = _as_float(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ParameterError(msg("E314", a=xa.shape, b=ya.shape))
    if isinstance(distortion, bool) or not isinstance(distortion, Real) or not np.isfinite(distortion):
        raise ParameterError(msg("E202", name="distortion", expected="a finite real number",
                                 value=distortion))
    if xa.dtype != ya.dtype:
        xa, ya = xa.astype(np.float64), ya.astype(np.float64)
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ParameterError(msg("E302", name="x" if not np.isfinite(xa).all() else "y"))
    return _similarity(xa, ya, float(distortion))


def _similarity(x: np.ndarray, y: np.ndarray, distortion: float) -> np.ndarray:
    if x.shape[0] == 0 or y.shape[0] == 0:
        return np.zeros((x.shape[0], y.shape[0]), dtype=x.dtype)
    sim = (_normalize_rows(x) @ _normalize_rows(y).T + 1.0) / 2.0
    return _distort(sim, distortion)


def word_average(states: object, word_ids: object, n_words: int) -> np.ndarray:
    """Word vectors for token_type ``word``: the mean of each word's subword states.

    Summed in subword order and divided as numpy's ``mean(0)`` does (SimAlign's
    ``average_embeds_over_words``), so values are bit-identical to SimAlign's.

    Args:
        states: (s, d) subword states. word_ids: (s,) ints, the word of each subword
            (negative: none). n_words: number of words.

    Returns:
        (n_words, d) in the states' float dtype; a word without subwords gets a zero row
        (it has no vector: :func:`align_states_batch` leaves such words out).
    """
    st = _as_float(states, "states")
    ids = _as_ids(word_ids, "word_ids", st.shape[0])
    if isinstance(n_words, bool) or not isinstance(n_words, Integral) or n_words < 0:
        raise ParameterError(msg("E202", name="n_words", expected="an int >= 0", value=n_words))
    if ids.size and ids.max() >= n_words:
        raise ParameterError(msg("E315", name="word_ids", value=int(ids.max()), n=n_words))
    return _word_average(st, ids, int(n_words))


def _word_average(st: np.ndarray, ids: np.ndarray, n_words: int) -> np.ndarray:
    keep = ids >= 0
    acc = np.zeros((n_words, st.shape[1]), dtype=st.dtype)
    np.add.at(acc, ids[keep], st[keep])
    counts = np.bincount(ids[keep], minlength=n_words)
    # numpy's mean divides the dtype's sum by an intp count in float64, then casts back
    return (acc.astype(np.float64) / np.maximum(counts, 1)[:, None]).astype(st.dtype)


def _as_ids(ids: object, name: str, length: int) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        arr = arr.astype(np.int32)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or arr.shape[0] != length:
        raise ParameterError(msg("E316", name=name, n=length, shape=arr.shape, dtype=arr.dtype))
    if arr.size and arr.max() > np.iinfo(np.int32).max:
        raise ParameterError(msg("E315", name=name, value=int(arr.max()), n=np.iinfo(np.int32).max))
    return np.ascontiguousarray(arr, dtype=np.int32)


# ---------------------------------------------------------------- subwords to words
def to_words(pairs: object, labeled_word_ids: object, receiving_word_ids: object, *,
             compat_awesome: bool = False) -> np.ndarray:
    """Word pairs from subword pairs by union (docs/alignment.md).

    Words are aligned when any of their subwords are; subwords with a negative word id and
    words without subwords give no pair.

    Args:
        pairs: (k, 2) subword pairs ``(labeled subword, receiving subword)``.
        labeled_word_ids, receiving_word_ids: int arrays, the word of each subword.
        compat_awesome: reproduce the reference's AWESoME order (**compat**). The reference
            aligns with the receiving sentence as AWESoME's source, so its subword matrix has
            receiving rows; it adds ``(receiving word, labeled word)`` to a Python ``set`` while
            walking that matrix's nonzero cells row by row, then returns ``list(set)``. Here
            the pairs are put into that walk order (by receiving subword, then labeled
            subword), added to a real CPython ``set`` the same way, and read back in its
            iteration order, so the order equals the reference's on the same CPython;
            each pair is then swapped to ``(labeled, receiving)``. The pairs are unique but
            not sorted.

    Returns:
        int32 (k, 2) ``(labeled word, receiving word)`` pairs, sorted and unique (by default).
    """
    p = np.asarray(pairs)
    if p.size == 0:
        p = p.reshape(0, 2).astype(np.int64)
    if p.ndim != 2 or p.shape[1] != 2 or p.dtype.kind not in "iu":
        raise ParameterError(msg("E317", shape=p.shape, dtype=p.dtype))
    lw = np.asarray(labeled_word_ids)
    rw = np.asarray(receiving_word_ids)
    lw = _as_ids(lw, "labeled_word_ids", lw.shape[0] if lw.ndim == 1 else -1)
    rw = _as_ids(rw, "receiving_word_ids", rw.shape[0] if rw.ndim == 1 else -1)
    if len(p) and ((p < 0).any() or p[:, 0].max() >= len(lw) or p[:, 1].max() >= len(rw)):
        raise ParameterError(msg("E318", m=len(lw), n=len(rw)))
    if compat_awesome:
        return _reference_set_order(p, lw, rw)
    a = lw[p[:, 0]].astype(np.int64)
    b = rw[p[:, 1]].astype(np.int64)
    ok = (a >= 0) & (b >= 0)
    a, b = a[ok], b[ok]
    width = int(b.max()) + 1 if len(b) else 1
    codes = np.unique(a * width + b)
    return np.stack([codes // width, codes % width], axis=1).astype(np.int32).reshape(-1, 2)


def to_words_batch(pairs: Sequence[object], labeled_word_ids: Sequence[object],
                   receiving_word_ids: Sequence[object], *, n_threads: int = 1) -> list[np.ndarray]:
    """:func:`to_words` (sorted unique union) on many sentence pairs in one compiled call.

    Args:
        pairs: per sentence pair, (k, 2) subword pairs ``(labeled, receiving)``.
        labeled_word_ids, receiving_word_ids: per sentence pair, the word of each subword.
        n_threads: threads sharing the batch (results do not depend on it).

    Returns:
        Per sentence pair, int32 (k, 2) ``(labeled word, receiving word)`` pairs, sorted.
    """
    n_threads = _check_threads(n_threads)
    lists = [list(pairs), list(labeled_word_ids), list(receiving_word_ids)]
    sizes = [len(x) for x in lists]
    if len(set(sizes)) != 1:
        raise ParameterError(msg("E319", sizes=sizes))
    try:  # int32 arrays go to the kernel as they are; it checks them
        out, counts, status = _parallel(_kernel.union_list, tuple(lists), n_threads)
    except (TypeError, AttributeError, ValueError):
        ps, lws, rws = [], [], []
        for b, (p, lw, rw) in enumerate(zip(*lists)):
            try:
                p = np.asarray(p)
                if p.size == 0:
                    p = p.reshape(0, 2).astype(np.int32)
                if p.ndim != 2 or p.shape[1] != 2 or p.dtype.kind not in "iu":
                    raise ParameterError(msg("E317", shape=p.shape, dtype=p.dtype))
                lw, rw = np.asarray(lw), np.asarray(rw)
                lws.append(_as_ids(lw, "labeled_word_ids", lw.shape[0] if lw.ndim == 1 else -1))
                rws.append(_as_ids(rw, "receiving_word_ids", rw.shape[0] if rw.ndim == 1 else -1))
            except ParameterError as err:
                raise ParameterError(msg("E303", index=b, problem=str(err))) from None
            ps.append(np.ascontiguousarray(p.clip(-1, np.iinfo(np.int32).max), dtype=np.int32))
        out, counts, status = _parallel(_kernel.union_list, (ps, lws, rws), n_threads)
    if status != -1:
        raise ParameterError(msg("E303", index=status, problem=msg(
            "E318", m=len(lists[1][status]), n=len(lists[2][status]))))
    return _kernel.split(out, counts)


def _reference_set_order(p: np.ndarray, lw: np.ndarray, rw: np.ndarray) -> np.ndarray:
    order = np.lexsort((p[:, 0], p[:, 1]))
    seen: set[tuple[int, int]] = set()
    lwl, rwl = lw.tolist(), rw.tolist()
    for i, j in p[order].tolist():
        if lwl[i] >= 0 and rwl[j] >= 0:
            seen.add((rwl[j], lwl[i]))
    out = np.array([(lab, rec) for rec, lab in seen], dtype=np.int32)
    return out.reshape(-1, 2)


# ---------------------------------------------------------------- whole hot path
def align_states_batch(labeled_states: Sequence[object], receiving_states: Sequence[object],
                       labeled_word_ids: Sequence[object], receiving_word_ids: Sequence[object], *,
                       method: str = "itermax", token_type: str = "bpe", distortion: float = 0.0,
                       max_count: int = 2, alpha: float = 0.9, threshold: float = 1e-3,
                       compat_awesome: bool = False, n_threads: int = 1) -> list[np.ndarray]:
    """Word pairs for many sentence pairs from encoder states (docs/alignment.md).

    Each matrix is built as the reference builds it, with the receiving sentence as rows
    (SimAlign's and AWESoME's source side): similarity (SimAlign methods) or raw dot
    products (``softmax``), over subwords (``bpe``) or word averages (``word``). Every
    extraction and the subword-to-word union then run in one compiled call. ``fwd`` means
    each labeled token takes its best receiving token, ``rev`` the other way round.

    Args:
        labeled_states, receiving_states: per sentence pair, (s, d) layer-L states of the
            subwords (special tokens dropped).
        labeled_word_ids, receiving_word_ids: per sentence pair, (s,) int word of each
            subword (negative: none).
        method: one of :data:`METHODS`. token_type: ``bpe`` or ``word``.
        distortion: SimAlign's distortion ratio (SimAlign methods only).
        max_count, alpha: itermax's parameters. threshold: softmax's.
        compat_awesome: softmax only: the reference's pair order (see :func:`to_words`).
        n_threads: threads sharing the extraction (results do not depend on it).

    Returns:
        Per sentence pair, int32 (k, 2) ``(labeled word, receiving word)`` pairs, sorted and
        unique (in the reference's set order with ``compat_awesome``).
    """
    code, max_count, w1, w2, threshold = _check_params(method, max_count, alpha, threshold)
    check_choice("token_type", token_type, TOKEN_TYPES)
    n_threads = _check_threads(n_threads)
    if isinstance(distortion, bool) or not isinstance(distortion, Real) or not np.isfinite(distortion):
        raise ParameterError(msg("E202", name="distortion", expected="a finite real number",
                                 value=distortion))
    if method == "softmax" and distortion != 0.0:
        raise ParameterError(msg("E202", name="distortion", expected="0 with method 'softmax'",
                                 value=distortion))
    if compat_awesome and method != "softmax":
        raise ParameterError(msg("E202", name="compat_awesome",
                                 expected="False unless method is 'softmax'", value=compat_awesome))
    lists = (labeled_states, receiving_states, labeled_word_ids, receiving_word_ids)
    sizes = [len(x) for x in lists]
    if len(set(sizes)) != 1:
        raise ParameterError(msg("E319", sizes=sizes))
    # the kernel's rows are receiving tokens, so its fwd is xfast's rev
    code = {0: 1, 1: 0}.get(code, code)
    recs, labs, row_words, col_words = [], [], [], []
    for b in range(sizes[0]):
        lab, rec, lw, rw = _sentence_inputs(b, *(x[b] for x in lists))
        if token_type == "word":
            lab, lw = _present_word_vectors(lab, lw)
            rec, rw = _present_word_vectors(rec, rw)
        recs.append(rec)
        labs.append(lab)
        row_words.append(rw)
        col_words.append(lw)
    if method == "softmax":
        with _one_blas_thread():  # small products: see _similarities
            mats = [rec @ lab.T for rec, lab in zip(recs, labs)]
    else:
        mats = _similarities(recs, labs, float(distortion))
    if any(s.dtype != np.float32 for s in mats):
        mats = [s.astype(np.float64, copy=False) for s in mats]
    names = [f"sentence pair {b}: similarity" for b in range(len(mats))]
    helpers = _helpers(n_threads, len(mats))
    if compat_awesome:
        pairs, counts, status = _kernel.extract_list(mats, code, max_count, w1, w2, threshold,
                                                     **helpers)
        _check_status(status, names)
        return [_reference_set_order(p[:, ::-1], lw, rw)
                for p, lw, rw in zip(_kernel.split(pairs, counts), col_words, row_words)]
    pairs, counts, status = _kernel.extract_list(mats, code, max_count, w1, w2, threshold,
                                                 row_words, col_words, True, **helpers)
    _check_status(status, names)
    return _kernel.split(pairs, counts)


def unit_rows(states: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """``states`` with every row scaled to unit L2 norm, exactly as SimAlign (scikit-learn's
    ``normalize``) computes it: float32 stays float32, near-zero rows are left as they are.
    ``inplace=True`` overwrites a C-contiguous float array and returns it. The input of
    :func:`align_unit_states`."""
    x = _as_float(states, "states")
    if not len(x):
        return x if inplace else x.copy()
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    if x.dtype == np.float32 and x.flags.c_contiguous:
        return _sim.divide_rows(x, norms, inplace)
    if inplace and x is states:
        x /= norms[:, None]
        return x
    return x / norms[:, None]


def unit_rows_inplace(states: np.ndarray) -> np.ndarray:
    """:func:`unit_rows` over ``states`` itself: for fresh model outputs, which nothing
    else reads (the encoder's ``transform``)."""
    return unit_rows(states, inplace=True)


def align_unit_states(labeled: Sequence[np.ndarray], receiving: Sequence[np.ndarray],
                      labeled_word_ids: Sequence[np.ndarray], receiving_word_ids: Sequence[np.ndarray], *,
                      method: str = "itermax", distortion: float = 0.0, max_count: int = 2,
                      alpha: float = 0.9, n_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """SimAlign word pairs from row-normalised subword states (:func:`unit_rows`), in the
    columnar layout: the pairs :func:`align_states_batch` gives for the raw states, bit for
    bit, without normalising a sentence twice (a labeled side serves many receiving sides).

    Args:
        labeled, receiving: per sentence pair, float32 (s, d) unit-norm states.
        labeled_word_ids, receiving_word_ids: per sentence pair, int32 (s,) word of each subword.
        method: a SimAlign method (``fwd``, ``rev``, ``inter``, ``itermax``, ``mwmf``).

    Returns:
        ``(offsets, pairs)``: int64 (S+1,) and int32 (P, 2) ``(labeled word, receiving word)``.
    """
    if method == "softmax":
        raise ParameterError(msg("E201", name="method", options=[m for m in METHODS if m != "softmax"],
                                 value=method))
    code, max_count, w1, w2, threshold = _check_params(method, max_count, alpha, 1e-3)
    n_threads = _check_threads(n_threads)
    if isinstance(distortion, bool) or not isinstance(distortion, Real) or not np.isfinite(distortion):
        raise ParameterError(msg("E202", name="distortion", expected="a finite real number",
                                 value=distortion))
    sizes = [len(labeled), len(receiving), len(labeled_word_ids), len(receiving_word_ids)]
    if len(set(sizes)) != 1:
        raise ParameterError(msg("E319", sizes=sizes))
    code = {0: 1, 1: 0}.get(code, code)  # the kernel's rows are receiving tokens
    with _one_blas_thread():  # small products: see _similarities
        mats = [_unit_product(r, lab) for r, lab in zip(receiving, labeled)]
    if all(m.dtype == np.float32 and m.flags.c_contiguous for m in mats):
        _sim.rescale(mats)
    else:
        _similarity_py.rescale(mats)
    if distortion:
        mats = [_distort(m, float(distortion)) for m in mats]
    if any(m.dtype != np.float32 for m in mats):
        mats = [m.astype(np.float64, copy=False) for m in mats]
    row_words = [np.ascontiguousarray(w, dtype=np.int32) for w in receiving_word_ids]
    col_words = [np.ascontiguousarray(w, dtype=np.int32) for w in labeled_word_ids]
    pairs, counts, status = _kernel.extract_list(mats, code, max_count, w1, w2, threshold,
                                                 row_words, col_words, True,
                                                 **_helpers(n_threads, len(mats)))
    _check_status(status, [f"sentence pair {b}: similarity" for b in range(len(mats))])
    return _offsets(counts), pairs


def _unit_product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x @ y.T``: the cosines of unit rows (an empty side gives an empty matrix)."""
    if not len(x) or not len(y):
        return np.zeros((len(x), len(y)), dtype=np.result_type(x.dtype, y.dtype))
    return x @ y.T


_BLAS: ThreadpoolController | None = None


def _one_blas_thread():
    """A context that runs BLAS on one thread. The controller is made once: making it scans
    the process's loaded libraries, about a millisecond, too slow for every call."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def _similarities(xs: list, ys: list, distortion: float) -> list[np.ndarray]:
    """:func:`similarity` of many pairs, bit-identical to one call per pair.

    Rows are normalised once for all pairs (einsum's row norms do not depend on the other
    rows); each product stays one matmul per pair, since a padded batched matmul gives
    different float32 sums.
    """
    if not xs or any(a.dtype != np.float32 for a in xs + ys):
        return [_similarity(x, y, distortion) for x, y in zip(xs, ys)]
    xn = _normalize_rows(np.concatenate(xs), copy=False) if sum(len(x) for x in xs) else None
    yn = _normalize_rows(np.concatenate(ys), copy=False) if sum(len(y) for y in ys) else None
    xo = np.cumsum([0] + [len(x) for x in xs]).tolist()
    yo = np.cumsum([0] + [len(y) for y in ys]).tolist()
    # Many small products: one BLAS thread each. Threaded BLAS on matrices this small spends
    # its time waking threads, and under CPU contention (ONNX Runtime beside it) 20x longer.
    with _one_blas_thread():
        return [_one_similarity(xn, yn, xo, yo, b, distortion) for b in range(len(xs))]


def _one_similarity(xn: np.ndarray, yn: np.ndarray, xo: list, yo: list, b: int,
                    distortion: float) -> np.ndarray:
    """Pair ``b``'s similarity from the row-normalised stacks ``xn``/``yn`` and their offsets."""
    if xo[b] == xo[b + 1] or yo[b] == yo[b + 1]:
        return np.zeros((xo[b + 1] - xo[b], yo[b + 1] - yo[b]), dtype=np.float32)
    sim = xn[xo[b]:xo[b + 1]] @ yn[yo[b]:yo[b + 1]].T
    sim += 1.0
    sim /= 2.0
    return _distort(sim, distortion)


def _sentence_inputs(b: int, lab: object, rec: object, lw: object, rw: object) -> tuple:
    try:
        lab = _as_float(lab, "labeled_states")
        rec = _as_float(rec, "receiving_states")
        lw = _as_ids(lw, "labeled_word_ids", lab.shape[0])
        rw = _as_ids(rw, "receiving_word_ids", rec.shape[0])
        if lab.shape[1] != rec.shape[1] and lab.shape[0] and rec.shape[0]:
            raise ParameterError(msg("E314", a=lab.shape, b=rec.shape))
    except ParameterError as err:
        raise ParameterError(msg("E303", index=b, problem=str(err))) from None
    if lab.dtype != rec.dtype:
        lab, rec = lab.astype(np.float64), rec.astype(np.float64)
    return lab, rec, lw, rw


def _present_word_vectors(states: np.ndarray, ids: np.ndarray) -> tuple:
    present = np.unique(ids[ids >= 0]).astype(np.int32)
    dense = np.searchsorted(present, ids).astype(np.int32)
    dense[ids < 0] = -1
    return _word_average(states, dense, len(present)), present


simd()  # at import, before any kernel runs: the level must not change under a running kernel
