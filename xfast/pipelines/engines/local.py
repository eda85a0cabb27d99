"""The local engine: a pipeline's model forward overlapped with its host work, the host work
spread over worker threads.

On a GPU the encoder is cheap and the host work around it (tokenizing, similarity, extraction,
projection, writing, scoring) decides the throughput; on a CPU they share the cores.
:func:`overlapped` runs the model stage of batch k+1 in its own thread while the host stages
of earlier batches run, with at most ``depth`` batches waiting for the model. With
``workers`` > 1 the host stages (``prepare`` before the model, ``host`` after it) of several
batches run at once in a pool of threads: the kernels, ONNX Runtime and the tokenizer release
the GIL. Whatever the timing, ``finish`` sees the batches in input order, in the caller's
thread, so outputs do not depend on the overlap or on the number of workers, and at most
``depth + workers`` batches are in flight.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

from xfast.io.tokens import LabelTypes
from xfast.pipelines.qa import RunReport
from xfast.pipelines.stages.batch import (
    ENCODER_COUNTS,
    BatchResult,
    BatchWork,
    ProjectPlan,
    RunState,
)
from xfast.pipelines.workers import host_pool

__all__ = ["overlapped", "run_local", "fold"]

_SWITCH_S = 2e-4  # GIL switch interval while the threads run

T = TypeVar("T")
P = TypeVar("P")
M = TypeVar("M")
R = TypeVar("R")


def overlapped(items: Iterable[T], prepare: Callable[[T], P], model: Callable[[P], M],
               host: Callable[[T, P, M], R], finish: Callable[[T, R], None] | None = None, *,
               report: RunReport, depth: int = 1, overlap: bool = True, model_stage: str = "model",
               workers: int = 1) -> None:
    """For each item: ``p = prepare(item)``, ``m = model(p)``, ``r = host(item, p, m)``, then
    ``finish(item, r)`` (when given).

    ``model`` runs in one thread, in input order, up to ``depth`` items ahead of the host work;
    ``prepare`` and ``host`` run in the caller's thread (``workers=1``, the items one after the
    other) or in ``workers`` pool threads; ``finish`` runs in the caller's thread in input
    order. ``overlap=False`` runs everything in the caller (the serial baseline). The model's
    busy time is added to ``report.timings[model_stage]``, the caller's waits for results to
    ``"wait for model"``; an exception in any stage stops the run and is raised here.
    """
    if depth < 1 or workers < 1:
        raise ValueError("depth and workers must be >= 1")

    def timed(p: P) -> tuple[M, float]:
        t = time.perf_counter()
        out = model(p)
        return out, time.perf_counter() - t

    def done(item: T, r: R) -> None:
        if finish is not None:
            finish(item, r)

    if not overlap:
        for item in items:
            p = prepare(item)
            out, busy = timed(p)
            report.timings[model_stage] += busy
            done(item, host(item, p, out))
        return
    # the model thread wakes from a GIL-free forward and needs the GIL back at once: with
    # the default 5 ms switch interval it would wait for a host thread that long each time
    if workers > 1:  # (there several host threads contend for the GIL: short turns cost more than they save)
        _in_pool(items, prepare, timed, host, done, report, depth, model_stage, workers)
        return
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _SWITCH_S))
    try:
        _in_caller(items, prepare, timed, host, done, report, depth, model_stage)
    finally:
        sys.setswitchinterval(interval)


def _in_caller(items, prepare, timed, host, done, report: RunReport, depth: int, model_stage: str) -> None:
    """Host stages in the caller's thread, the model in one worker thread."""
    pending: deque[tuple] = deque()

    def finish_one() -> None:
        item, p, fut = pending.popleft()
        out, busy = _waited(fut, report, model_stage)
        done(item, host(item, p, out))

    with ThreadPoolExecutor(1, thread_name_prefix="xfast-model") as pool:
        try:
            for item in items:
                p = prepare(item)
                pending.append((item, p, pool.submit(timed, p)))
                if len(pending) > depth:
                    finish_one()
            while pending:
                finish_one()
        finally:
            for _, _, fut in pending:
                fut.cancel()


def _in_pool(items, prepare, timed, host, done, report: RunReport, depth: int, model_stage: str,
             workers: int) -> None:
    """Host stages in ``workers`` pool threads, the model in one thread in input order, each
    item's result finished in the caller's thread in input order."""
    pending: deque[tuple] = deque()
    # BLAS on one thread for the whole run: the host threads' small products would otherwise each
    # start BLAS threads of their own (and a per-call limit, restored as each call ends, races)
    pool = host_pool(workers)
    with threadpool_limits(limits=1, user_api="blas"), \
            ThreadPoolExecutor(1, thread_name_prefix="xfast-model") as model_pool:
        try:
            for item in items:
                prepared = pool.submit(prepare, item)
                modelled = model_pool.submit(lambda f=prepared: timed(f.result()))
                hosted: Future = Future()
                modelled.add_done_callback(_then_host(pool, host, item, prepared, hosted))
                pending.append((item, prepared, modelled, hosted))
                if len(pending) > depth + workers:
                    _finish(pending.popleft(), done, report, model_stage)
            while pending:
                _finish(pending.popleft(), done, report, model_stage)
        finally:  # a stopped run: what has not started does not (the shared pool goes on)
            for _, *futures in pending:
                for fut in futures:
                    fut.cancel()


