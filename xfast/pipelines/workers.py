"""The host threads of this process: one pool per size, shared by everything that works batches
here (``xfast project``'s engine, the NLLB pipelines' projections), so a run never starts more
threads than it asked for and never starts them twice."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["host_pool", "map_ordered"]

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


def map_ordered(fn: Callable[[T], R], items: Iterable[T], *, workers: int = 1) -> list[R]:
    """``[fn(x) for x in items]``, in input order, on ``workers`` host threads (in the caller's
    thread when 1); an exception in any call is raised here."""
    items = list(items)
    if workers == 1 or len(items) < 2:
        return [fn(x) for x in items]
    with threadpool_limits(limits=1, user_api="blas"):
        return list(host_pool(workers).map(fn, items))
