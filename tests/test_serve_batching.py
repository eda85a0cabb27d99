"""xfast.serve.batching without HTTP: a failure fails only its own request, large requests are
split so a small one is not held behind them, steady load gives full batches, a lone request
does not wait, the queue is bounded, and abort answers everyone."""

import asyncio
import statistics
import subprocess
import sys
import time

import pytest

from xfast.serve.batching import Batcher, JobFailed, QueueFull


def _run_recording(calls: list, seconds: float = 0.0):
    def run(kind: str, items: list) -> list:
        calls.append((kind, list(items)))
        time.sleep(seconds)
        if "poison" in items:
            raise RuntimeError("cannot take this item")
        return [f"{kind}:{x}" for x in items]

    return run


async def _with_batcher(batcher: Batcher, body):
    task = asyncio.create_task(batcher.run())
    try:
        return await body()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        batcher.worker.close()


def test_a_failing_item_fails_only_its_own_request():
    calls = []
    batcher = Batcher(_run_recording(calls, 0.05), max_wait_ms=50)

    async def body():
        first = asyncio.create_task(batcher.submit("project", ["warm"], [1]))
        await asyncio.sleep(0.01)  # the first call runs while the next thirteen queue up
        jobs = [batcher.submit("project", [f"good{k}", f"more{k}"], [1, 1]) for k in range(12)]
        jobs.insert(5, batcher.submit("project", ["poison"], [1]))
        return await first, await asyncio.gather(*jobs, return_exceptions=True)

    first, got = asyncio.run(_with_batcher(batcher, body))
    assert first == ["project:warm"]
    assert isinstance(got[5], JobFailed) and isinstance(got[5].__cause__, RuntimeError)
    good = got[:5] + got[6:]
    assert good == [[f"project:good{k}", f"project:more{k}"] for k in range(12)]
    assert len(calls[1][1]) == 25  # the thirteen shared one call, which failed; then each ran alone


def test_large_requests_are_split_and_a_small_one_joins_the_next_batch():
    calls = []
    batcher = Batcher(_run_recording(calls, 0.02), max_batch_tokens=40, max_wait_ms=1)

    async def body():
        big = asyncio.create_task(batcher.submit("project", [f"b{k}" for k in range(30)], [10] * 30))
        await asyncio.sleep(0.005)  # the first batch of the big request is in the model
        small = await batcher.submit("align", ["s"], [4])
        return await big, small

    big, small = asyncio.run(_with_batcher(batcher, body))
    assert big == [f"project:b{k}" for k in range(30)] and small == ["align:s"]
    assert all(sum(10 if x.startswith("b") else 4 for x in items) <= 40 for _, items in calls)
    assert [c for c in calls[:3] if c[0] == "align"] == [("align", ["s"])]  # in the second batch
    assert len(calls) >= 8


def test_steady_load_gives_full_batches():
    """32 closed-loop clients, started a little apart (as a burst arrives): after the first
    batches, every batch holds all 32 instead of alternating between stragglers and the rest."""
    sizes = []
    batcher = Batcher(lambda kind, items: (time.sleep(0.01), list(items))[1], max_wait_ms=20,
                      on_call=sizes.append)

    async def client(k: int) -> None:
        await asyncio.sleep(0.001 * (k == 0))  # one client ahead of the others
        for _ in range(12):
            await batcher.submit("project", [k], [1])
            await asyncio.sleep(0.0005)  # the answer's way back and the next request's way in

    async def body():
        await asyncio.gather(*(client(k) for k in range(32)))

    asyncio.run(_with_batcher(batcher, body))
    assert sum(sizes) == 32 * 12
    assert statistics.median(sizes) == 32, sizes


def test_a_lone_request_does_not_wait():
    batcher = Batcher(lambda kind, items: list(items), max_wait_ms=2000)

    async def body():
        t = time.perf_counter()
        for k in range(3):  # a client sending one request after another
            assert await batcher.submit("project", [k], [1]) == [k]
        return time.perf_counter() - t

    assert asyncio.run(_with_batcher(batcher, body)) < 1.0


def test_the_queue_is_bounded_and_abort_answers_everyone():
    depths = []
    batcher = Batcher(lambda kind, items: (time.sleep(0.2), list(items))[1], max_queue=2, on_depth=depths.append)

    async def body():
        running = asyncio.create_task(batcher.submit("project", ["a"], [1]))
        await asyncio.sleep(0.05)  # "a" is in the model: it no longer counts as waiting
        queued = [asyncio.create_task(batcher.submit("align", [x], [1])) for x in "bc"]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit("project", ["d"], [1])
        batcher.abort(lambda: RuntimeError("shutting down"))
        with pytest.raises(RuntimeError, match="shutting down"):
            await batcher.submit("project", ["e"], [1])
        return await asyncio.gather(running, *queued, return_exceptions=True)

    got = asyncio.run(_with_batcher(batcher, body))
    assert all(isinstance(g, RuntimeError) and "shutting down" in str(g) for g in got)
    assert max(depths) == 2 and depths[-1] == 0


def test_the_batcher_and_the_python_api_import_no_http_framework():
    code = ("import sys, xfast, xfast.serve.projector, xfast.serve.batching, xfast.serve.validation; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'pydantic', 'starlette', "
            "'uvicorn', 'prometheus_client'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr
