"""``xfast serve``: an HTTP JSON API over a :class:`~xfast.serve.projector.Projector`.

FastAPI on uvicorn, bound to 127.0.0.1 unless told otherwise. ``POST /v1/project`` requests that
arrive while the encoder is busy, or together, are projected with one encoder call (up to
``max_batch_tokens`` words; a request waits at most ``max_wait_ms`` for others); each gets its
own result, in its own order. ``POST /v1/align`` gives word pairs with scores. ``GET /healthz``
answers while the process lives, ``GET /readyz`` once the models are loaded, ``GET /metrics``
in the Prometheus text format. Bad input is a 422 naming the field, a body over
``max_request_bytes`` a 413, a full queue a 503 with ``Retry-After``; on SIGTERM the server
stops taking connections, answers what it holds, then exits.
"""


import asyncio
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

from xfast.errors import ParameterError, msg

__all__ = ["ServeSettings", "create_app", "serve"]

#: projection options a /v1/project request may set (the rest keep the projector's values)
_OPTIONS = ("length_ratio", "merge_distance", "min_words", "max_words")


@dataclass
class ServeSettings:
    """How the server batches and what it refuses."""

    max_wait_ms: float = 5.0
    max_batch_tokens: int = 8192
    max_queue: int = 256
    max_request_bytes: int = 1 << 20
    methods: tuple[str, ...] = ("heuristic", "ngram-greedy", "ngram-bipartite")
    aligner: dict = field(default_factory=dict)
    langs: tuple[str, str] | None = None  # the sides' languages, for an NLLB encoder


@dataclass
class _Job:
    pairs: list
    methods: list[str]
    configs: list
    words: int
    future: asyncio.Future


