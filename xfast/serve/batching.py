"""Request batching for ``xfast serve``: concurrent requests share encoder calls, and one
request never harms another.

No HTTP here. A request is a *job*: a kind (``"project"`` or ``"align"``), its items (sentence
pairs) and each item's size in words. :class:`Batcher` queues jobs and runs them through a
``run(kind, items) -> results`` function on one :class:`Worker` thread, one batch at a time:

- a batch takes pairs round-robin from every waiting job, one pair per job per round, up to
  ``max_batch_tokens`` words: a large request is split across batches, and a small request
  that arrives meanwhile joins the next batch instead of waiting for all of it;
- a batch waits for more work only while requests are being received, or while fewer
  requests wait than the last batch answered (under steady load their clients send again at
  once; waiting for them keeps batches full instead of alternating between the few that
  arrived during the last call and everyone else), and then at most ``max_wait_ms`` or a
  tenth of the last encoder call's time, whichever is longer (the wait costs at most a tenth
  of the model's time); a lone client never waits;
- when a batch's call fails, each request in it is run again on its own, so only the
  request that fails gets the error (as :class:`JobFailed`, its cause chained);
- :meth:`Batcher.abort` fails every waiting request at once (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

__all__ = ["Batcher", "Worker", "QueueFull", "JobFailed"]


class QueueFull(Exception):
    """``max_queue`` requests are already waiting."""


class JobFailed(Exception):
    """The encoder call of one request failed; ``__cause__`` is the error it raised."""

    def __init__(self, kind: str, cause: BaseException) -> None:
        super().__init__(f"{kind}: {type(cause).__name__}: {cause}")
        self.kind = kind
        self.__cause__ = cause


class Worker:
    """One daemon thread that runs calls in order, awaited from the event loop.

    A daemon, so that a process told to stop need not wait for a long encoder call that
    nobody waits for any more (:attr:`busy` says whether one runs).
    """

    def __init__(self, name: str = "xfast-serve") -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self.busy = False

    async def call(self, fn: Callable[[], object]) -> object:
        """``fn()`` on the worker thread; its result, or its exception raised here."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((fn, loop, future))
        return await future

    def close(self) -> None:
        """Let the thread end once the calls queued so far have run."""
        if self._thread is not None:
            self._calls.put(None)

    def _serve(self) -> None:
        while (task := self._calls.get()) is not None:
            fn, loop, future = task
            self.busy = True
            try:
                result, error = fn(), None
            except BaseException as err:  # noqa: BLE001 - handed to the awaiting coroutine
                result, error = None, err
            self.busy = False
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for this
                loop.call_soon_threadsafe(_resolve, future, result, error)


