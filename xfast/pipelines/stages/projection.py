"""The one projection path of every pipeline: a batch projected with one method, a failing batch
run again sentence by sentence (each failing sentence written all ``O`` and counted with its
reason), the label set applied and the entities counted for QA.

:func:`project_counted` works on columns (``xfast project``); :func:`project_batch` takes and
returns Python lists (the NLLB pipelines) and runs the same columnar function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from xfast import project as P
from xfast.errors import ParameterError, XfastError, check_choice, msg
from xfast.io.labels import Entity
from xfast.io.tokens import LabelTypes
from xfast.pipelines.qa import RunReport
from xfast.pipelines.stages.columnar import (
    Alignment,
    Entities,
    count_entities,
    keep_types,
    project,
)
from xfast.pipelines.workers import map_ordered
from xfast.project.config import PROJECTION_METHODS, ProjectionConfig

__all__ = ["project_counted", "project_batch", "project_variants"]

def project_counted(method: str, ents: Entities, aln: Alignment, n_receiving: np.ndarray,
                    cfg: ProjectionConfig, report: RunReport, *, key: str, offset: int,
                    cands=None) -> np.ndarray:
    """:func:`project`, with a batch that fails run sentence by sentence: each failing
    sentence is all ``O``, counted in ``report`` under ``key`` with its corpus index."""
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
            report.fail(key, offset + i, f"projection: {_alone(err)}")
            codes = np.zeros(int(n_receiving[i]), np.int64)
        out.append(codes)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _alone(err: Exception) -> str:
    """A one-sentence retry's error without its "sentence 0" (the report has the real index)."""
    return str(err).replace("[E303] sentence 0: ", "[E303] ")


def _one(offsets: np.ndarray, i: int, *arrays: np.ndarray) -> tuple:
    a, b = int(offsets[i]), int(offsets[i + 1])
    return (np.array([0, b - a], np.int64), *(x[a:b] for x in arrays))


def _add_stats(report: RunReport, key: str, stats) -> None:
    report.projection[key].update(stats.as_dict())  # zeros too: the same keys in every run


def _offsets(sizes: Sequence[int]) -> np.ndarray:
    off = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=off[1:])
    return off


def project_batch(method: str, entities: Sequence[Sequence[Entity]], alignments: Sequence[np.ndarray],
                  receiving: Sequence[Sequence[str]], cfg: ProjectionConfig, report: RunReport, *,
                  key: str, candidates: Sequence[Sequence[tuple[int, int]]] | None = None,
                  offset: int = 0, keep: set[str] | None = None) -> list[list[str]]:
    """:func:`project_counted` on lists: ``entities`` ``(start, end, TYPE)`` and ``alignments``
    ``(labeled, receiving)`` pairs per sentence, ``receiving`` its words, ``candidates`` the
    NER candidate spans per sentence (``ner-*`` methods). Returns each sentence's labels, the
    types outside ``keep`` written ``O`` (None keeps all); ``key`` names the output in
    ``report`` and ``offset`` is the batch's first sentence in the corpus."""
    check_choice("method", method, PROJECTION_METHODS)
    kind = method.split("-")[0]
    if kind == "ner" and candidates is None:
        raise ParameterError(msg("E202", name="candidates", expected=f"NER candidates for method {method!r}",
                                 value=None))
    types = LabelTypes()
    flat = [e for es in entities for e in es]
    ents = Entities(_offsets([len(es) for es in entities]),
                    np.array([e[:2] for e in flat], np.int64).reshape(-1, 2),
                    np.array([types.add(e[2]) for e in flat], np.int64))
    parts = [np.asarray(a, np.int64).reshape(-1, 2) for a in alignments]
    aln = Alignment(_offsets([len(a) for a in parts]), np.concatenate(parts) if parts else np.zeros((0, 2), np.int64))
    n_rec = np.array([len(w) for w in receiving], np.int64)
    cands = None
    if kind == "ngram":
        cands = P.ngram_candidates_batch(receiving, min_words=cfg.min_words, max_words=cfg.max_words,
                                         stop_words=cfg.stop_words)
    elif kind == "ner":
        spans = [P.ner_candidates(c, sub_spans=cfg.sub_spans) for c in candidates]
        flat_spans = [s for ss in spans for s in ss]
        cands = P.Spans(_offsets([len(ss) for ss in spans]), np.array(flat_spans, np.int64).reshape(-1, 2))
    codes = project_counted(method, ents, aln, n_rec, cfg, report, key=key, offset=offset, cands=cands)
    written = keep_types(codes, types, keep)
    count_entities(report, key, ents, codes, written, types)
    table, off = types.table(), _offsets(n_rec).tolist()
    return [[table[c] for c in written[off[i]:off[i + 1]].tolist()] for i in range(len(receiving))]


def project_variants(mode: str, entities: list[list[Entity]], alignments: dict[str, list[np.ndarray]],
                     receiving: list[list[str]], methods: tuple[str, ...], cfg: ProjectionConfig,
                     sections: Callable[[str], RunReport], *, lang: str, candidates: list | None, shard_size: int,
                     keep: set[str] | None, workers: int = 1,
                     start: int = 0) -> dict[tuple[str, str], list[list[str]]]:
    """Labels of every (extraction method, projection method) of the window of sentences from
    ``start`` on, label set applied (docs/translation.md), a shard at a time; ``workers`` host
    threads project shards at once, each counting into a report of its own that joins, in
    shard order, the report of its output's section (``sections(key)``,
    :class:`~xfast.pipelines.qa.ReportSections`)."""
    jobs = [(am, m, lo, min(lo + shard_size, len(receiving))) for am in alignments for m in methods
            for lo in range(0, len(receiving), shard_size)]

    def key(am: str, m: str) -> str:
        return f"{lang}/{mode}/{am}/{m}"

    def one(job: tuple) -> tuple[list[list[str]], RunReport]:
        am, m, lo, hi = job
        own = RunReport()
        labels = project_batch(m, entities[lo:hi], alignments[am][lo:hi], receiving[lo:hi], cfg, own,
                               key=key(am, m), offset=start + lo,
                               candidates=candidates[lo:hi] if candidates is not None else None, keep=keep)
        return labels, own

    out: dict[tuple[str, str], list[list[str]]] = {(am, m): [] for am in alignments for m in methods}
    for (am, m, _, _), (labels, own) in zip(jobs, map_ordered(one, jobs, workers=workers)):
        out[(am, m)].extend(labels)
        sections(key(am, m)).merge(own.state())
    return out
