"""The Ray engine: a run's shards mapped over a Ray Data actor pool, on one machine or many.

A pipeline that runs on Ray cuts its input into the same shards the local engine commits
(:class:`~xfast.pipelines.rundir.RunDir`), writes each pending shard's input into the run folder,
and hands :func:`map_shards` one small task per shard. Ray Data maps them with
``map_batches`` over the pipeline's worker class in an actor pool (``ActorPoolStrategy``): each
actor loads its models once and works whole shards, one GPU per actor where the cluster has
GPUs. Results come back in shard order (``preserve_order``), so the caller commits shard
after shard exactly as the local engine does and the outputs are byte-identical.

The model and the host stages of a shard run in the same actor: the encoder's states are
about 100 KB per sentence pair, more than the host work costs to do where they are, so they
never cross the object store; only a shard's input and its finished outputs do.

When xfast starts the cluster itself it binds it to 127.0.0.1, turns Ray's usage statistics
off and starts no dashboard. A job that finishes no shard for ``stall_timeout_s`` seconds
(an actor pool that cannot be scheduled, say) stops with an error instead of waiting forever.
A worker's exception stops the run with an error that names the shard and the exception
(:class:`~xfast.pipelines.engines.raylink.ShardGuard`); a worker that dies (killed, out of
memory) is restarted by Ray and its shard tried again, at most ``max_restarts`` times.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xfast._optional import require as require_extra
from xfast.errors import ParameterError, PipelineError, msg
from xfast.models.cache import quiet
from xfast.aligner import Aligner
from xfast.io.tokens import LabelTypes, TokenColumns
from xfast.models.encoder import providers_for
from xfast.pipelines.engines import raylink
from xfast.pipelines.engines.local import fold, overlapped
from xfast.pipelines.loaders import Models
from xfast.pipelines.qa import RunReport
from xfast.pipelines.stages.batch import ENCODER_COUNTS, BatchWork, ProjectPlan, RunState

__all__ = ["RaySettings", "require", "connect", "pool_size", "map_shards", "shutdown", "RemoteStages",
           "StageWorker", "ENGINES", "run_ray", "ShardProjector"]

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class RaySettings:
    """How a run uses Ray. ``address``: None starts a local cluster on 127.0.0.1 (stopped when
    the run ends); ``"auto"`` or ``"HOST:PORT"`` joins a running one. ``actors``: the pool's
    size (None: one per GPU, else the cluster's CPUs less one, at least 1, so that Ray's own
    tasks keep a CPU). ``cpus_per_actor`` / ``gpus_per_actor``: what each actor reserves
    (``gpus_per_actor`` None: 1 where the cluster has GPUs, else 0). ``max_restarts``: how
    many times a shard whose worker died is tried again (on the restarted actor) before the
    run stops with [E534]."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None
    stall_timeout_s: float = 1800.0
    max_restarts: int = 2

    def check(self) -> None:
        """:class:`ParameterError` [E202] for a value out of range."""
        rules = (("actors", self.actors is None or (isinstance(self.actors, int) and self.actors >= 1), "an int >= 1"),
                 ("cpus_per_actor", self.cpus_per_actor > 0, "a number > 0"),
                 ("gpus_per_actor", self.gpus_per_actor is None or self.gpus_per_actor >= 0, "a number >= 0"),
                 ("stall_timeout_s", self.stall_timeout_s > 0, "a number > 0"),
                 ("max_restarts", self.max_restarts >= 0, "an int >= 0"))
        for name, ok, expected in rules:
            if not ok:
                raise ParameterError(msg("E202", name=name, expected=expected, value=getattr(self, name)))


def require():
    """The ``ray`` module, or :class:`ParameterError` [E204] saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before ray is imported
    require_extra("ray.data", what="--engine ray", extra="ray")  # the Data library, with pyarrow
    return require_extra("ray", what="--engine ray", extra="ray")


@contextlib.contextmanager
def _unshadowed_cwd() -> Iterator[None]:
    """Ray puts the driver's working folder first on its workers' ``sys.path``. Where that folder
    holds an ``xfast`` folder that is not this package (the parent of a clone named ``xfast``),
    the workers would import it as an empty namespace package; ``ray.init`` then runs from the
    folder that holds the package the driver imported, so the workers import exactly that one
    (they then also start there: what the driver sends them carries absolute paths)."""
    here = Path.cwd()
    root = Path(__file__).resolve().parents[2]
    shadowed = (here / "xfast").exists() and here.resolve() != root
    if shadowed:
        os.chdir(root)
    try:
        yield
    finally:
        if shadowed:
            os.chdir(here)


def connect(settings: RaySettings) -> dict:
    """Start or join the cluster; returns what the run records: the node's address, the
    cluster's CPUs and GPUs, and whether xfast started it."""
    ray = require()
    started = False
    if not ray.is_initialized():
        hush = quiet()
        common = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=not hush,
                      configure_logging=True)
        with _unshadowed_cwd():
            if settings.address is None:
                raylink.start(ray, dict(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **common),
                              hush=hush)
                started = True
            else:  # [E532] when the cluster wants a token this process does not send, else [E206]
                raylink.join(ray, settings.address, common, hush=hush)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # shards come back in order: commits stay sequential
    ctx.enable_progress_bars = False  # xfast's own bar counts pairs
    ctx.print_on_execution_start = False
    res = ray.cluster_resources()
    return {"address": settings.address or "local", "started": started,
            "node_address": ray.util.get_node_ip_address(),
            "cpus": float(res.get("CPU", 0)), "gpus": float(res.get("GPU", 0))}


