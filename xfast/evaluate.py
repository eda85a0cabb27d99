"""Entity-level evaluation exactly as seqeval 1.2.2's default mode computes it (docs/evaluation.md).

``scores`` returns the reference-results CSV columns (``overall_f1``, ``PER_precision``, ...);
``proj_ratio`` is the paper's projection ratio. Chunking runs in a compiled kernel
(``csrc/_chunks.pyx``) over integer label ids; seqeval itself is only a test oracle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from itertools import chain

import numpy as np

from xfast._native import load
from xfast.errors import DataError, msg
from xfast.io.readers import read_parallel

_kernel = load("xfast", "_chunks")

__all__ = ["scores", "proj_ratio", "entity_type", "ignore_types", "ScoreCounts", "evaluate_files"]

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
    """Mean over sentences of ``#B- predicted / #B- gold`` (docs/evaluation.md); 1 or 0 when gold has none."""
    _check_shapes(gold, pred)
    if not gold:
        return 0.0
    total = 0.0
    for g, p in zip(gold, pred):
        ng = sum(1 for lab in g if lab.startswith("B-"))
        npred = sum(1 for lab in p if lab.startswith("B-"))
        total += npred / ng if ng else float(npred == 0)
    return total / len(gold)


class ScoreCounts:
    """:func:`scores` and :func:`proj_ratio` accumulated batch by batch, in bounded memory.

    Every figure seqeval reports is a ratio of additive counts (true positives, gold and
    predicted chunks per type, equal tokens), so batches are counted as they come and nothing
    per sentence is kept; ``proj_ratio``'s sum is carried sentence by sentence, so the result
    equals the whole-corpus functions bit for bit. Labels are int32 codes (``0`` is ``O``,
    ``2*t+1`` ``B-`` and ``2*t+2`` ``I-`` of ``names[t]``). ``to_dict`` / ``from_dict`` carry
    the counts through JSON exactly (a resumed run continues from them).
    """

    def __init__(self) -> None:
        self.tp: dict[str, int] = {}
        self.n_true: dict[str, int] = {}
        self.n_pred: dict[str, int] = {}
        self.correct = 0
        self.tokens = 0
        self.sentences = 0
        self.ratio_sum = 0.0
        self.ratios: list[float] = []  # a batch's own proj_ratio terms (see of())

    def add(self, gold: np.ndarray, pred: np.ndarray, offsets: np.ndarray, names: Sequence[str],
            *, ignore: Iterable[str] = ()) -> None:
        """Count one batch: ``gold`` and ``pred`` int codes over the same tokens, ``offsets``
        int64 (S+1,) sentence bounds, ``names`` the type of each id; types in ``ignore``
        become ``O`` on both sides first."""
        gold = np.ascontiguousarray(gold, dtype=np.int32)
        pred = np.ascontiguousarray(pred, dtype=np.int32)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if gold.shape != pred.shape or (len(offsets) and offsets[-1] != len(gold)):
            raise DataError(None, None, msg("E108", what="token count", ng=len(gold), np=len(pred)))
        n = 1 + 2 * len(names)
        keep = np.ones(n, np.int32)
        for t, name in enumerate(names):
            if name in set(ignore):
                keep[2 * t + 1] = keep[2 * t + 2] = 0
        if not keep.all():
            gold, pred = gold * keep[gold], pred * keep[pred]
        types = list(names) + ["_"]
        tag_of = np.array([ord("O")] + [ord(c) for _ in names for c in "BI"], np.uint8)
        type_of = np.array([len(names)] + [t for t in range(len(names)) for _ in "BI"], np.int32)
        tp, nt, npr, correct = _kernel.count(gold, pred, offsets, tag_of, type_of, len(names), len(types))
        for t, name in enumerate(names):
            for table, arr in ((self.tp, tp), (self.n_true, nt), (self.n_pred, npr)):
                if arr[t]:
                    table[name] = table.get(name, 0) + int(arr[t])
        self.correct += int(correct)
        self.tokens += len(gold)
        self.sentences += len(offsets) - 1
        is_b = np.zeros(n, np.uint8)
        is_b[1::2] = 1
        self.ratio_sum = _kernel.ratio_sum(gold, pred, offsets, is_b, self.ratio_sum)

    @classmethod
    def of(cls, gold: np.ndarray, pred: np.ndarray, offsets: np.ndarray, names: Sequence[str], *,
           ignore: Iterable[str] = ()) -> ScoreCounts:
        """The counts of one batch on their own (as :meth:`add` takes it), for :meth:`absorb`
        to add in batch order: a batch may be counted in another thread than the one that
        keeps the totals. Its ``ratios`` hold each sentence's ``proj_ratio`` term, so the total
        is summed sentence by sentence as :meth:`add` sums it."""
        out = cls()
        out.add(gold, pred, offsets, names, ignore=ignore)
        gold = np.ascontiguousarray(gold, dtype=np.int32)
        pred = np.ascontiguousarray(pred, dtype=np.int32)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if set(ignore) & set(names):  # as add() maps them: ignored types are O on both sides
            keep = np.ones(1 + 2 * len(names), np.int32)
            for t, name in enumerate(names):
                if name in set(ignore):
                    keep[2 * t + 1] = keep[2 * t + 2] = 0
            gold, pred = gold * keep[gold], pred * keep[pred]
        is_b = np.zeros(1 + 2 * len(names), np.int64)
        is_b[1::2] = 1
        # each sentence's term, as _kernel.ratio_sum adds it: #B pred / #B gold in double, 1 or 0
        # when gold has none
        n_gold, n_pred = (np.diff(np.concatenate([[0], np.cumsum(is_b[x])])[offsets]) for x in (gold, pred))
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(n_gold > 0, n_pred / np.maximum(n_gold, 1), np.where(n_pred == 0, 1.0, 0.0))
        out.ratios = terms.astype(np.float64).tolist()
        return out

    @classmethod
    def of_labels(cls, gold: Labels, pred: Labels, *, ignore: Iterable[str] = ()) -> ScoreCounts:
        """:meth:`of` for IOB2 label strings, a list per sentence as :func:`scores` takes them:
        absorbed batch after batch, the totals' :meth:`result` equals :func:`scores` plus
        :func:`proj_ratio` of the whole lists (types in ``ignore`` as ``O``) to the last bit."""
        _check_shapes(gold, pred)
        ids: dict[str, int] = {}

        def codes(seqs: Labels) -> np.ndarray:
            return np.fromiter((0 if lab == "O" else 2 * ids.setdefault(lab[2:], len(ids)) + (lab[0] != "B") + 1
                                for s in seqs for lab in s), np.int32)

        g, p = codes(gold), codes(pred)
        offsets = np.zeros(len(gold) + 1, np.int64)
        np.cumsum([len(s) for s in gold], out=offsets[1:])
        return cls.of(g, p, offsets, list(ids), ignore=ignore)

    def absorb(self, batch: ScoreCounts) -> None:
        """Add a batch's :meth:`of` counts after everything added so far; the result equals
        :meth:`add` on the same batch, to the last bit."""
        for mine, theirs in ((self.tp, batch.tp), (self.n_true, batch.n_true), (self.n_pred, batch.n_pred)):
            for name, v in theirs.items():
                mine[name] = mine.get(name, 0) + v
        self.correct += batch.correct
        self.tokens += batch.tokens
        self.sentences += batch.sentences
        total = self.ratio_sum
        for r in batch.ratios:
            total += r
        self.ratio_sum = total

    def result(self) -> dict[str, float]:
        """What :func:`scores` returns for everything added, plus ``proj_ratio``."""
        out: dict[str, float] = {}
        for name in sorted(set(self.n_true) | set(self.n_pred)):
            pr, rc, f1 = _prf(self.tp.get(name, 0), self.n_pred.get(name, 0), self.n_true.get(name, 0))
            out[f"{name}_f1"] = f1
            out[f"{name}_number"] = self.n_true.get(name, 0)
            out[f"{name}_precision"] = pr
            out[f"{name}_recall"] = rc
        pr, rc, f1 = _prf(sum(self.tp.values()), sum(self.n_pred.values()), sum(self.n_true.values()))
        out["overall_accuracy"] = self.correct / self.tokens if self.tokens else 0.0
        out["overall_f1"] = f1
        out["overall_precision"] = pr
        out["overall_recall"] = rc
        out["proj_ratio"] = self.ratio_sum / self.sentences if self.sentences else 0.0
        return out

    def to_dict(self) -> dict:
        """JSON-ready counts (floats round-trip exactly through JSON)."""
        return {"tp": self.tp, "n_true": self.n_true, "n_pred": self.n_pred, "correct": self.correct,
                "tokens": self.tokens, "sentences": self.sentences, "ratio_sum": self.ratio_sum}

    @classmethod
    def from_dict(cls, d: dict) -> ScoreCounts:
        """Counts saved by :meth:`to_dict`."""
        out = cls()
        out.tp, out.n_true, out.n_pred = dict(d["tp"]), dict(d["n_true"]), dict(d["n_pred"])
        out.correct, out.tokens, out.sentences = int(d["correct"]), int(d["tokens"]), int(d["sentences"])
        out.ratio_sum = float(d["ratio_sum"])
        return out