class _Batcher:
    """Runs queued jobs through :meth:`Projector.project_batch`, one call at a time.

    While a call runs, new requests queue; the next call takes all of them (up to
    ``max_batch_tokens`` words). A request that finds the encoder idle goes at once, unless
    other ``/v1/project`` requests are being received at that moment: then it waits for them,
    at most ``max_wait_ms``. A lone client pays no wait; concurrent ones share encoder calls.
    """

    def __init__(self, settings: ServeSettings, metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="xfast-serve")
        self.projector = None
        self.failed = ""
        self.task: asyncio.Task | None = None
        self.arriving = 0  # /v1/project requests received but not yet queued or refused
        self._carry: _Job | None = None  # the job that did not fit the last batch

    def full(self) -> bool:
        return self.queue.qsize() >= self.settings.max_queue

    async def submit(self, pairs: list, methods: list[str], configs: list) -> list:
        loop = asyncio.get_running_loop()
        words = sum(len(p[0]) + len(p[2]) for p in pairs)
        job = _Job(pairs, methods, configs, words, loop.create_future())
        self.queue.put_nowait(job)
        self.metrics.queue.set(self.queue.qsize())
        return await job.future

    async def _gather(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        first, self._carry = self._carry or await self.queue.get(), None
        batch, words = [first], first.words
        deadline = loop.time() + self.settings.max_wait_ms / 1000.0
        while True:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if not self.arriving or left <= 0:
                    break
                try:  # others are being received: give them a moment, re-checking as they go
                    job = await asyncio.wait_for(self.queue.get(), min(left, 0.0005))
                except asyncio.TimeoutError:
                    continue
            if words + job.words > self.settings.max_batch_tokens:
                self._carry = job
                break
            batch.append(job)
            words += job.words
        return batch

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            self.metrics.queue.set(self.queue.qsize())
            self.metrics.batch.observe(sum(len(j.pairs) for j in batch))
            pairs = [p for j in batch for p in j.pairs]
            methods = [m for j in batch for m in j.methods]
            configs = [c for j in batch for c in j.configs]
            try:
                results = await loop.run_in_executor(
                    self.pool, lambda: self.projector.project_batch(pairs, method=methods, config=configs))
            except Exception as err:  # noqa: BLE001 - every waiting request gets the error
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(err)
                continue
            k = 0
            for j in batch:
                if not j.future.done():
                    j.future.set_result(results[k:k + len(j.pairs)])
                k += len(j.pairs)


class _Metrics:
    """The Prometheus series the server exposes (one registry per app)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("xfast_requests", "HTTP requests by path and status", ["path", "status"],
                                registry=self.registry)
        self.latency = Histogram("xfast_request_seconds", "request latency", ["path"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batch = Histogram("xfast_batch_pairs", "sentence pairs per encoder call", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.queue = Gauge("xfast_queue_depth", "requests waiting for the encoder", registry=self.registry)


_PATHS = ("/healthz", "/readyz", "/metrics", "/v1/project", "/v1/align", "/docs", "/openapi.json")


def _edge(app, max_bytes: int, metrics: _Metrics, batcher: _Batcher):
    """Pure ASGI middleware around the app: 413 for a body over ``max_bytes`` (declared or
    streamed), request counts and latency by path and status, and the count of
    ``/v1/project`` requests being received (the batcher waits for those)."""

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        start = time.perf_counter()
        path = scope["path"] if scope["path"] in _PATHS else "other"  # bounded label values
        status = [500]

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        project = path == "/v1/project" and scope["method"] == "POST"
        if project:
            batcher.arriving += 1
            scope.setdefault("state", {})["xfast_arriving"] = True
        too_large = f"the request body is over {max_bytes} bytes"
        try:
            declared = dict(scope.get("headers") or {}).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                return await _plain(counted_send, 413, too_large)
            seen = 0

            async def limited():
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > max_bytes:
                        raise _TooLarge()
                return message

            try:
                return await app(scope, limited, counted_send)
            except _TooLarge:
                return await _plain(counted_send, 413, too_large)
        finally:
            if project:
                _arrived(scope, batcher)
            metrics.requests.labels(path, str(status[0])).inc()
            metrics.latency.labels(path).observe(time.perf_counter() - start)

    return middleware


def _arrived(scope: dict, batcher: _Batcher) -> None:
    """The request is queued, refused or over: the batcher no longer waits for it (once)."""
    if scope.get("state", {}).pop("xfast_arriving", False):
        batcher.arriving -= 1


class _TooLarge(Exception):
    pass


async def _plain(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: ServeSettings | None = None, projector=None):
    """The ASGI application. ``projector``: a loaded :class:`Projector`; None loads one from
    ``settings.aligner`` in the background at start-up (``/readyz`` says when it is ready)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from pydantic import BaseModel, ConfigDict, Field

    from xfast.serve.projector import Projector

    settings = settings or ServeSettings()
    metrics = _Metrics()
    batcher = _Batcher(settings, metrics)

    strict = ConfigDict(extra="forbid")  # an unknown key is a 422, not silently ignored

    class PairIn(BaseModel):
        model_config = strict
        labeled: list[str] = Field(description="the labeled sentence's words")
        entities: list[tuple[int, int, str]] = Field(default=[], description="[start, end, TYPE], half-open word spans")
        receiving: list[str] = Field(description="the receiving sentence's words")

    class ProjectRequest(BaseModel):
        model_config = strict
        pairs: list[PairIn]
        method: str = Field(default="heuristic", description=f"one of {list(settings.methods)}")
        length_ratio: float | None = Field(default=None, gt=0, description="heuristic: keep a span longer than "
                                           "this share of its entity (default 0.8)")
        merge_distance: int | None = Field(default=None, ge=0, description="heuristic: merge spans this close "
                                           "(0: never; default 1)")
        min_words: int | None = Field(default=None, ge=1, description="n-gram candidates: fewest words (default 1)")
        max_words: int | None = Field(default=None, ge=0, description="n-gram candidates: most words "
                                      "(0: the sentence; default 0)")

    class AlignPair(BaseModel):
        model_config = strict
        labeled: list[str]
        receiving: list[str]

    class AlignRequest(BaseModel):
        model_config = strict
        pairs: list[AlignPair]

    @asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        if projector is not None:
            batcher.projector = projector
        else:
            async def load():
                try:
                    batcher.projector = await loop.run_in_executor(
                        batcher.pool, lambda: Projector(settings.aligner, methods=settings.methods,
                                                            langs=settings.langs))
                except Exception as err:  # noqa: BLE001 - /readyz reports it; the process stays to say so
                    batcher.failed = str(err)
                    print(f"xfast: error: cannot load the models: {err}", file=sys.stderr, flush=True)
            app.state.loading = asyncio.create_task(load())
        batcher.task = asyncio.create_task(batcher.run())
        yield
        batcher.task.cancel()
        batcher.pool.shutdown(wait=False)

    app = FastAPI(title="xfast", summary="Annotation projection for cross-lingual NER", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            text = e.get("msg", "")
            if e.get("type") == "json_invalid":  # say what is wrong and where, as json does
                text = f"invalid JSON at character {e['loc'][-1]}: {(e.get('ctx') or {}).get('error', text)}"
            errors.append({"loc": list(e.get("loc", ())), "msg": text, "type": e.get("type", "")})
        return JSONResponse({"detail": errors}, status_code=422)

    def _unready():
        if batcher.failed:
            return JSONResponse({"detail": f"the models could not be loaded: {batcher.failed}"}, status_code=503)
        return JSONResponse({"detail": "the models are loading"}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        if batcher.projector is None:
            return _unready()
        return {"status": "ready", "aligner": repr(batcher.projector.aligner), "methods": list(settings.methods)}

    @app.get("/metrics")
    async def metrics_text():
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/project")
    async def project(req: ProjectRequest, request: Request):
        """Project each pair's entities; ``results`` in request order."""
        _arrived(request.scope, batcher)
        if batcher.projector is None:
            return _unready()
        pairs = [(p.labeled, [tuple(e) for e in p.entities], p.receiving) for p in req.pairs]
        try:
            for i, pair in enumerate(pairs):
                batcher.projector.check(i, pair, req.method)
        except ParameterError as err:
            return _field_error(err)
        if batcher.full():
            return JSONResponse({"detail": "the queue is full; retry shortly"}, status_code=503,
                                headers={"Retry-After": "1"})
        options = {k: v for k in _OPTIONS if (v := getattr(req, k)) is not None}
        config = replace(batcher.projector.config, **options) if options else None
        results = await batcher.submit(pairs, [req.method] * len(pairs), [config] * len(pairs))
        return {"results": [{"labels": r.labels,
                             "spans": [{"start": s.start, "end": s.end, "label": s.label, "score": s.score}
                                       for s in r.spans]} for r in results]}

    @app.post("/v1/align")
    async def align(req: AlignRequest):
        """Word pairs ``[labeled, receiving]`` per sentence pair, with a score each."""
        if batcher.projector is None:
            return _unready()
        pairs = [(p.labeled, p.receiving) for p in req.pairs]
        loop = asyncio.get_running_loop()
        try:
            got = await loop.run_in_executor(batcher.pool, lambda: batcher.projector.align_batch(pairs))
        except ParameterError as err:
            return _field_error(err)
        return {"results": [{"pairs": a.tolist(), "scores": [round(float(x), 6) for x in s]} for a, s in got]}

    def _field_error(err: ParameterError):
        # "[E305] pairs[0].entities[1]: problem" -> loc ["body", "pairs", 0, "entities", 1]
        code, _, rest = str(err).partition(" ")
        field_path, _, problem = rest.partition(": ")
        loc = ["body"] + [int(i) if i else name for name, i in re.findall(r"(\w+)|\[(\d+)\]", field_path)]
        return JSONResponse({"detail": [{"loc": loc, "msg": f"{code} {problem}", "type": "value_error"}]},
                            status_code=422)

    return _edge(app, settings.max_request_bytes, metrics, batcher)


def serve(settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "warning") -> int:
    """Run the server until SIGTERM or SIGINT; prints the address it serves on to stderr."""
    import signal
    import socket

    import uvicorn

    # proto given explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says IPPROTO_TCP; without it a keep-alive client waits out a delayed ACK
    # (about 40 ms) on every response
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ParameterError(msg("E205", host=host, port=port, reason=err.strerror or err)) from None
    print(f"xfast: serving on http://{host}:{sock.getsockname()[1]} (models load in the background; "
          "GET /readyz says when they are ready)", file=sys.stderr, flush=True)
    config = uvicorn.Config(create_app(settings), log_level=log_level, timeout_graceful_shutdown=30)
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler makes a
    # clean drain end with exit status 0 instead of death by that signal.
    quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
    return 0
