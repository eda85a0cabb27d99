"""Entity-level evaluation exactly as seqeval 1.2.2's default mode computes it (SPEC §9).

``scores`` returns the reference-results CSV columns (``overall_f1``, ``PER_precision``, ...);
``proj_ratio`` is the paper's projection ratio. Chunking runs in a compiled kernel
(``csrc/_chunks.pyx``) over integer label ids; seqeval itself is only a test oracle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np

from xfast.errors import DataError, msg

if os.environ.get("XFAST_PURE_PYTHON") == "1":
    from xfast import _chunks_py as _kernel
else:
    try:
        from xfast import _chunks as _kernel
    except ImportError:  # extension not built: the twin computes the same numbers
        from xfast import _chunks_py as _kernel

__all__ = ["scores", "proj_ratio", "entity_type", "ignore_types"]

Labels = Sequence[Sequence[str]]


def entity_type(label: str) -> str:
    """The chunk type seqeval reads from ``label`` (``'B-PER'`` -> ``'PER'``, ``'O'`` -> ``'_'``)."""
    return label[1:].split("-", maxsplit=1)[-1] or "_"


def ignore_types(seqs: Labels, ignore: Iterable[str]) -> list[list[str]]:
    """Return ``seqs`` with every label whose type is in ``ignore`` replaced by ``'O'``."""
    ignore = set(ignore)
    if not ignore:
        return [list(s) for s in seqs]
    return [["O" if lab != "O" and entity_type(lab) in ignore else lab for lab in s] for s in seqs]


def _check_shapes(gold: Labels, pred: Labels) -> None:
    if len(gold) != len(pred):
        raise DataError(None, None, msg("E108", what="sentence count", ng=len(gold), np=len(pred)))
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise DataError(
                None, None, msg("E108", what=f"length of sentence {i}", ng=len(g), np=len(p))
            )


def scores(gold: Labels, pred: Labels, *, ignore: Iterable[str] = ()) -> dict[str, float]:
    """Score ``pred`` against ``gold`` (lists of label sequences), seqeval default mode.

    Returns a flat dict keyed as the reference CSV: ``{TYPE}_{f1,number,precision,recall}`` for
    every type in gold or prediction, and ``overall_{accuracy,f1,precision,recall}``. Types in
    ``ignore`` become ``O`` on both sides first. Zero divisions give 0.0, as seqeval's do.
    """
    _check_shapes(gold, pred)
    if ignore:
        gold, pred = ignore_types(gold, ignore), ignore_types(pred, ignore)
    for seq in chain(gold, pred):
        for lab in seq:
            if not isinstance(lab, str) or not lab:
                raise DataError(None, None, msg("E103", label=lab))
    vocab = {lab: i for i, lab in enumerate(sorted(set(chain.from_iterable(chain(gold, pred)))))}
    types = sorted({entity_type(lab) for lab in vocab} | {"_"})
    type_id = {t: i for i, t in enumerate(types)}
    tag_of = np.array([ord(lab[0]) if ord(lab[0]) < 256 else 0 for lab in vocab], np.uint8)
    type_of = np.array([type_id[entity_type(lab)] for lab in vocab], np.int32)
    if len(vocab) == 0:  # keep the kernels' table arguments non-empty
        tag_of, type_of = np.zeros(1, np.uint8), np.zeros(1, np.int32)
    n_tok = sum(len(s) for s in gold)
    offsets = np.zeros(len(gold) + 1, np.int64)
    np.cumsum([len(s) for s in gold], out=offsets[1:])
    g = np.fromiter(map(vocab.__getitem__, chain.from_iterable(gold)), np.int32, n_tok)
    p = np.fromiter(map(vocab.__getitem__, chain.from_iterable(pred)), np.int32, n_tok)
    tp, n_true, n_pred, correct = _kernel.count(
        g, p, offsets, tag_of, type_of, type_id["_"], len(types)
    )
    out: dict[str, float] = {}
    for t, name in enumerate(types):
        if n_true[t] or n_pred[t]:
            pr, rc, f1 = _prf(int(tp[t]), int(n_pred[t]), int(n_true[t]))
            out[f"{name}_f1"] = f1
            out[f"{name}_number"] = int(n_true[t])
            out[f"{name}_precision"] = pr
            out[f"{name}_recall"] = rc
    pr, rc, f1 = _prf(int(tp.sum()), int(n_pred.sum()), int(n_true.sum()))
    out["overall_accuracy"] = correct / n_tok if n_tok else 0.0
    out["overall_f1"] = f1
    out["overall_precision"] = pr
    out["overall_recall"] = rc
    return out


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    # the same float64 operations, in the same order, as seqeval's _prf_divide and f-score
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    f = 2.0 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def proj_ratio(gold: Labels, pred: Labels) -> float:
    """Mean over sentences of ``#B- predicted / #B- gold`` (SPEC §9); 1 or 0 when gold has none."""
    _check_shapes(gold, pred)
    if not gold:
        return 0.0
    total = 0.0
    for g, p in zip(gold, pred):
        ng = sum(1 for lab in g if lab.startswith("B-"))
        npred = sum(1 for lab in p if lab.startswith("B-"))
        total += npred / ng if ng else float(npred == 0)
    return total / len(gold)
