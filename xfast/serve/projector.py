"""``xfast.Projector``: a warm aligner and the projection methods, for a pair or a few at a time.

Services that project one sentence pair per request load the encoder once and call
:meth:`Projector.project` (or :meth:`Projector.project_batch` for several pairs: one encoder
call for all of them). The work runs on the same columnar stages as ``xfast project``, so a
pair gets the labels ``xfast project`` would write; with ``host_workers`` above 1 a batch's
alignment extraction and projection run in that many host threads (the pool ``xfast project``
uses), in slices of the batch, with the same results. A Projector is safe to share between
threads: every call keeps its data to itself (the encoder's session and word cache are
thread-safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from xfast.aligner import Aligner
from xfast.errors import ParameterError, msg
from xfast.io.labels import Entity
from xfast.io.tokens import LabelTypes, from_sentences
from xfast.models.encoder import States, Subwords
from xfast.pipelines.stages import columnar
from xfast.pipelines.workers import map_ordered
from xfast.project.config import ProjectionConfig
from xfast.project.filtering import span_scores
from xfast.serve import validation

__all__ = ["Projector", "Projection", "ProjectedSpan", "SERVE_METHODS"]

#: methods that need nothing but the two sentences (``ner-*`` would need a NER model's spans)
SERVE_METHODS = ("heuristic", "ngram-greedy", "ngram-bipartite")


@dataclass(frozen=True)
class ProjectedSpan:
    """A projected entity: receiving words ``[start, end)`` with ``label``; ``score`` in [0, 1]
    says how well it is aligned: ``2k / (entity words + span words)``, ``k`` the word pairs
    linking it to the labeled entity of that type it is best linked to (capped at 1: a word may
    have several links; :func:`xfast.project.filtering.span_scores`, which ``--filter min-score``
    uses too)."""

    start: int
    end: int
    label: str
    score: float


@dataclass(frozen=True)
class Projection:
    """One pair's result: IOB2 ``labels`` of the receiving words and the ``spans`` they form."""

    labels: list[str]
    spans: list[ProjectedSpan]


