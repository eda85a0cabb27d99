"""What every pipeline shares: projection methods over a batch, label-set mapping, the run
report (QA counts, timings) and the manifest.

A pipeline is a short loop over chunks of sentences; each stage is a function from a batch to a
batch, and every failure is counted here under a reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import platform
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from xfast import __version__
from xfast.errors import XfastError, check_choice
from xfast.io.files import atomic_open

__all__ = ["PROJECTION_METHODS", "ProjectionConfig", "RunReport", "project_batch", "map_label_set",
           "file_sha256", "write_json", "chunks", "versions"]

PROJECTION_METHODS = ("heuristic", "ngram-greedy", "ngram-bipartite", "ner-greedy", "ner-bipartite")

Entity = tuple[int, int, str]


@dataclass
class ProjectionConfig:
    """Projection settings with docs/projection.md defaults."""

    length_ratio: float = 0.8
    merge_distance: int = 1
    min_words: int = 1
    max_words: int = 0
    stop_words: tuple[str, ...] = ("!", "?")
    sub_spans: bool = False
    compat: bool = False


_MAX_LISTED = 1000  # failures listed one by one in qa.json; every one is counted


@dataclass
class RunReport:
    """QA counts and stage timings of one run; every stage appends to it.

    ``failed`` lists the first 1,000 failed sentences with their reasons; ``failed_total``
    and ``failed_reasons`` count all of them. :meth:`state` / :meth:`from_state` carry the
    counts (not the timings, which belong to one process) through JSON for resumable runs.
    """

    sentences_in: int = 0
    sentences_out: int = 0
    failed: list[dict] = field(default_factory=list)
    failed_total: int = 0
    failed_reasons: Counter = field(default_factory=Counter)
    entities: dict = field(default_factory=lambda: defaultdict(Counter))
    projection: dict = field(default_factory=lambda: defaultdict(Counter))
    encoder: dict = field(default_factory=dict)
    timings: dict = field(default_factory=lambda: defaultdict(float))
    _open: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``timings[name]``, less the time of the
        stages opened inside it (in the same thread): timings are exclusive, so they add up
        to the run's wall time and no stage hides another."""
        stack = getattr(self._open, "stack", None)
        if stack is None:
            stack = self._open.stack = []
        inner = [0.0]
        stack.append(inner)
        t = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - t
            stack.pop()
            self.timings[name] += elapsed - inner[0]
            if stack:
                stack[-1][0] += elapsed

    def fail(self, where: str, index: int, reason: str) -> None:
        """Count one failed sentence with its reason."""
        self.failed_total += 1
        self.failed_reasons[reason.split(":")[0]] += 1
        if len(self.failed) < _MAX_LISTED:
            self.failed.append({"where": where, "sentence": index, "reason": reason})

    def summary(self) -> dict:
        """A JSON-ready summary: sentences in/out/failed, per-label entity counts, reasons."""
        return {
            "sentences": {"in": self.sentences_in, "out": self.sentences_out,
                          "failed": self.failed_total, "failed_by_reason": dict(self.failed_reasons)},
            "failures": self.failed[:_MAX_LISTED],
            "entities": {k: _every_count(v) for k, v in sorted(self.entities.items())},
            "projection": {k: dict(sorted(v.items())) for k, v in sorted(self.projection.items())},
            "encoder": self.encoder,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def state(self) -> dict:
        """The counts as plain JSON (no timings)."""
        out = self.summary()
        del out["timings_s"]
        return out

    def load_state(self, state: dict) -> None:
        """Continue from counts saved by :meth:`state`."""
        sents = state["sentences"]
        self.sentences_in, self.sentences_out = sents["in"], sents["out"]
        self.failed_total, self.failed_reasons = sents["failed"], Counter(sents["failed_by_reason"])
        self.failed = list(state["failures"])
        self.entities = defaultdict(Counter, {k: Counter(v) for k, v in state["entities"].items()})
        self.projection = defaultdict(Counter, {k: Counter(v) for k, v in state["projection"].items()})
        self.encoder = dict(state["encoder"])


def _every_count(counts: Counter) -> dict:
    """``TYPE:what`` counts with every type and every kind present (zeros included), sorted."""
    types = {k.split(":", 1)[0] for k in counts}
    kinds = ("in", "out", "removed_by_label_set")
    return {f"{t}:{w}": counts.get(f"{t}:{w}", 0) for t in sorted(types) for w in kinds}


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def map_label_set(labels: list[list[str]], keep: set[str] | None) -> list[list[str]]:
    """Labels whose type is outside ``keep`` become ``O`` (docs/translation.md); ``None`` keeps all."""
    if keep is None:
        return labels
    return [[lab if lab == "O" or lab[2:] in keep else "O" for lab in s] for s in labels]


def _count_entities(report: RunReport, key: str, entities: Sequence[Sequence[Entity]],
                    projected: Sequence[Sequence[str]], written: Sequence[Sequence[str]]) -> None:
    """QA per type: labeled entities in, entities written out (after the label set), and
    projected entities the label set removed."""
    src = report.entities[key]
    for ents, before, after in zip(entities, projected, written):
        for _, _, t in ents:
            src[f"{t}:in"] += 1
        for lab_b, lab_a in zip(before, after):
            if lab_b.startswith("B-"):
                src[f"{lab_b[2:]}:out" if lab_a.startswith("B-") else f"{lab_b[2:]}:removed_by_label_set"] += 1


def project_batch(method: str, entities: Sequence[Sequence[Entity]], alignments: Sequence[np.ndarray],
                  receiving: Sequence[Sequence[str]], cfg: ProjectionConfig, report: RunReport, *,
                  key: str, candidates: Sequence[Sequence[tuple[int, int]]] | None = None,
                  offset: int = 0, keep: set[str] | None = None) -> list[list[str]]:
    """Project one batch with ``method``, then keep the types in ``keep`` (None: all;
    docs/translation.md); failures fall back to per-sentence runs and are counted.

    ``key`` names the run in the report (e.g. ``"de/heuristic"``); ``offset`` is the batch's
    first sentence index, so failures name corpus positions.
    """
    check_choice("method", method, PROJECTION_METHODS)
    from xfast import project as P

    n_rec = [len(w) for w in receiving]

    def run(idx: Sequence[int]):
        ents = [entities[i] for i in idx]
        alns = [alignments[i] for i in idx]
        nr = [n_rec[i] for i in idx]
        if method == "heuristic":
            return P.heuristic_batch(ents, alns, nr, length_ratio=cfg.length_ratio,
                                     merge_distance=cfg.merge_distance, compat=cfg.compat,
                                     return_stats=True)
        kind, matching = method.split("-")
        if kind == "ngram":
            cands = P.ngram_candidates_batch([receiving[i] for i in idx], min_words=cfg.min_words,
                                             max_words=cfg.max_words, stop_words=cfg.stop_words)
            cands = [cands[k] for k in range(len(idx))]
        else:
            if candidates is None:
                raise XfastError(f"method {method!r} needs NER candidates for the receiving side")
            cands = [P.ner_candidates(candidates[i], sub_spans=cfg.sub_spans) for i in idx]
        return P.match_batch(ents, cands, alns, nr, method=matching, compat=cfg.compat,
                             return_stats=True)

    everything = list(range(len(receiving)))
    try:
        labels, stats = run(everything)
        _add_stats(report, key, stats)
    except XfastError:
        labels = []
        for i in everything:
            try:
                lab, stats = run([i])
                labels.extend(lab)
                _add_stats(report, key, stats)
            except XfastError as err:
                report.fail(key, offset + i, f"projection: {err}")
                labels.append(["O"] * n_rec[i])
    written = map_label_set(labels, keep)
    _count_entities(report, key, entities, labels, written)
    return written


def _add_stats(report: RunReport, key: str, stats) -> None:
    report.projection[key].update(stats.as_dict())  # zeros too: the same keys in every run


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of xfast, Python and the packages that decide results."""
    out = {"xfast": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "onnxruntime", "ctranslate2", "tokenizers", "transformers", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=1, default=_jsonable)
        fh.write("\n")


def _jsonable(obj: object):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
