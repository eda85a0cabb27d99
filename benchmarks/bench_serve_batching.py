"""How ``xfast serve`` batches under steady load (issue 26): the distribution of pairs per
encoder call at 32 concurrent clients, read from ``/metrics``.

The server (``xfast serve``, embedded e5-small fp32, default batching: ``--max-wait-ms 5``)
runs in a subprocess on 127.0.0.1 with an ephemeral port. 32 closed-loop clients, each on its
own keep-alive connection, send one Europarl en->de pair per ``POST /v1/project`` (heuristic)
and send the next as soon as the answer arrives, for ``XFAST_BENCH_SECONDS`` (default 20, at
most 60) or ``XFAST_BENCH_REQUESTS`` requests (default 1,500), whichever ends first, after a
warm-up of 5 s. The ``xfast_batch_pairs`` histogram is read before and after the measured
window, so the warm-up does not count.

Under steady load every client is either waiting in the queue or being answered, so a full
batch holds 32 pairs. Before issue 26 the batches alternated between 1 and 31 pairs (the one
request that arrived while a batch ran went alone, the 31 answered clients formed the next),
a mean of 16. Goal: mean pairs per call >= 28 (``XFAST_BENCH_BATCH_MEAN`` changes it).

Run: ``python -m pytest benchmarks/bench_serve_batching.py -s`` (about a minute).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_host import cpu_line

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl"  # the shipped test sets
SECONDS = min(60.0, float(os.environ.get("XFAST_BENCH_SECONDS", "20")))
REQUESTS = int(os.environ.get("XFAST_BENCH_REQUESTS", "1500"))
GOAL = float(os.environ.get("XFAST_BENCH_BATCH_MEAN", "28"))
CLIENTS = 32


def _pairs(n: int = 200) -> list[dict]:
    from xfast.io import read_conll
    from xfast.pipelines.parallel import labeled_entities

    en, de = read_conll(DATA / "en.conll"), read_conll(DATA / "de.conll")
    return [{"labeled": e.tokens, "entities": [list(x) for x in labeled_entities(e.labels)], "receiving": d.tokens}
            for _, e, d in zip(range(n), en, de)]


def _clients(port: int, pairs: list[dict], seconds: float, budget: int) -> dict:
    """32 closed-loop clients for ``seconds`` or ``budget`` requests: latencies and errors."""
    stop_at, left, lock = time.perf_counter() + seconds, [budget], threading.Lock()
    latencies: list[float] = []
    errors = [0]

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.perf_counter() < stop_at:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            body = json.dumps({"pairs": [pairs[k % len(pairs)]], "method": "heuristic"})
            k += CLIENTS
            t = time.perf_counter()
            conn.request("POST", "/v1/project", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            with lock:
                latencies.append(time.perf_counter() - t)
                errors[0] += resp.status != 200
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 180)
    lat = np.array(latencies) * 1e3
    return {"requests": len(lat), "errors": errors[0], "rate": len(lat) / (time.perf_counter() - t),
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}


def _histogram(port: int) -> dict[float, float]:
    """Cumulative ``xfast_batch_pairs`` bucket counts by upper bound."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {float(le): float(v) for le, v in re.findall(r'xfast_batch_pairs_bucket\{le="([^"]+)"\} (\S+)', text)} | {
        "sum": float(re.search(r"xfast_batch_pairs_sum (\S+)", text).group(1))}


def _distribution(before: dict, after: dict) -> tuple[list[tuple[str, int]], float, int]:
    """(``(range, calls)`` per non-empty bucket, mean pairs per call, calls) between two reads."""
    bounds = sorted(b for b in after if b != "sum")
    rows, prev, low = [], 0.0, 0
    for b in bounds:
        n = (after[b] - before.get(b, 0.0)) - prev
        prev += n
        label = f"{low + 1}-{int(b)}" if b != float("inf") else f">{low}"
        if low + 1 == b:
            label = str(int(b))
        if n:
            rows.append((label, int(n)))
        low = int(b) if b != float("inf") else low
    calls = int(after[float("inf")] - before.get(float("inf"), 0.0))
    return rows, (after["sum"] - before.get("sum", 0.0)) / max(calls, 1), calls


def test_serve_batch_sizes_at_32_clients():
    pairs = _pairs()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xfast", "serve", "--port", "0"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", proc.stderr.readline()).group(1))
        for _ in range(1200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the server did not become ready in 120 s")
        _clients(port, pairs, 5.0, 10_000)  # warm-up: word cache, allocator, connections
        before = _histogram(port)
        load = _clients(port, pairs, SECONDS, REQUESTS)
        after = _histogram(port)
    finally:
        proc.terminate()
        proc.wait(60)
    rows, mean, calls = _distribution(before, after)
    print(f"\nxfast serve, e5-small fp32, {CLIENTS} clients, one Europarl en->de pair per request, loopback "
          f"({cpu_line()})")
    print(f"{load['requests']} requests in the window, {load['errors']} errors, {load['rate']:.1f} pairs/s, "
          f"p50 {load['p50']:.0f} ms, p99 {load['p99']:.0f} ms; {calls} encoder calls, mean {mean:.1f} pairs per call")
    print(f"{'pairs per call':>15s} {'calls':>6s} {'share':>6s}")
    for label, n in rows:
        print(f"{label:>15s} {n:6d} {n / max(calls, 1):6.0%}")
    assert load["errors"] == 0
    assert mean >= GOAL, f"mean {mean:.1f} pairs per call, goal {GOAL}"