class Projector:
    """Align sentence pairs and carry labeled entities across, with models loaded once.

    ``aligner``: an :class:`xfast.Aligner`, or keyword arguments for one (default: the
    embedded e5-small, layer 8, itermax). ``methods``: the projection methods callers may ask
    for (a subset of :data:`SERVE_METHODS`). ``config``: projection settings
    (:class:`~xfast.project.config.ProjectionConfig`). ``langs``: the languages of the
    labeled and the receiving side, needed by an aligner that reads them (an NLLB encoder,
    docs/alignment.md) and ignored by others. ``host_workers``: host threads that extract
    alignments and project the slices of one batch (default 1; the results do not depend on it,
    and on two CPU cores two workers measured 0.9-1.1x one: much of this work holds Python's lock).

    >>> p = Projector()                                                      # doctest: +SKIP
    >>> p.project(["Angela", "Merkel", "spoke"], [(0, 2, "PER")], ["Angela", "Merkel", "sprach"])
    Projection(labels=['B-PER', 'I-PER', 'O'], spans=[ProjectedSpan(start=0, end=2, label='PER', score=1.0)])
    """

    def __init__(self, aligner=None, *, methods: Sequence[str] = SERVE_METHODS, config=None,
                 langs: tuple[str, str] | None = None, host_workers: int = 1) -> None:
        methods = tuple(methods)
        if type(host_workers) is not int or host_workers < 1:
            raise ParameterError(msg("E202", name="host_workers", expected="an int >= 1", value=host_workers))
        for m in methods:
            if m not in SERVE_METHODS:
                raise ParameterError(msg("E201", name="methods", options=list(SERVE_METHODS), value=m))
        if not methods:
            raise ParameterError(msg("E202", name="methods", expected="one or more methods", value=methods))
        self.aligner = aligner if isinstance(aligner, Aligner) else Aligner(**(aligner or {}))
        if self.aligner.takes_language:
            if langs is None or isinstance(langs, str) or len(langs) != 2:
                raise ParameterError(msg("E415", model=self.aligner.encoder.model_dir,
                                         how="langs=(labeled language, receiving language)"))
            self.aligner.encoder.language_ids(list(langs), 2)  # E402 / E434 now, not at the first request
        self.langs = tuple(langs) if langs is not None and self.aligner.takes_language else None
        self.methods = methods
        self.config = config or ProjectionConfig()
        validation.check_config(self.config, ("config",))
        self.host_workers = host_workers

    def __repr__(self) -> str:
        return f"Projector({self.aligner!r}, methods={list(self.methods)})"

    # ------------------------------------------------------------------ public
    def project(self, labeled_words: Sequence[str], entities: Sequence[Entity], receiving_words: Sequence[str],
                *, method: str = "heuristic", config=None) -> Projection:
        """Project ``entities`` (``(start, end, label)``, half-open word spans of
        ``labeled_words``) onto ``receiving_words`` with ``method``; ``config``: a
        :class:`~xfast.project.config.ProjectionConfig` for this call (default: the projector's)."""
        return self.project_batch([(labeled_words, entities, receiving_words)], method=method, config=config)[0]

    def project_batch(self, pairs: Sequence[tuple], *, method: str | Sequence[str] = "heuristic",
                      config=None) -> list[Projection]:
        """:meth:`project` for many ``(labeled_words, entities, receiving_words)`` pairs with one
        encoder call; ``method`` and ``config`` are one for all pairs or a list with one per pair."""
        methods = _per_pair(method, len(pairs), "method", str)
        configs = _per_pair(config if config is not None else self.config, len(pairs), "config", type(self.config))
        checked = [self.check(i, p, m) for i, (p, m) in enumerate(zip(pairs, methods))]
        for c in dict.fromkeys(c for c in configs if c is not None):
            validation.check_config(c, ("config",))
        if not checked:
            return []
        lab, rec = self._encode([c[0] for c in checked], [c[2] for c in checked])
        keys = list(zip(methods, [c or self.config for c in configs]))

        def work(span: tuple[int, int]) -> list[Projection]:
            a, b = span
            aln = columnar.align(_rows(lab, a, b), _rows(rec, a, b), self.aligner)
            return self._project(checked[a:b], keys[a:b], aln)

        slices = _slices(len(checked), self.host_workers)
        return [p for part in map_ordered(work, slices, workers=self.host_workers) for p in part]

    def align_batch(self, pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Word pairs ``(labeled, receiving)`` of each ``(labeled_words, receiving_words)`` pair
        with a score per pair (the best ``(cos + 1) / 2`` between the two words' subwords)."""
        checked = [validation.check_align_pair(i, pair) for i, pair in enumerate(pairs)]
        lab, rec = [c[0] for c in checked], [c[1] for c in checked]
        if not pairs:
            return []
        both = self.aligner.encode([*lab, *rec], lang=self._sides(len(lab), len(rec)))  # one call for both sides
        lab_enc, rec_enc = both[:len(lab)], both[len(lab):]
        alns = self.aligner.align_encoded(lab_enc, rec_enc)
        scores = self.aligner.link_scores(lab_enc, rec_enc, alns)
        return [(a, np.asarray(s, np.float32)) for a, s in zip(alns, scores)]

    # ------------------------------------------------------------------ steps
    def check(self, i: int, pair: object, method: str) -> tuple[list[str], list[Entity], list[str]]:
        """Pair ``i`` as ``(labeled words, entities, receiving words)``, or
        :class:`~xfast.errors.FieldError` (a :class:`~xfast.errors.ParameterError`) [E305]
        naming the field that is wrong (the rules: :mod:`xfast.serve.validation`)."""
        validation.check_method(method, self.methods, ("method",) if isinstance(method, str) else ("pairs", i, "method"))
        return validation.check_pair(i, pair)

    def _encode(self, labeled: list[list[str]], receiving: list[list[str]]) -> tuple[tuple, tuple]:
        """``((subwords, states) of the labeled side, the same of the receiving side)``."""
        # both sides in one encoder call (one model run for a single pair), then split: a
        # sentence's states are found through ``where``, so each side keeps its own rows
        enc, n = self.aligner.encoder, len(labeled)
        sub = enc.subwords(from_sentences([*labeled, *receiving]))
        st = enc.encode_subwords(sub, lang=self._sides(n, len(receiving)), transform=self.aligner.state_transform)
        return _rows((sub, st), 0, n), _rows((sub, st), n, len(sub))

    def _sides(self, n_labeled: int, n_receiving: int) -> list[str] | None:
        """Each sentence's language when the encoder reads it: the labeled ones, then the receiving ones."""
        if self.langs is None:
            return None
        return [self.langs[0]] * n_labeled + [self.langs[1]] * n_receiving

    def _project(self, checked: list[tuple], keys: list[tuple], aln) -> list[Projection]:
        types = LabelTypes()
        n_rec = np.array([len(c[2]) for c in checked], np.int64)
        counts = [len(c[1]) for c in checked]
        ent_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        spans = np.array([(a, b) for c in checked for a, b, _ in c[1]], np.int64).reshape(-1, 2)
        ent_types = np.array([types.add(t) for c in checked for _, _, t in c[1]], np.int64)
        ents = columnar.Entities(ent_off, spans, ent_types)
        rec_cols = None
        out: list[Projection | None] = [None] * len(checked)
        table = types.table()
        groups = list(dict.fromkeys(keys))
        for key in groups:  # one projection call per (method, config) in the batch
            method, config = key
            idx = [i for i, k in enumerate(keys) if k == key]
            e, a = (ents, aln) if len(groups) == 1 else (_subset(ents, idx), _subset(aln, idx))
            cands = None
            if method != "heuristic":
                if rec_cols is None:
                    rec_cols = from_sentences([c[2] for c in checked])
                cands = columnar.candidates("ngram", rec_cols if len(groups) == 1 else rec_cols.take(idx), config)
            codes, _ = columnar.project(method, e, a, n_rec[idx], config, cands)
            lab_off = np.concatenate([[0], np.cumsum(n_rec[idx])]).astype(np.int64)
            sc = span_scores(codes, lab_off, e.offsets, e.spans, e.types, a.offsets, a.pairs)
            names, off, lab_off = types.names, sc.offsets.tolist(), lab_off.tolist()
            for k, i in enumerate(idx):
                own = codes[lab_off[k]:lab_off[k + 1]]
                spans = [ProjectedSpan(int(sc.spans[r, 0]), int(sc.spans[r, 1]), names[int(sc.types[r])],
                                       round(float(sc.scores[r]), 6)) for r in range(off[k], off[k + 1])]
                out[i] = Projection([table[c] for c in own.tolist()], spans)
        return out


#: fewest pairs a host thread gets: smaller slices cost more in hand-offs than they save
_MIN_SLICE = 32


def _slices(n: int, workers: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the batch's slices: one per worker, each of at least ``_MIN_SLICE`` pairs."""
    k = max(1, min(workers, n // _MIN_SLICE))
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


def _rows(side: tuple[Subwords, States], a: int, b: int) -> tuple[Subwords, States]:
    """Sentences ``a`` to ``b`` of one side's ``(subwords, states)``, sharing its arrays."""
    sub, st = side
    off = sub.offsets
    lo, hi = int(off[a]), int(off[b])
    part = Subwords(sub.ids[lo:hi], sub.word_ids[lo:hi], off[a:b + 1] - lo)
    return part, States(st.blocks, st.where[a:b], part.offsets, st.transform)


def _per_pair(value, n: int, name: str, kind: type) -> list:
    if isinstance(value, kind) or value is None:
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ParameterError(msg("E202", name=name, expected=f"one {name} or {n}", value=f"{len(value)} values"))
    return value


def _subset(ragged, idx: list[int]):
    """Sentences ``idx`` of a ragged batch (``Entities`` or ``Alignment``: ``offsets`` then
    per-item arrays), in that order, as a batch of the same type."""
    off = ragged.offsets
    rows = [np.arange(off[i], off[i + 1]) for i in idx]
    take = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    new_off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    items = [getattr(ragged, f.name) for f in fields(ragged)][1:]
    return type(ragged)(new_off, *(a[take] for a in items))