def _resolve(future: asyncio.Future, result: object, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(eq=False)
class _Job:
    kind: str
    items: list
    words: list[int]
    future: asyncio.Future
    results: list = field(default_factory=list)
    sent: int = 0  # items handed to the encoder
    done: int = 0  # items with results

    @property
    def waiting(self) -> bool:
        return self.sent < len(self.items) and not self.future.done()


_Piece = tuple[_Job, int, int]  # a job's items [start, stop) in one batch


class Batcher:
    """Queues jobs and runs them in batches through ``run(kind, items) -> results`` (called on
    :attr:`worker`, one call per kind in a batch). ``on_call(pairs)`` is told the size of each
    call, ``on_depth(requests)`` the number of requests waiting whenever it changes."""

    def __init__(self, run: Callable[[str, list], Sequence], *, max_batch_tokens: int = 8192,
                 max_wait_ms: float = 5.0, max_queue: int = 256, on_call: Callable[[int], None] | None = None,
                 on_depth: Callable[[int], None] | None = None) -> None:
        self._run = run
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._on_call = on_call
        self._on_depth = on_depth
        self.worker = Worker()
        self._jobs: list[_Job] = []  # accepted and unanswered, in arrival order
        self._wake = asyncio.Event()
        self._closed: Callable[[], Exception] | None = None
        self._expect = 0  # requests the last batch answered: under load, their clients come back
        self._last_call = 0.0  # seconds the last batch took on the worker
        self.arriving = 0  # requests being received (see :meth:`receiving`)

    # ------------------------------------------------------------------ callers
    @property
    def waiting(self) -> int:
        """Requests with pairs not yet handed to the encoder."""
        return sum(j.waiting for j in self._jobs)

    def receiving(self) -> None:
        """A request is being received: a batch about to start waits for it (at most
        ``max_wait_ms``) until :meth:`received` is called for it."""
        self.arriving += 1

    def received(self) -> None:
        """The request announced by :meth:`receiving` is queued or refused."""
        self.arriving -= 1
        self._wake.set()

    async def submit(self, kind: str, items: Sequence, words: Sequence[int]) -> list:
        """Queue a job and wait for its results, one per item in order. Raises
        :class:`QueueFull`, :class:`JobFailed`, or the error :meth:`abort` was given."""
        if self._closed is not None:
            raise self._closed()
        if self.waiting >= self.max_queue:
            raise QueueFull(f"{self.waiting} requests are waiting (the limit)")
        if not items:
            return []
        job = _Job(kind, list(items), list(words), asyncio.get_running_loop().create_future(), [None] * len(items))
        self._jobs.append(job)
        self._depth()
        self._wake.set()
        return await job.future

    def abort(self, error: Callable[[], Exception]) -> None:
        """Fail every unanswered job with ``error()``, and every later :meth:`submit`."""
        self._closed = error
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(error())
        self._jobs.clear()
        self._depth()
        self._wake.set()

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Gather and run batches until cancelled."""
        while True:
            pieces = await self._gather()
            self._depth()
            if not pieces:
                continue
            start = time.perf_counter()
            try:
                outcomes = await self.worker.call(partial(self._compute, pieces))
            except Exception as err:  # noqa: BLE001 - _compute catches its own; this is a last guard
                outcomes = [err] * len(pieces)
            self._last_call = time.perf_counter() - start
            self._settle(pieces, outcomes)

    async def _gather(self) -> list[_Piece]:
        while not any(j.waiting for j in self._jobs):
            self._wake.clear()
            await self._wake.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.max_wait, self._last_call / 10)
        while not self._enough():
            left = deadline - loop.time()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
        return self._take()

    def _enough(self) -> bool:
        """Whether the next batch should start now rather than wait for more requests."""
        waiting = [j for j in self._jobs if j.waiting]
        if sum(sum(j.words[j.sent:]) for j in waiting) >= self.max_batch_tokens:
            return True
        return not self.arriving and len(waiting) >= self._expect

    def _take(self) -> list[_Piece]:
        """The next batch: one pair per waiting job per round, in arrival order, while they fit."""
        self._jobs = [j for j in self._jobs if not j.future.done()]
        taken: dict[_Job, int] = {}
        used = 0
        active = [j for j in self._jobs if j.waiting]
        while active:
            still = []
            for job in active:
                k = job.sent + taken.get(job, 0)
                if used and used + job.words[k] > self.max_batch_tokens:
                    continue  # no room left for this job's next pair in this batch
                taken[job] = taken.get(job, 0) + 1
                used += job.words[k]
                if k + 1 < len(job.items):
                    still.append(job)
            active = still
        pieces = []
        for job, n in taken.items():
            pieces.append((job, job.sent, job.sent + n))
            job.sent += n
        return pieces

    def _compute(self, pieces: list[_Piece]) -> list:
        """On the worker: each piece's results, or the exception that its own call raised."""
        outcomes: list = [None] * len(pieces)
        for kind in dict.fromkeys(job.kind for job, _, _ in pieces):
            idx = [k for k, (job, _, _) in enumerate(pieces) if job.kind == kind]
            try:
                got = self._call(kind, [x for k in idx for x in _items(pieces[k])])
            except Exception as err:  # noqa: BLE001 - find whose request it is: each again alone
                if len(idx) == 1:
                    outcomes[idx[0]] = err
                    continue
                for k in idx:
                    try:
                        outcomes[k] = self._call(kind, _items(pieces[k]))
                    except Exception as own:  # noqa: BLE001 - this request's own failure
                        outcomes[k] = own
                continue
            at = 0
            for k in idx:
                n = pieces[k][2] - pieces[k][1]
                outcomes[k], at = got[at:at + n], at + n
        return outcomes

    def _call(self, kind: str, items: list) -> list:
        if self._on_call is not None:
            self._on_call(len(items))
        got = list(self._run(kind, items))
        if len(got) != len(items):
            raise RuntimeError(f"run({kind!r}) returned {len(got)} results for {len(items)} items")
        return got

    def _settle(self, pieces: list[_Piece], outcomes: list) -> None:
        answered = 0
        for (job, start, stop), out in zip(pieces, outcomes):
            if job.future.done():
                continue
            if isinstance(out, BaseException):
                job.future.set_exception(JobFailed(job.kind, out))
                answered += 1
                continue
            job.results[start:stop] = out
            job.done += stop - start
            if job.done == len(job.items):
                job.future.set_result(job.results)
                answered += 1
        self._expect = answered
        self._jobs = [j for j in self._jobs if not j.future.done()]
        self._depth()

    def _depth(self) -> None:
        if self._on_depth is not None:
            self._on_depth(self.waiting)


def _items(piece: _Piece) -> list:
    job, start, stop = piece
    return job.items[start:stop]
