"""The local engine: a pipeline's model forward overlapped with its host work.

On a GPU the encoder is cheap and the host work around it (reading, tokenizing, similarity,
extraction, projection, writing, scoring) decides the throughput; on a CPU they share the
cores. :func:`overlapped` runs the model stage of batch k+1 in a worker thread while the
caller runs the host stages of batch k (ONNX Runtime and CTranslate2 release the GIL), with
at most ``depth`` batches waiting in between, so wall time tends to the larger of the two,
not their sum. Results come back in input order whatever the timing, so outputs do not
depend on the overlap.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from xfast.pipelines.qa import RunReport
from xfast.pipelines.stages.batch import ENCODER_COUNTS, BatchWork, ProjectPlan, RunState

__all__ = ["overlapped", "run_local"]

_SWITCH_S = 2e-4  # GIL switch interval while the two threads run

T = TypeVar("T")
P = TypeVar("P")
M = TypeVar("M")


def overlapped(items: Iterable[T], prepare: Callable[[T], P], model: Callable[[P], M],
               host: Callable[[T, P, M], None], *, report: RunReport, depth: int = 1,
               overlap: bool = True, model_stage: str = "model") -> None:
    """For each item: ``p = prepare(item)`` and ``m = model(p)``, then ``host(item, p, m)``.

    ``prepare`` and ``host`` run in the caller's thread, in input order; ``model`` runs in one
    worker thread, up to ``depth`` items ahead of ``host``. ``overlap=False`` runs everything
    in the caller (the serial baseline). The model's busy time is added to
    ``report.timings[model_stage]``, the caller's waits for it to ``"wait for model"``; an
    exception in any stage stops the run and is raised here.
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")

    def timed(p: P) -> tuple[M, float]:
        t = time.perf_counter()
        out = model(p)
        return out, time.perf_counter() - t

    if not overlap:
        for item in items:
            p = prepare(item)
            out, busy = timed(p)
            report.timings[model_stage] += busy
            host(item, p, out)
        return
    pending: deque[tuple[T, P, Future]] = deque()
    # the model thread wakes from a GIL-free forward and needs the GIL back at once: with
    # the default 5 ms switch interval it would wait for the host thread that long each time
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _SWITCH_S))
    with ThreadPoolExecutor(1, thread_name_prefix="xfast-model") as pool:
        try:
            for item in items:
                p = prepare(item)
                pending.append((item, p, pool.submit(timed, p)))
                if len(pending) > depth:
                    _finish(pending.popleft(), host, report, model_stage)
            while pending:
                _finish(pending.popleft(), host, report, model_stage)
        finally:
            for _, _, fut in pending:
                fut.cancel()
            sys.setswitchinterval(interval)


def _finish(entry: tuple, host: Callable, report: RunReport, model_stage: str) -> None:
    item, p, fut = entry
    t = time.perf_counter()
    out, busy = fut.result()
    report.timings["wait for model"] += time.perf_counter() - t
    report.timings[model_stage] += busy
    host(item, p, out)


def run_local(plan: ProjectPlan, aligner, rows: Iterable, types, state: RunState, *, overlap: bool) -> int:
    """Batches through the stages in this process (the model overlapped with the host work),
    committed shard by shard; returns the number of shards."""
    report, counts, has_gold = state.report, state.counts, state.has_gold
    work = BatchWork(plan, aligner, types, report)
    work.enc_counts.update({k: report.encoder.get(k, 0) for k in ENCODER_COUNTS})
    per_side = len(plan.names) / (1 + len(plan.names))  # pairs per sentence the encoder reads
    work.tick = lambda n: state.bar.update(n * per_side)  # the bar moves with the encoder, the slow stage on a CPU
    shard = {"index": state.done, "sentences": 0, "parts": {k: [] for k in plan.outputs}}

    def scored(name, m, gold, pred, off):
        if has_gold[name]:
            with report.stage("evaluate"):
                counts[(name, m)].add(gold, pred, off, types.names, ignore=state.ignore)

    def host(row, prep, model_out):
        work.host(row, prep, model_out, start=report.sentences_in, parts=shard["parts"], scored=scored)
        has_gold.update({n: False for n, g in work.has_gold.items() if not g})
        shard["sentences"] += len(row[0])
        if shard["sentences"] == state.shard_size:
            flush()

    def flush():
        report.encoder = dict(work.enc_counts)
        state.commit(shard["index"], shard["parts"])
        shard.update(index=shard["index"] + 1, sentences=0, parts={k: [] for k in plan.outputs})

    overlapped(rows, work.prepare, work.model, host, report=report, overlap=overlap, model_stage="encode")
    if shard["sentences"]:
        flush()
    report.encoder = dict(work.enc_counts)
    return shard["index"]