def _then_host(pool: ThreadPoolExecutor, host, item, prepared: Future, hosted: Future):
    """A callback for an item's model future: its host stage, submitted to ``pool`` when the
    model is done, its result (or error) passed on to ``hosted``."""

    def run(modelled: Future) -> None:
        if modelled.cancelled() or hosted.cancelled():
            return
        if modelled.exception() is not None:
            hosted.set_exception(modelled.exception())
            return
        out, _ = modelled.result()

        def work():
            try:
                hosted.set_result(host(item, prepared.result(), out))
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                hosted.set_exception(err)

        try:
            pool.submit(work)
        except RuntimeError:  # the pool is shutting down: the run has stopped
            hosted.cancel()

    return run


def _finish(entry: tuple, done, report: RunReport, model_stage: str) -> None:
    item, _, modelled, hosted = entry
    _, busy = _waited(modelled, report, model_stage)
    t = time.perf_counter()
    result = hosted.result()
    report.timings["wait for host"] += time.perf_counter() - t
    done(item, result)


def _waited(fut: Future, report: RunReport, model_stage: str) -> tuple:
    t = time.perf_counter()
    out, busy = fut.result()
    report.timings["wait for model"] += time.perf_counter() - t
    report.timings[model_stage] += busy
    return out, busy


def fold(res: BatchResult, report: RunReport, parts: dict[str, list[bytes]], has_gold: dict[str, bool],
         enc_counts: dict[str, int], score: Callable) -> None:
    """Add one batch's result to what came before it, in batch order: its QA and timings to
    ``report``, its chunks to ``parts``, its encoder counts; a side without gold stops being
    scored from this batch on; the rest goes to ``score(name, method, counts)``."""
    report.merge(res.report.state())
    for k, v in res.report.timings.items():
        report.timings[k] += v
    for k, v in res.enc_counts.items():
        enc_counts[k] += v
    for k, chunks in res.parts.items():
        parts[k].extend(chunks)
    has_gold.update({n: False for n, g in res.has_gold.items() if not g})
    for name, m, counts in res.scored:
        if has_gold[name]:
            score(name, m, counts)


def run_local(plan: ProjectPlan, aligner, rows: Iterable, types: LabelTypes, state: RunState, *,
              overlap: bool, workers: int = 1) -> int:
    """Batches through the stages in this process (the model overlapped with the host work,
    the host work in ``workers`` threads), committed shard by shard in order; returns the number
    of shards."""
    report = state.report
    work = BatchWork(plan, aligner)
    enc_counts = {k: report.encoder.get(k, 0) for k in ENCODER_COUNTS}
    per_side = len(plan.names) / (1 + len(plan.names))  # pairs per sentence the encoder reads
    work.tick = lambda n: state.bar.update(n * per_side)  # the bar moves with the encoder, the slow stage on a CPU
    shard = {"index": state.done, "sentences": 0, "parts": {k: [] for k in plan.outputs}}
    dispatched = [report.sentences_in]  # the corpus index of the next batch's first sentence

    def batches():
        for row in rows:  # the driver reads; each batch takes the label types it was read with
            start, dispatched[0] = dispatched[0], dispatched[0] + len(row[0])
            yield row, start, LabelTypes(types.names), RunReport()

    def score(name, m, counts):
        state.counts[(name, m)].absorb(counts)

    def finish(item, res: BatchResult) -> None:
        with report.stage("merge"):
            fold(res, report, shard["parts"], state.has_gold, enc_counts, score)
        shard["sentences"] += len(item[0][0])
        if shard["sentences"] == state.shard_size:
            flush()

    def flush():
        report.encoder = dict(enc_counts)
        state.commit(shard["index"], shard["parts"])
        shard.update(index=shard["index"] + 1, sentences=0, parts={k: [] for k in plan.outputs})

    overlapped(batches(), lambda b: work.prepare(b[0], b[3]), work.model,
               lambda b, p, m: work.host(b[0], p, m, start=b[1], types=b[2], report=b[3]), finish,
               report=report, overlap=overlap, model_stage="encode", workers=workers)
    if shard["sentences"]:
        flush()
    report.encoder = dict(enc_counts)
    return shard["index"]
