"""What every part of ``xfast serve`` shares: its settings, and the state of one running
server (metrics, batcher, projector), with the two ways it can be unable to answer."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from xfast.errors import msg
from xfast.serve.batching import Batcher
from xfast.serve.metrics import Metrics
from xfast.serve.projector import Projector
from xfast.serve.validation import Limits

__all__ = ["ServeSettings", "ServerState", "NotReady", "Draining"]


class NotReady(Exception):
    """The models are loading (``retry``: worth retrying soon) or failed to load."""

    def __init__(self, detail: str, retry: bool) -> None:
        super().__init__(detail)
        self.retry = retry


class Draining(Exception):
    """The server is shutting down and gave up on this request (E211)."""


@dataclass
class ServeSettings:
    """How the server batches, what it refuses, and how it stops."""

    max_wait_ms: float = 5.0
    max_batch_tokens: int = 8192
    max_queue: int = 256
    max_request_bytes: int = 1 << 20
    methods: tuple[str, ...] = ("heuristic", "ngram-greedy", "ngram-bipartite")
    aligner: dict = field(default_factory=dict)
    langs: tuple[str, str] | None = None  # the sides' languages, for an NLLB encoder
    max_pairs: int = Limits.max_pairs
    max_sentence_words: int = Limits.max_sentence_words
    max_word_chars: int = Limits.max_word_chars
    api_key: str | None = None  # when set, every endpoint but /healthz and /readyz needs it
    drain_timeout: float = 30.0  # seconds after SIGTERM until unfinished requests get a 503
    host_workers: int = 1  # threads for the extraction and projection of one encoder call's pairs

    @property
    def limits(self) -> Limits:
        return Limits(self.max_pairs, self.max_sentence_words, self.max_word_chars)


class ServerState:
    """What the endpoints share: the settings, the metrics, the batcher, and the projector
    (None until it is loaded)."""

    def __init__(self, settings: ServeSettings, projector=None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.projector = projector
        self.failed = ""  # why the models could not be loaded
        self.batcher = Batcher(self._run, max_batch_tokens=settings.max_batch_tokens,
                               max_wait_ms=settings.max_wait_ms, max_queue=settings.max_queue,
                               on_call=self.metrics.batch.observe, on_depth=self.metrics.queue.set)

    def ready(self) -> Projector:
        """The projector (or the stand-in the app was given), or :class:`NotReady`."""
        if self.projector is not None:
            return self.projector
        if self.failed:
            raise NotReady(f"the models could not be loaded: {self.failed}", retry=False)
        raise NotReady("the models are loading", retry=True)

    def receiving(self, scope: dict) -> None:
        """A request to the API is being received: the next batch waits for it (briefly)."""
        scope.setdefault("state", {})["xfast_arriving"] = True
        self.batcher.receiving()

    def received(self, scope: dict) -> None:
        """That request is queued, refused or over (once per request)."""
        if scope.get("state", {}).pop("xfast_arriving", False):
            self.batcher.received()

    def abort(self) -> None:
        """Shutting down: answer every unanswered request, and every later one, with a 503."""
        seconds = self.settings.drain_timeout
        self.batcher.abort(lambda: Draining(msg("E211", seconds=seconds)))

    @property
    def busy(self) -> bool:
        """Whether an encoder call (or the model load) is running."""
        return self.batcher.worker.busy

    def _run(self, kind: str, items: list) -> list:
        """One encoder call for a batch's items of one kind (on the batcher's worker thread)."""
        if kind == "project":
            return self.projector.project_batch([i[0] for i in items], method=[i[1] for i in items],
                                                 config=[i[2] for i in items])
        return self.projector.align_batch(items)

    async def _load(self) -> None:
        s = self.settings
        try:
            self.projector = await self.batcher.worker.call(
                lambda: Projector(s.aligner, methods=s.methods, langs=s.langs, host_workers=s.host_workers))
        except Exception as err:  # noqa: BLE001 - /readyz reports it; the process stays to say so
            self.failed = str(err)
            print(f"xfast: error: cannot load the models: {err}", file=sys.stderr, flush=True)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """Start the batcher (and the model load) with the app; stop them with it."""
        tasks = [asyncio.create_task(self.batcher.run())]
        if self.projector is None:
            tasks.append(asyncio.create_task(self._load()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.batcher.worker.close()