def evaluate_files(gold: str | Path, pred: str | Path, *, ignore: Sequence[str] = ()) -> tuple[dict, int, int | None]:
    """Scores (:func:`scores`, plus ``proj_ratio``) of the labels of ``pred`` against those of
    ``gold``, two CoNLL or JSONL files of the same sentences (``xfast evaluate``). Returns
    ``(scores, tokens that differ between the files, the line in pred of the first one or
    None)``: labels are scored position by position, so differing tokens only warn. A sentence
    count or length that differs is a :class:`DataError` [E104]/[E108] naming the file and line."""
    g, p = [], []
    differ, first = 0, None
    for gs, ps in read_parallel([gold, pred], labels=[True, True]):
        if len(gs) != len(ps):
            raise DataError(pred, ps.line, msg("E108", what=f"the length of the sentence at {gold}:{gs.line}",
                                               ng=len(gs), np=len(ps)))
        for k, (a, b) in enumerate(zip(gs.tokens, ps.tokens)):
            if a != b:
                differ += 1
                first = first or (ps.line + k if ps.line else None)
        g.append(gs.labels)
        p.append(ps.labels)
    result = scores(g, p, ignore=ignore)
    result["proj_ratio"] = proj_ratio(ignore_types(g, ignore), ignore_types(p, ignore))
    return result, differ, first
