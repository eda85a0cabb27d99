"""The projection pipelines' stages, each a function from columnar arrays to columnar arrays.

Data flows one way: text columns (:class:`~xfast.io.columns.TokenColumns`) -> subwords
(:func:`tokenize`) -> encoder states (:func:`encode`, the only stage that runs a model) ->
word alignment (:func:`align`) -> label codes (:func:`project`) -> CoNLL bytes
(:func:`~xfast.io.columns.conll_bytes`) and score counts. No stage keeps state between
calls beyond what its arguments hold (a model, a word cache), so an engine may run them in
threads, processes or on other machines. Python strings are made only where text is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xfast.errors import XfastError
from xfast.io.columns import LabelTypes, TokenColumns
from xfast.pipelines.runner import PROJECTION_METHODS, ProjectionConfig, RunReport

__all__ = ["Entities", "Alignment", "tokenize", "encode", "align", "entities", "candidates", "project",
           "keep_types", "count_entities"]


@dataclass(frozen=True, eq=False)
class Entities:
    """Entities of S sentences: sentence i owns ``spans[offsets[i]:offsets[i+1]]`` (int64 (E, 2)
    half-open word spans) with ``types`` (int64 (E,) ids of a :class:`LabelTypes`)."""

    offsets: np.ndarray
    spans: np.ndarray
    types: np.ndarray


@dataclass(frozen=True, eq=False)
class Alignment:
    """Word pairs of S sentence pairs: pair i owns ``pairs[offsets[i]:offsets[i+1]]``, int32
    ``(labeled, receiving)`` rows, sorted."""

    offsets: np.ndarray
    pairs: np.ndarray


def tokenize(cols: TokenColumns, encoder):
    """Subword ids of every word (the encoder's per-word cache)."""
    return encoder.subwords(cols)


def encode(sub, encoder, transform=None, on_batch=None):
    """Layer-L states of every subword (:class:`~xfast.models.encoder.States`): the model
    forward, then ``transform`` on each output while it is in cache; ``on_batch(n)`` after
    each model call."""
    return encoder.encode_subwords(sub, transform=transform, on_batch=on_batch)


def align(labeled: tuple, receiving: tuple, aligner) -> Alignment:
    """Word pairs of each sentence pair from ``(subwords, states)`` of both sides."""
    offsets, pairs = aligner.align_columnar(labeled[0], labeled[1], receiving[0], receiving[1])
    return Alignment(offsets, pairs)


def entities(cols: TokenColumns, *, compat: bool = False) -> Entities:
    """Entities of a labeled batch's IOB2 codes. ``compat``: the reference's reader loses an
    entity that a ``B-`` directly follows (docs/translation.md)."""
    from xfast.io.columns import _K

    off, spans, types = _K.entities(cols.codes, cols.sent_off, compat)
    return Entities(off, spans, types)


def candidates(kind: str, cols: TokenColumns, cfg: ProjectionConfig, ner: TokenColumns | None = None):
    """Candidate spans of the receiving side as :class:`xfast.project.Spans`: ``ngram`` spans
    without a stop word, or the entities of ``ner`` (a NER model's labels of the same words)."""
    from xfast import project as P
    from xfast.io.columns import _K

    if kind == "ngram":
        stops = [w.encode("utf-8") for w in cfg.stop_words]
        mask = _K.stop_mask(cols.text, cols.tok_off, stops)
        return P.ngram_spans(mask, cols.sent_off, min_words=cfg.min_words, max_words=cfg.max_words)
    ents = entities(ner)
    if not cfg.sub_spans:
        return P.Spans(ents.offsets, ents.spans)
    per = [P.ner_candidates(ents.spans[ents.offsets[i]:ents.offsets[i + 1]].tolist(), sub_spans=True)
           for i in range(len(ents.offsets) - 1)]
    return P._spans(per)


def project(method: str, ents: Entities, aln: Alignment, n_receiving: np.ndarray,
            cfg: ProjectionConfig, cands=None) -> tuple[np.ndarray, object]:
    """Label codes (int64, one per receiving word) and the method's statistics."""
    from xfast import project as P

    if method == "heuristic":
        codes, _, stats = P.heuristic_columnar(
            ents.offsets, ents.spans, ents.types, aln.offsets, aln.pairs, n_receiving,
            length_ratio=cfg.length_ratio, merge_distance=cfg.merge_distance, compat=cfg.compat)
    else:
        codes, _, stats = P.match_columnar(
            ents.offsets, ents.spans, ents.types, cands, aln.offsets, aln.pairs, n_receiving,
            method=method.split("-")[1], compat=cfg.compat)
    return codes, stats


def project_counted(method: str, ents: Entities, aln: Alignment, n_receiving: np.ndarray,
                    cfg: ProjectionConfig, report: RunReport, *, key: str, offset: int,
                    cands=None) -> np.ndarray:
    """:func:`project`, with a batch that fails run sentence by sentence: each failing
    sentence is all ``O``, counted in ``report`` under ``key`` with its corpus index."""
    from xfast import project as P

    try:
        codes, stats = project(method, ents, aln, n_receiving, cfg, cands)
        _add_stats(report, key, stats)
        return codes
    except XfastError:
        pass
    out = []
    for i in range(len(n_receiving)):
        e = Entities(*_one(ents.offsets, i, ents.spans, ents.types))
        a = Alignment(*_one(aln.offsets, i, aln.pairs))
        c = None if cands is None else P.Spans(*_one(cands.offsets, i, cands.spans))
        try:
            codes, stats = project(method, e, a, n_receiving[i:i + 1], cfg, c)
            _add_stats(report, key, stats)
        except XfastError as err:
            report.fail(key, offset + i, f"projection: {err}")
            codes = np.zeros(int(n_receiving[i]), np.int64)
        out.append(codes)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _one(offsets: np.ndarray, i: int, *arrays: np.ndarray) -> tuple:
    a, b = int(offsets[i]), int(offsets[i + 1])
    return (np.array([0, b - a], np.int64), *(x[a:b] for x in arrays))


def _add_stats(report: RunReport, key: str, stats) -> None:
    report.projection[key].update(stats.as_dict())  # zeros too: the same keys in every run


def keep_types(codes: np.ndarray, types: LabelTypes, keep: set[str] | None) -> np.ndarray:
    """Codes whose type is outside ``keep`` become ``O`` (docs/translation.md); None keeps all."""
    if keep is None:
        return codes
    table = np.arange(1 + 2 * len(types), dtype=codes.dtype)
    for t, name in enumerate(types.names):
        if name not in keep:
            table[2 * t + 1] = table[2 * t + 2] = 0
    return table[codes]


def count_entities(report: RunReport, key: str, ents: Entities, projected: np.ndarray, written: np.ndarray,
                   types: LabelTypes) -> None:
    """QA per type: labeled entities in, entities written out (after the label set), and
    projected entities the label set removed."""
    names = types.names
    counter = report.entities[key]

    def add(kind: str, values: np.ndarray) -> None:
        for t, n in enumerate(np.bincount(values, minlength=len(names)).tolist()):
            if n:
                counter[f"{names[t]}:{kind}"] += n

    add("in", ents.types)
    starts = (projected & 1) == 1
    kept = starts & (written == projected)
    add("out", (projected[kept] - 1) >> 1)
    add("removed_by_label_set", (projected[starts & ~kept] - 1) >> 1)


def methods_valid(methods: Sequence[str]) -> None:
    """Raise [E201] for a method outside :data:`PROJECTION_METHODS`."""
    from xfast.errors import check_choice

    for m in methods:
        check_choice("methods", m, PROJECTION_METHODS)