def pool_size(settings: RaySettings, cluster: dict) -> tuple[int, float, float]:
    """``(actors, cpus, gpus)`` per actor for this cluster."""
    gpus = settings.gpus_per_actor if settings.gpus_per_actor is not None else (1.0 if cluster["gpus"] else 0.0)
    if settings.actors is not None:
        return settings.actors, settings.cpus_per_actor, gpus
    if gpus:
        return max(1, int(cluster["gpus"] // gpus)), settings.cpus_per_actor, gpus
    # one CPU stays free: with every CPU reserved by actors Ray's other tasks cannot run and the
    # job stalls (seen on a 2-CPU cluster with a pool of 2)
    return max(1, int((cluster["cpus"] - 1) // max(settings.cpus_per_actor, 1e-9))), settings.cpus_per_actor, gpus


def map_shards(tasks: list[dict], worker: type, kwargs: dict, settings: RaySettings,
               cluster: dict) -> Iterator[dict]:
    """Each task (a dict of scalars, one per shard) through ``worker(**kwargs)(batch)`` on an
    actor pool; yields ``{"shard", "result"}`` in task order.

    Each actor runs ``worker`` inside a :class:`~xfast.pipelines.engines.raylink.ShardGuard`.
    Raises :class:`PipelineError` [E531] when no result arrives for ``stall_timeout_s``, [E533]
    naming the shard, its node and the worker's exception, [E534] for a shard whose worker died
    more than ``max_restarts`` times, and [E535] for any other failure of the job. While it runs,
    the one error-level line Ray's core prints for every Ray Data actor pool
    (:data:`~xfast.pipelines.engines.raylink.BENIGN`) is dropped from stderr.
    """
    ray = require()
    from ray.data import ActorPoolStrategy

    if not tasks:
        return
    actors, cpus, gpus = pool_size(settings, cluster)
    actors = min(actors, len(tasks))
    # Ray Data restarts a dead actor and retries its task without end (its defaults; a cap only
    # goes through its deprecated ray_remote_args): the guard counts each shard's tries instead
    attempts = ray.remote(num_cpus=0)(raylink.ShardAttempts).remote()
    guard = type(worker.__name__, (raylink.ShardGuard,), {})  # Ray names the pool's actors after it
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    ds = ds.map_batches(guard, fn_constructor_kwargs={"worker": worker, "kwargs": kwargs, "attempts": attempts,
                                                      "tries": settings.max_restarts + 1},
                        batch_size=1, batch_format="numpy",
                        # --ray-actors starts that many at once; else the pool grows from one as work waits
                        compute=ActorPoolStrategy(min_size=actors if settings.actors else 1, max_size=actors),
                        num_cpus=cpus, num_gpus=gpus)
    got: queue.Queue = queue.Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            for row in ds.iter_rows():
                if stop.is_set():
                    return
                got.put(("row", row))
            got.put(("end", None))
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            got.put(("error", err))

    thread = threading.Thread(target=pump, name="xfast-ray", daemon=True)
    with raylink.dropping_benign_lines():  # from before the first actor is made
        thread.start()
        try:
            while True:
                try:
                    kind, item = got.get(timeout=settings.stall_timeout_s)
                except queue.Empty:
                    raise PipelineError(msg("E531", seconds=settings.stall_timeout_s, actors=actors, cpus=cpus,
                                            gpus=gpus, have=f"{cluster['cpus']:g} CPUs, {cluster['gpus']:g} GPUs"))
                if kind == "end":
                    return
                if kind == "error":
                    raise PipelineError(msg("E535", reason=raylink.reason_of(item), logs=raylink.LOGS)) from None
                failure = raylink.failure_of(item)
                if failure:
                    raise PipelineError(failure) from None
                yield item
        finally:
            stop.set()
            with contextlib.suppress(Exception):  # the job is over or abandoned: the counter goes with it
                ray.kill(attempts)


def shutdown(cluster: dict) -> None:
    """Stop the cluster if this run started it."""
    if cluster.get("started"):
        require().shutdown()


class RemoteStages:
    """The missing shards of the NLLB pipelines' cached stages, worked on Ray.

    A stage hands :meth:`map` one task per missing shard, ``(fn, kwargs)``: ``fn`` a
    module-level function called as ``fn(models, **kwargs)`` in a :class:`StageWorker` actor
    (which loads each model once), returning the shard's ``(records, stats)`` exactly as the
    stage computes them locally. The cluster starts on the first call, so a run whose shards
    are all cached never starts one.

    A pipeline hands it the missing shards of one window of the input at a time
    (:attr:`window_shards`): each call is one Ray Data job whose actors load their models for
    it, so a window holds many shards (the models' start spread over a long job), and the
    driver still holds a bounded part of the input.
    """

    def __init__(self, settings: RaySettings, options) -> None:
        settings.check()
        require()
        self.settings, self.options = settings, options
        self.cluster: dict | None = None

    @property
    def window_shards(self) -> int:
        """Shards per window: 32, or four per actor of a larger ``--ray-actors`` pool (known
        without starting the cluster, which a fully cached run never starts)."""
        return max(32, 4 * (self.settings.actors or 0))

    def map(self, tasks: list[tuple]) -> Iterator[tuple[list, dict]]:
        """Each task's ``(records, stats)``, in task order."""
        if self.cluster is None:
            self.cluster = connect(self.settings)
        items = [{"shard": i, "task": pickle.dumps(t, protocol=5)} for i, t in enumerate(tasks)]
        for row in map_shards(items, StageWorker, {"options": self.options}, self.settings, self.cluster):
            yield pickle.loads(row["result"])

    def describe(self) -> dict:
        """What the run records about the cluster (empty when none was needed)."""
        if self.cluster is None:
            return {}
        actors, cpus, gpus = pool_size(self.settings, self.cluster)
        return {**self.cluster, "actors": actors, "cpus_per_actor": cpus, "gpus_per_actor": gpus}

    def close(self) -> None:
        """Stop the cluster if this run started it."""
        if self.cluster is not None:
            shutdown(self.cluster)


class StageWorker:
    """A Ray Data actor that works cached-stage shards (:class:`RemoteStages`) with its own
    models, each loaded on first use and kept for the shards after it."""

    def __init__(self, options) -> None:
        self.models = Models(options)

    def __call__(self, batch: dict) -> dict:
        out = []
        for blob in batch["task"]:
            fn, kwargs = pickle.loads(blob)
            out.append(pickle.dumps(fn(self.models, **kwargs), protocol=5))
        return {"shard": batch["shard"], "result": np.array(out, dtype=object)}


# --------------------------------------------------------------------------- xfast project on Ray


def run_ray(plan: ProjectPlan, aligner: dict, rows: Iterable, types, state: RunState, *, batch_size: int,
            overlap: bool, rundir, settings: RaySettings, run: dict, workers: int = 1) -> int:
    """The pending shards' inputs packed into Ray's object store (actors on any node read them
    there: no folder needs to be shared), worked by :class:`ShardProjector` actors; results come
    back to this process, which alone writes ``--out``, and are committed in shard order, as the
    local engine commits them. ``aligner``: the actors' Aligner arguments and ``device``. Returns
    the number of shards."""
    report, counts, has_gold = state.report, state.counts, state.has_gold
    shard_size = state.shard_size
    tasks, index, held, n = [], state.done, [], 0
    with report.stage("pack shard inputs"):
        for row in rows:
            held.append(row)
            n += len(row[0])
            if n == shard_size:
                tasks.append(_shard_input(index, held, types, index * shard_size))
                index, held, n = index + 1, [], 0
        if held:
            tasks.append(_shard_input(index, held, types, index * shard_size))
            index += 1
    with report.stage("start ray"):
        cluster = connect(settings)
    actors, cpus, gpus = pool_size(settings, cluster)
    run["ray"] = {**cluster, "actors": min(actors, max(1, len(tasks))), "cpus_per_actor": cpus,
                  "gpus_per_actor": gpus}
    model = Path(str(aligner.get("model", "")))
    if model.is_dir():  # a local model: actors start in other folders (and on other nodes, at the same path)
        aligner = {**aligner, "model": str(model.resolve())}
    kwargs = {"aligner": aligner, "plan": plan, "batch_size": batch_size, "overlap": overlap, "workers": workers}
    worker_timings: dict[str, float] = {}
    t_map, t_wall = time.perf_counter(), time.time()
    try:
        for item in map_shards(tasks, ShardProjector, kwargs, settings, cluster):
            with report.stage("merge"):
                res = pickle.loads(item["result"])
                report.merge(res["qa"])
                has_gold.update({k: False for k, g in res["has_gold"].items() if not g})
                for name, m, batch_counts in res["scored"]:  # batch by batch, as the local engine
                    if has_gold[name]:
                        counts[(name, m)].absorb(batch_counts)
                for k, v in res["timings"].items():
                    worker_timings[k] = worker_timings.get(k, 0.0) + v
                run["ray"].setdefault("shard_wall_s", []).append(round(res["wall_s"], 3))
                nodes = run["ray"].setdefault("nodes", [])  # where the shards ran (node ids)
                if res["node"] not in nodes:
                    nodes.append(res["node"])
                run["ray"]["provider"] = res["provider"]
                ready = round(res["ready_at"] - t_wall, 3)  # the pool's first actor ready, from the job's start
                run["ray"]["actor_ready_s"] = min(run["ray"].get("actor_ready_s", ready), ready)
            state.commit(int(item["shard"]), res["parts"])
            state.bar.update(res["qa"]["sentences"]["in"] * len(plan.names))
    finally:
        run["ray"]["map_s"] = round(time.perf_counter() - t_map, 3)
        shutdown(cluster)
    run["worker_timings_s"] = {k: round(v, 3) for k, v in worker_timings.items()}
    return index


def _shard_input(index: int, rows: list, types, start: int) -> dict:
    """Shard ``index``'s task: its sentences (every side; the first is sentence ``start`` of the
    corpus) as columns, pickled (the task travels in Ray's object store; a pickle, unlike raw
    bytes, keeps its trailing bytes through Ray Data's NumPy batches)."""
    sides = [TokenColumns.concat([r[j] for r in rows]) for j in range(len(rows[0]))]
    payload = {"names": list(types.names), "source": [str(c.path) for c in sides],
               "sides": [(c.text, c.tok_off, c.sent_off, c.codes, c.lines) for c in sides]}
    return {"shard": index, "input": pickle.dumps(payload, protocol=5), "start": start}


class ShardProjector:
    """A Ray Data actor for ``xfast project --engine ray``: loads the aligner once, then
    projects whole shards that the driver sends through the object store, with the same stages
    (and the same model/host overlap) as the local engine; it reads and writes no file."""

    def __init__(self, aligner: dict, plan: ProjectPlan, batch_size: int, overlap: bool, workers: int = 1) -> None:
        t = time.perf_counter()
        kwargs = dict(aligner)
        kwargs["providers"] = providers_for(kwargs.pop("device"))  # this node's runtime decides
        self.aligner = Aligner(**kwargs)
        self.load_s = time.perf_counter() - t  # reported with the first shard
        self.ready_at = time.time()  # when this actor could take work (wall clock, for the driver)
        self.plan, self.batch_size, self.overlap, self.workers = plan, batch_size, overlap, workers

    def __call__(self, batch: dict) -> dict:
        out = [pickle.dumps(self.shard(pickle.loads(b), int(s)), protocol=5)
               for b, s in zip(batch["input"], batch["start"])]
        return {"shard": batch["shard"], "result": np.array(out, dtype=object)}

    def shard(self, payload: dict, start: int) -> dict:
        """Project one shard (``payload`` of :func:`_shard_input`; its first sentence is number
        ``start`` of the corpus): its output chunks, its score counts and its QA."""
        t0 = time.perf_counter()
        types = LabelTypes(payload["names"])
        sides = [TokenColumns(*cols, path=src) for cols, src in zip(payload["sides"], payload["source"])]
        n = len(sides[0])
        rows = [tuple(c.slice(a, min(a + self.batch_size, n)) for c in sides) for a in range(0, n, self.batch_size)]
        report = RunReport()
        if self.load_s:
            report.timings["load aligner"], self.load_s = self.load_s, 0.0
        work = BatchWork(self.plan, self.aligner)
        parts = {k: [] for k in self.plan.outputs}
        has_gold = {n: True for n in self.plan.names}
        enc_counts = dict.fromkeys(ENCODER_COUNTS, 0)
        scored: list = []
        firsts = [start + a for a in range(0, n, self.batch_size)]

        def keep(name, m, counts):
            scored.append((name, m, counts))

        overlapped([(row, first, RunReport()) for row, first in zip(rows, firsts)],
                   lambda b: work.prepare(b[0], b[2]), work.model,
                   lambda b, p, m: work.host(b[0], p, m, start=b[1], types=types, report=b[2]),
                   lambda b, res: fold(res, report, parts, has_gold, enc_counts, keep),
                   report=report, overlap=self.overlap, model_stage="encode", workers=self.workers)
        report.encoder = enc_counts
        return {"parts": parts, "qa": report.state(), "has_gold": has_gold, "names": types.names,
                "scored": scored, "timings": dict(report.timings),
                "wall_s": time.perf_counter() - t0, "ready_at": self.ready_at, "node": _node_id(),
                "provider": self.aligner.encoder.provider}


def _node_id() -> str:
    """The Ray node this actor runs on."""
    return require().get_runtime_context().get_node_id()
