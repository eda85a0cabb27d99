"""Columnar batch stages (``xfast project``): each a function from columnar arrays to columnar
arrays.

Data flows one way: text columns (:class:`~xfast.io.columns.TokenColumns`) -> subwords
(:func:`tokenize`) -> encoder states (:func:`encode`, the only stage that runs a model) ->
word alignment (:func:`align`) -> label codes (:func:`project`) -> CoNLL bytes
(:func:`~xfast.io.columns.conll_bytes`) and score counts. No stage keeps state between
calls beyond what its arguments hold (a model, a word cache), so an engine may run them in
threads, processes or on other machines. Python strings are made only where text is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xfast import project as P
from xfast.io.conll import _K
from xfast.io.tokens import LabelTypes, TokenColumns
from xfast.pipelines.qa import RunReport
from xfast.project.config import ProjectionConfig

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


def encode(sub, encoder, transform=None, on_batch=None, lang: str | None = None):
    """Layer-L states of every subword (:class:`~xfast.models.encoder.States`): the model
    forward, then ``transform`` on each output while it is in cache; ``on_batch(n)`` after
    each model call. ``lang``: the side's language, for a translator's encoder."""
    return encoder.encode_subwords(sub, lang=lang, transform=transform, on_batch=on_batch)


def align(labeled: tuple, receiving: tuple, aligner) -> Alignment:
    """Word pairs of each sentence pair from ``(subwords, states)`` of both sides."""
    offsets, pairs = aligner.align_columnar(labeled[0], labeled[1], receiving[0], receiving[1])
    return Alignment(offsets, pairs)


def entities(cols: TokenColumns, *, compat: bool = False) -> Entities:
    """Entities of a labeled batch's IOB2 codes. ``compat``: the reference's reader loses an
    entity that a ``B-`` directly follows (docs/translation.md)."""
    off, spans, types = _K.entities(cols.codes, cols.sent_off, compat)
    return Entities(off, spans, types)


def candidates(kind: str, cols: TokenColumns, cfg: ProjectionConfig, ner: TokenColumns | None = None):
    """Candidate spans of the receiving side as :class:`xfast.project.Spans`: ``ngram`` spans
    without a stop word, or the entities of ``ner`` (a NER model's labels of the same words)."""
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
    if method == "heuristic":
        codes, _, stats = P.heuristic_columnar(
            ents.offsets, ents.spans, ents.types, aln.offsets, aln.pairs, n_receiving,
            length_ratio=cfg.length_ratio, merge_distance=cfg.merge_distance, compat=cfg.compat)
    else:
        codes, _, stats = P.match_columnar(
            ents.offsets, ents.spans, ents.types, cands, aln.offsets, aln.pairs, n_receiving,
            method=method.split("-")[1], compat=cfg.compat)
    return codes, stats


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
