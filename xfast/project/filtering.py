"""Projection filtering (docs/projection.md, *Filtering*): span alignment scores, ``min-score``
span removal and the sentence policies ``drop-partial`` and ``drop-unprojected``.

Everything here works on a columnar batch of S sentence pairs: the receiving side's label codes
(``0`` is ``O``, ``2t+1``/``2t+2`` the ``B-``/``I-`` of type ``t``) with their sentence offsets,
the labeled entities (offsets, half-open word spans, type ids) and the word alignment (offsets,
``(labeled, receiving)`` pairs). A *span* is a ``B-`` label and the ``I-`` labels of its type
that follow it; its *score* is the best, over labeled entities of its type in the same
sentence, of ``2 * links / (entity words + span words)``, capped at 1, where ``links`` counts
the alignment pairs between the entity's and the span's words (0 without any). The kernels
assume valid input (the pipelines' own arrays); :meth:`FilterPolicy.parse` validates the
policy once, at the public entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xfast.errors import ParameterError, msg
from xfast.io.tokens import ragged_range

__all__ = ["FilterPolicy", "SpanScores", "Filtered", "FILTER_POLICIES", "REASONS", "span_scores",
           "sentence_states", "filter_batch", "keep_rows", "reject_line"]

#: the policies ``--filter`` takes (``X`` a number in [0, 1])
FILTER_POLICIES = ("none", "drop-partial", "drop-unprojected", "min-score=X")
#: a dropped sentence's reason, by state code (0 is a complete sentence, never dropped)
REASONS = ("complete", "partial", "unprojected")


@dataclass(frozen=True)
class FilterPolicy:
    """What is filtered: spans scoring below ``min_score`` are removed (None: none is), then
    sentences where some counted entity is not projected (``drop_partial``) or none is
    (``drop_unprojected``) are dropped."""

    drop_partial: bool = False
    drop_unprojected: bool = False
    min_score: float | None = None

    @classmethod
    def parse(cls, value: str | Sequence[str] | FilterPolicy) -> FilterPolicy:
        """The policy of ``--filter`` values (a list, or one string of them separated by spaces):
        ``none`` alone, or each of ``drop-partial``, ``drop-unprojected``, ``min-score=X`` at
        most once. Raises :class:`ParameterError` [E208] for an unknown, repeated or empty
        policy list, [E209] for an ``X`` that is not a number in [0, 1]."""
        if isinstance(value, FilterPolicy):
            return value
        options = list(FILTER_POLICIES)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ParameterError(msg("E208", options=options, value=value))
        items = [part for v in value for part in v.split()]  # "min-score=0.5 drop-partial" quoted as one
        if not items:
            raise ParameterError(msg("E208", options=options, value=value))
        if items == ["none"]:
            return cls()
        seen: set[str] = set()
        fields: dict = {}
        for item in items:
            name, eq, x = item.partition("=")
            if name in seen or name == "none" or name not in ("drop-partial", "drop-unprojected", "min-score") \
                    or bool(eq) != (name == "min-score"):
                raise ParameterError(msg("E208", options=options, value=" ".join(items)))
            seen.add(name)
            if name == "min-score":
                try:
                    score = float(x)
                except ValueError:
                    score = math.nan
                if not 0.0 <= score <= 1.0:  # NaN fails too
                    raise ParameterError(msg("E209", value=x))
                fields["min_score"] = score
            else:
                fields[name.replace("-", "_")] = True
        return cls(**fields)

    @property
    def active(self) -> bool:
        """Whether anything is filtered (False for ``none``)."""
        return self.drop_partial or self.drop_unprojected or self.min_score is not None

    @property
    def drops(self) -> bool:
        """Whether sentences may be dropped (a rejects file is written)."""
        return self.drop_partial or self.drop_unprojected

    def names(self) -> list[str]:
        """The policies in their canonical form and order, e.g. ``["min-score=0.5", "drop-partial"]``."""
        out = [] if self.min_score is None else [f"min-score={self.min_score!r}"]
        return out + [n for n, on in (("drop-partial", self.drop_partial),
                                      ("drop-unprojected", self.drop_unprojected)) if on]

    def __str__(self) -> str:
        return " ".join(self.names()) or "none"


@dataclass(frozen=True, eq=False)
class SpanScores:
    """Spans of S sentences' label codes: sentence i owns rows ``offsets[i]:offsets[i+1]`` of
    ``spans`` (int64 (K, 2), half-open word spans within the sentence), ``types`` (int64 (K,))
    and ``scores`` (float64 (K,), in [0, 1])."""

    offsets: np.ndarray
    spans: np.ndarray
    types: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True, eq=False)
class Filtered:
    """A filtered batch. ``codes``: int64 (T,) label codes with removed spans ``O`` (every
    sentence, dropped ones too); ``dropped``: bool (S,); ``states``: int8 (S,) codes into
    :data:`REASONS` (1 partial, 2 unprojected, 0 otherwise); ``entities`` and ``projected``:
    int64 (S,) counted entities and those projected; ``spans``: the input codes' scored spans;
    ``removed``: bool (K,), the spans ``min-score`` removed; ``entity_projected``: bool (E,)."""

    codes: np.ndarray
    dropped: np.ndarray
    states: np.ndarray
    entities: np.ndarray
    projected: np.ndarray
    spans: SpanScores
    removed: np.ndarray
    entity_projected: np.ndarray


def _span_links(codes: np.ndarray, sent_off: np.ndarray, ent_off: np.ndarray, ent_spans: np.ndarray,
                ent_types: np.ndarray, aln_off: np.ndarray, pairs: np.ndarray) -> tuple:
    """Spans of ``codes`` and the link counts between them and the entities of their type:
    ``(span offsets, starts (global token index), ends, types, span ids, entity ids, counts)``."""
    c = np.asarray(codes, np.int64)
    sent_off = np.asarray(sent_off, np.int64)
    n_tok, n_sent = len(c), len(sent_off) - 1
    first = np.zeros(n_tok, bool)
    first[sent_off[:-1][np.diff(sent_off) > 0]] = True
    typ = (c - 1) >> 1  # -1 for O
    prev = np.concatenate([[0], c[:-1]])
    cont = (c > 0) & ((c & 1) == 0) & ~first & (prev > 0) & (((prev - 1) >> 1) == typ)  # an I- that goes on
    starts = np.flatnonzero(c & 1)
    breaks = np.append(np.flatnonzero(~cont), n_tok)
    ends = breaks[np.searchsorted(breaks, starts, side="right")]
    sid = np.searchsorted(sent_off, starts, side="right") - 1
    span_off = np.concatenate([[0], np.cumsum(np.bincount(sid, minlength=n_sent))]).astype(np.int64)
    span_types = typ[starts]
    span_of = np.full(n_tok, -1, np.int64)
    span_of[ragged_range(starts, ends - starts)] = np.repeat(np.arange(len(starts), dtype=np.int64), ends - starts)
    # every link whose receiving word is in a span, against every entity of its sentence
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    aln_off = np.asarray(aln_off, np.int64)
    psid = np.repeat(np.arange(n_sent, dtype=np.int64), np.diff(aln_off))
    k = span_of[sent_off[psid] + pairs[:, 1]] if len(pairs) else np.zeros(0, np.int64)
    inside = k >= 0
    psid, i, k = psid[inside], pairs[inside, 0], k[inside]
    ent_off = np.asarray(ent_off, np.int64)
    ent_spans = np.asarray(ent_spans, np.int64).reshape(-1, 2)
    ent_types = np.asarray(ent_types, np.int64)
    n_ent = np.diff(ent_off)[psid]
    rep = np.repeat(np.arange(len(k), dtype=np.int64), n_ent)
    e = ragged_range(ent_off[psid], n_ent)
    i, k = i[rep], k[rep]
    hit = (ent_types[e] == span_types[k]) & (ent_spans[e, 0] <= i) & (i < ent_spans[e, 1])
    width = max(1, len(ent_types))
    keys, counts = np.unique(k[hit] * width + e[hit], return_counts=True)
    return span_off, starts, ends, span_types, keys // width, keys % width, counts


def _scores(starts, ends, ent_spans, ks, es, counts) -> np.ndarray:
    ent_spans = np.asarray(ent_spans, np.int64).reshape(-1, 2)
    dice = 2.0 * counts / ((ent_spans[es, 1] - ent_spans[es, 0]) + (ends[ks] - starts[ks]))
    scores = np.zeros(len(starts), np.float64)
    np.maximum.at(scores, ks, dice)
    return np.minimum(scores, 1.0)


def span_scores(codes: np.ndarray, sent_off: np.ndarray, ent_off: np.ndarray, ent_spans: np.ndarray,
                ent_types: np.ndarray, aln_off: np.ndarray, pairs: np.ndarray) -> SpanScores:
    """The spans of ``codes`` (int (T,) label codes; ``sent_off`` int64 (S+1,)) and their
    alignment scores against the entities (``ent_off`` (S+1,), ``ent_spans`` (E, 2) word spans
    of the labeled sentence, ``ent_types`` (E,) type ids as in ``codes``; entities may overlap)
    over the alignment (``aln_off`` (S+1,), ``pairs`` (P, 2) ``(labeled, receiving)`` words)."""
    span_off, starts, ends, types, ks, es, counts = _span_links(codes, sent_off, ent_off, ent_spans, ent_types,
                                                                aln_off, pairs)
    sid = np.repeat(np.arange(len(span_off) - 1, dtype=np.int64), np.diff(span_off))
    local = np.stack([starts, ends], axis=1).reshape(-1, 2) - np.asarray(sent_off, np.int64)[sid, None]
    return SpanScores(span_off, local, types, _scores(starts, ends, ent_spans, ks, es, counts))


def sentence_states(entities: np.ndarray, projected: np.ndarray, policy: FilterPolicy) -> tuple[np.ndarray, np.ndarray]:
    """``(states, dropped)`` of sentences with ``entities`` counted entities of which
    ``projected`` are projected (int (S,) each): state 2 (unprojected) when none of at least
    one is, 1 (partial) when some but not all are, else 0; ``drop-partial`` drops states 1
    and 2, ``drop-unprojected`` state 2."""
    entities, projected = np.asarray(entities, np.int64), np.asarray(projected, np.int64)
    unprojected = (entities > 0) & (projected == 0)
    partial = (projected > 0) & (projected < entities)
    states = np.where(unprojected, 2, np.where(partial, 1, 0)).astype(np.int8)
    dropped = (policy.drop_partial & (states > 0)) | (policy.drop_unprojected & unprojected)
    return states, dropped


def filter_batch(codes: np.ndarray, sent_off: np.ndarray, ent_off: np.ndarray, ent_spans: np.ndarray,
                 ent_types: np.ndarray, aln_off: np.ndarray, pairs: np.ndarray, policy: FilterPolicy, *,
                 counted: np.ndarray | None = None) -> Filtered:
    """Apply ``policy`` to a batch (arrays as in :func:`span_scores`): spans scoring below
    ``min_score`` become ``O``; an entity is projected when a remaining span of its type has a
    link to it; only entities whose type ``counted`` (bool, by type id; None: all) marks take
    part in the sentence states (:func:`sentence_states`)."""
    codes = np.asarray(codes, np.int64)
    sent_off = np.asarray(sent_off, np.int64)
    ent_types = np.asarray(ent_types, np.int64)
    span_off, starts, ends, types, ks, es, counts = _span_links(codes, sent_off, ent_off, ent_spans, ent_types,
                                                                aln_off, pairs)
    scores = _scores(starts, ends, ent_spans, ks, es, counts)
    removed = scores < policy.min_score if policy.min_score is not None else np.zeros(len(scores), bool)
    out = codes.copy()
    out[ragged_range(starts[removed], (ends - starts)[removed])] = 0
    entity_projected = np.zeros(len(ent_types), bool)
    entity_projected[es[~removed[ks]]] = True
    n_sent = len(sent_off) - 1
    esid = np.repeat(np.arange(n_sent, dtype=np.int64), np.diff(np.asarray(ent_off, np.int64)))
    use = np.ones(len(ent_types), bool) if counted is None else np.asarray(counted, bool)[ent_types]
    n_ent = np.bincount(esid[use], minlength=n_sent)
    n_proj = np.bincount(esid[use & entity_projected], minlength=n_sent)
    states, dropped = sentence_states(n_ent, n_proj, policy)
    sid = np.repeat(np.arange(n_sent, dtype=np.int64), np.diff(span_off))
    local = np.stack([starts, ends], axis=1).reshape(-1, 2) - sent_off[sid, None]
    return Filtered(out, dropped, states, n_ent, n_proj, SpanScores(span_off, local, types, scores), removed,
                    entity_projected)


def keep_rows(cols, keep: np.ndarray):
    """The sentences of :class:`~xfast.io.tokens.TokenColumns` ``cols`` where ``keep`` (bool
    (S,)) is True, in order, as one batch; returns ``(batch, token mask)``."""
    keep = np.asarray(keep, bool)
    tok = np.repeat(keep, cols.lengths())
    return (cols if keep.all() else cols.take(np.flatnonzero(keep))), tok


def reject_line(sentence: int, reason: str, tokens: list[str], labels: list[str], entities: list[tuple],
                projected: list[bool] | int, removed: list[tuple], **lines: int) -> bytes:
    """One line of a rejects file (docs/formats.md): a dropped sentence as a JSON object.
    ``projected``: a flag per entity, or (marker mode) how many were projected; ``removed``:
    ``(start, end, type, score)`` of spans ``min-score`` removed; ``lines``: the input lines
    known (1-based; 0 is left out)."""
    rec: dict = {"sentence": sentence, **{k: v for k, v in lines.items() if v}, "reason": reason,
                 "tokens": tokens, "labels": labels, "entities": [list(e) for e in entities]}
    if isinstance(projected, int):
        rec["projected"] = projected
    else:
        rec["projected"] = int(sum(projected))
        rec["unprojected"] = [list(e) for e, p in zip(entities, projected) if not p]
    rec["removed_spans"] = [[a, b, t, round(float(s), 6)] for a, b, t, s in removed]
    return (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
