"""The host threads of this process: one pool per size, shared by everything that works batches
here (``xfast project``'s engine, the NLLB pipelines' projections, ``xfast.Projector``'s
batches), so a run never starts more threads than it asked for and never starts them twice."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import ThreadpoolController

__all__ = ["default_host_workers", "host_pool", "map_ordered"]

T = TypeVar("T")
R = TypeVar("R")


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


_POOLS_LOCK = threading.Lock()


def host_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` host threads, made once and shared by every engine
    that works batches in this process (a project run, the NLLB pipelines' projections); a
    forked child makes its own."""
    key = (os.getpid(), workers)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="xfast-host")
        return _POOLS[key]


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's thread pools of native libraries, inspected once (a fresh inspection costs
    about a millisecond, as much as the host work of a dozen pairs)."""
    return ThreadpoolController()


def map_ordered(fn: Callable[[T], R], items: Iterable[T], *, workers: int = 1) -> list[R]:
    """``[fn(x) for x in items]``, in input order, on ``workers`` host threads (in the caller's
    thread when 1), BLAS held to one thread meanwhile; an exception in any call is raised here."""
    items = list(items)
    if workers == 1 or len(items) < 2:
        return [fn(x) for x in items]
    with _blas().limit(limits=1, user_api="blas"):
        return list(host_pool(workers).map(fn, items))


def default_host_workers(aligner) -> int:
    """Host threads when none are asked for: the cores but one when the encoder runs on a GPU
    (the host work is then what bounds the run), else 1 (the encoder uses the cores)."""
    on_gpu = "cuda" in str(aligner.encoder.provider).lower()
    return max(1, (os.cpu_count() or 1) - 1) if on_gpu else 1
