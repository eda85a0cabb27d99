"""A run's QA report: sentences in and out, every failure with its reason, entity and
projection counts, encoder and filter counts, and stage timings (docs/qa.md).

Every stage adds to one :class:`RunReport`; nothing a run drops goes uncounted. The counts
travel as plain JSON (:meth:`RunReport.state`) through resumable shards and Ray workers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from xfast.project.filtering import REASONS

__all__ = ["RunReport", "ReportSections"]

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
    filter: dict = field(default_factory=lambda: defaultdict(Counter))
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
            **({"filter": {k: _filter_counts(v) for k, v in sorted(self.filter.items())}} if self.filter else {}),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def filtered(self, key: str, kept: int, dropped: dict[str, int], spans_removed: int) -> None:
        """Count one batch of output ``key`` through ``--filter``: sentences ``kept``, sentences
        ``dropped`` per reason, spans that ``min-score`` removed (docs/qa.md)."""
        counter = self.filter[key]
        counter["kept"] += kept
        for reason, n in dropped.items():
            counter[f"dropped:{reason}"] += n
        counter["spans_removed_by_min_score"] += spans_removed

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
        self.filter = defaultdict(Counter, {k: _filter_state(v) for k, v in state.get("filter", {}).items()})

    def merge(self, state: dict) -> None:
        """Add the counts of another report's :meth:`state` (a shard worked in another
        process) after this report's own; failures keep their order."""
        sents = state["sentences"]
        self.sentences_in += sents["in"]
        self.sentences_out += sents["out"]
        self.failed_total += sents["failed"]
        self.failed_reasons.update(sents["failed_by_reason"])
        self.failed.extend(state["failures"][:max(0, _MAX_LISTED - len(self.failed))])
        for k, v in state["entities"].items():
            self.entities[k].update(v)
        for k, v in state["projection"].items():
            self.projection[k].update(v)
        for k, v in state["encoder"].items():
            self.encoder[k] = self.encoder.get(k, 0) + v
        for k, v in state.get("filter", {}).items():
            self.filter[k].update(_filter_state(v))


class ReportSections:
    """The counts of a run that works its input window by window, kept per section (one stage's
    failures, one output's projection counts) and merged into the run's report at the end in
    the order the sections were first used: failures are then listed (and their reasons
    counted) in the order a run over the whole input at once lists them. ``sections(name)``
    is the report of section ``name``."""

    def __init__(self) -> None:
        self._parts: dict[str, RunReport] = {}

    def __call__(self, name: str) -> RunReport:
        return self._parts.setdefault(name, RunReport())

    def merge_into(self, report: RunReport) -> None:
        """Add every section's counts to ``report``, in the order the sections were first used."""
        for part in self._parts.values():
            report.merge(part.state())


def _filter_counts(counts: Counter) -> dict:
    """One output's ``--filter`` counts as ``qa.json`` shows them (every reason present)."""
    by_reason = {r: counts.get(f"dropped:{r}", 0) for r in REASONS[1:]}
    return {"kept": counts.get("kept", 0), "dropped": sum(by_reason.values()), "dropped_by_reason": by_reason,
            "spans_removed_by_min_score": counts.get("spans_removed_by_min_score", 0)}


def _filter_state(shown: dict) -> Counter:
    """The counter behind :func:`_filter_counts`' form."""
    out = Counter({"kept": shown["kept"], "spans_removed_by_min_score": shown["spans_removed_by_min_score"]})
    out.update({f"dropped:{r}": n for r, n in shown["dropped_by_reason"].items()})
    return out


def _every_count(counts: Counter) -> dict:
    """``TYPE:what`` counts with every type and every kind present (zeros included), sorted."""
    types = {k.split(":", 1)[0] for k in counts}
    kinds = ("in", "out", "removed_by_label_set")
    return {f"{t}:{w}": counts.get(f"{t}:{w}", 0) for t in sorted(types) for w in kinds}
