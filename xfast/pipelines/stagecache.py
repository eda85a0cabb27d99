"""The stage cache: model outputs computed once per language and reused by every variant.

Layout: ``<root>/<stage>/<key>/shard-00000.jsonl``, where ``key`` hashes everything the
stage's output depends on (the input file's hash, the upstream stages' keys, the model, its
settings and the package versions). A shard holds the records of ``shard_size`` consecutive
sentences: a header line ``{"shard", "start", "n", "stats"}`` and one JSON record per
sentence. Shards are written to a temporary name and renamed, so a killed run never leaves a
half shard; a rerun loads finished shards and computes only the missing ones. Loaded and
freshly computed records go through the same JSON round trip, so a resumed run gives
byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from xfast.errors import ParameterError, PipelineError, msg
from xfast.io.files import atomic_open
from xfast.pipelines.qa import RunReport
from xfast.progress import progress_bar

__all__ = ["CACHE_VERSION", "StageCache", "CacheStats", "StageBars", "StageContext", "run_stage", "stage_bar",
           "first_shard", "stage_key", "model_fingerprint", "shard_ranges"]

#: bump when a stage's record format changes, so old shards are not trusted
CACHE_VERSION = 1


def stage_key(fields: dict) -> str:
    """A short stable hash of ``fields`` (JSON, sorted keys)."""
    blob = json.dumps({"cache_version": CACHE_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def model_fingerprint(model: object) -> dict:
    """What identifies a model in a cache key.

    A local directory: its resolved path plus every file's relative name, size and mtime (cheap:
    no hashing of weight files). An object with ``model_dir`` (a loaded Translator, Tagger,
    Aligner's encoder): the same for that directory. Anything else (a registry name): the name.
    """
    directory = getattr(model, "model_dir", None)
    if directory is None and getattr(model, "encoder", None) is not None:
        directory = getattr(model.encoder, "model_dir", None)
    if directory is None and isinstance(model, (str, os.PathLike)) and Path(model).expanduser().is_dir():
        directory = Path(model).expanduser()
    if directory is None:
        return {"name": str(model)}
    directory = Path(directory).resolve()
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(directory).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return {"path": str(directory), "files": h.hexdigest()[:20]}


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each shard of ``n`` items."""
    return [(lo, min(lo + shard_size, n)) for lo in range(0, n, shard_size)]


def first_shard(start: int, shard_size: int) -> int:
    """The number of the shard that sentence ``start`` begins: a window of a stage starts a shard."""
    if start % shard_size:
        raise ParameterError(msg("E202", name="start", expected=f"a multiple of the shard size {shard_size}",
                                 value=start))
    return start // shard_size


@dataclass
class CacheStats:
    """Shards loaded, computed and found corrupt (recomputed), per stage."""

    loaded: dict[str, int] = field(default_factory=dict)
    computed: dict[str, int] = field(default_factory=dict)
    corrupt: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain-JSON form for reports."""
        return {"loaded": dict(self.loaded), "computed": dict(self.computed), "corrupt": dict(self.corrupt)}


class StageCache:
    """The shards of one stage under one key.

    ``fields`` are the key's inputs (written beside the shards as ``key.json`` for people who
    wonder what a directory holds); ``shard_size`` is part of the key, because a shard's
    content may depend on which sentences were batched together.
    """

    def __init__(self, root: str | Path, stage: str, fields: dict, *, shard_size: int,
                 stats: CacheStats | None = None) -> None:
        if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
            raise ParameterError(msg("E202", name="shard_size", expected="an int >= 1", value=shard_size))
        self.stage = stage
        self.shard_size = shard_size
        self.fields = {**fields, "stage": stage, "shard_size": shard_size}
        self.key = stage_key(self.fields)
        self.dir = Path(root) / stage / self.key
        self.stats = stats if stats is not None else CacheStats()

    def __repr__(self) -> str:
        return f"StageCache({self.stage!r}, key={self.key!r})"

    def path(self, shard: int) -> Path:
        """The file of shard number ``shard``."""
        return self.dir / f"shard-{shard:05d}.jsonl"

    def load(self, shard: int, start: int, n: int) -> tuple[list, dict] | None:
        """``(records, stats)`` of a finished shard, or None when it is missing or unusable."""
        path = self.path(shard)
        if not path.is_file():
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                head = json.loads(fh.readline())
                records = [json.loads(line) for line in fh]
            if head.get("start") != start or head.get("n") != n or len(records) != n:
                raise ValueError("shard does not cover the expected sentences")
        except (OSError, ValueError, AttributeError):
            self.stats.corrupt[self.stage] = self.stats.corrupt.get(self.stage, 0) + 1
            return None
        self.stats.loaded[self.stage] = self.stats.loaded.get(self.stage, 0) + 1
        return records, head.get("stats") or {}

    def save(self, shard: int, start: int, records: list, stats: dict) -> list:
        """Write a shard atomically; return the records as they read back from JSON."""
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.is_file():
            with atomic_open(key_file) as fh:
                json.dump(self.fields, fh, indent=1, sort_keys=True, default=str)
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        with atomic_open(self.path(shard)) as fh:
            head = {"shard": shard, "start": start, "n": len(records), "stats": stats}
            fh.write(json.dumps(head, ensure_ascii=False) + "\n")
            for line in lines:
                fh.write(line + "\n")
        self.stats.computed[self.stage] = self.stats.computed.get(self.stage, 0) + 1
        return [json.loads(line) for line in lines]

    def run(self, n: int, compute: Callable[[int, int], tuple[list, dict]], *,
            task: Callable[[int, int], tuple] | None = None, remote=None,
            start: int = 0) -> Iterator[tuple[int, int, list, dict]]:
        """For each shard of the ``n`` sentences from sentence ``start`` on (a multiple of the
        shard size: a window of whole shards) yield ``(start, end, records, stats)``, loading
        finished shards and calling ``compute(start, end) -> (records, stats)`` for the rest
        (sentence numbers count from the input's first). With ``remote``
        (:class:`~xfast.pipelines.engines.ray.RemoteStages`) and ``task``, the missing shards are
        worked there instead: ``task(start, end)`` describes one."""
        first = first_shard(start, self.shard_size)
        ranges = [(start + lo, start + hi) for lo, hi in shard_ranges(n, self.shard_size)]
        if remote is None or task is None:
            for k, (lo, hi) in enumerate(ranges, first):
                got = self.load(k, lo, hi - lo)
                if got is None:
                    got = self._check_save(k, lo, hi, *compute(lo, hi))
                yield lo, hi, got[0], got[1]
            return
        loaded = [self.load(k, lo, hi - lo) for k, (lo, hi) in enumerate(ranges, first)]
        missing = [i for i, got in enumerate(loaded) if got is None]
        results = remote.map([task(*ranges[i]) for i in missing]) if missing else iter(())
        for i, (lo, hi) in enumerate(ranges):
            got = loaded[i]
            if got is None:
                got = self._check_save(first + i, lo, hi, *next(results))
            loaded[i] = None  # yielded records belong to the caller
            yield lo, hi, got[0], got[1]

    def _check_save(self, k: int, lo: int, hi: int, records: list, stats: dict) -> tuple[list, dict]:
        if len(records) != hi - lo:
            raise PipelineError(msg("E511", stage=self.stage, got=len(records), expected=hi - lo))
        return self.save(k, lo, records, stats), stats


class StageBars:
    """One progress bar per stage over a run's ``total`` sentences, kept open while the stage is
    run window after window (:func:`run_stage` moves it); closed together at the run's end."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._bars: dict[str, object] = {}

    def get(self, stage: str):
        """The bar of ``stage``, opened on first use."""
        if stage not in self._bars:
            self._bars[stage] = progress_bar(stage, self.total, unit="sent", enabled=self.enabled, transient=True)
        return self._bars[stage]

    def close(self) -> None:
        """Close every bar (each prints its last line where stderr is a log)."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


@dataclass(frozen=True)
class StageContext:
    """What every cached stage of one run shares: the cache folder (``cache``), shard size, the
    cache counters, the run's report, whether bars are shown, the Ray workers that compute
    missing shards (``remote``, a :class:`~xfast.pipelines.engines.ray.RemoteStages`; None:
    this process) and the run's bars (``bars``; None: each stage call shows its own)."""

    cache: Path
    shard_size: int
    cache_stats: CacheStats
    report: RunReport
    progress: bool = True
    remote: object = None
    bars: StageBars | None = None


def run_stage(ctx: StageContext, stage: str, fields: dict, n: int,
              compute: Callable[[int, int], tuple[list, dict]], *,
              task: Callable[[int, int], tuple] | None = None, start: int = 0) -> tuple[list, list[dict], str]:
    """Run one cached stage over the ``n`` sentences from sentence ``start`` on (a window of
    whole shards) with a progress bar; missing shards are computed here, or on ``ctx.remote``
    from ``task`` (see :meth:`StageCache.run`).

    Returns ``(records, shard_stats, key)``: every sentence's record, the stats dict of each
    shard (the same whether computed now or loaded), and the stage's cache key. The run's
    report gets the stage's wall time.
    """
    cache = StageCache(ctx.cache, stage, fields, shard_size=ctx.shard_size, stats=ctx.cache_stats)
    records: list = []
    shard_stats: list[dict] = []
    timer = ctx.report.stage(stage) if ctx.report is not None else nullcontext()
    with timer, stage_bar(ctx, stage, n) as bar:
        token = _TICK.set(bar.update)
        try:
            for _, hi, recs, st in cache.run(n, compute, task=task, remote=ctx.remote, start=start):
                records.extend(recs)
                shard_stats.append(st)
                bar.n = hi if ctx.bars is not None else hi - start  # exact at every shard's end
                bar.refresh()
        finally:
            _TICK.reset(token)
    return records, shard_stats, cache.key


@contextmanager
def stage_bar(ctx: StageContext, stage: str, n: int) -> Iterator:
    """The bar a stage call over ``n`` sentences moves: the run's bar of ``stage`` (counting
    the whole input; left open), or one of its own, closed at the end."""
    if ctx.bars is not None:
        yield ctx.bars.get(stage)
        return
    with progress_bar(stage, n, unit="sent", enabled=ctx.progress, transient=True) as bar:
        yield bar


_TICK: ContextVar[Callable[[int], object] | None] = ContextVar("xfast_stage_tick", default=None)


def stage_tick(n: int) -> None:
    """Advance the running stage's progress bar by ``n`` sentences (a model reports each batch
    through it, so bars move within a shard); nothing outside :func:`run_stage`."""
    tick = _TICK.get()
    if tick is not None:
        tick(n)
