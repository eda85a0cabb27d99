"""Load test of ``xfast serve`` on loopback, beside offline alignment of the same pairs (issue 14).

The server (``xfast serve``, embedded e5-small fp32, default batching: ``--max-wait-ms 5``)
runs in a subprocess on 127.0.0.1 with an ephemeral port. Closed-loop clients, each on its own
keep-alive connection, send one Europarl en->de pair per ``POST /v1/project`` (heuristic) and
send the next as soon as the answer arrives, at concurrency 1, 8 and 32, each for
``XFAST_BENCH_SECONDS`` (default 20, at most 60) or ``XFAST_BENCH_REQUESTS`` requests (default
3,000), whichever ends first. Every request goes to 127.0.0.1.

Beside them, in this process before the server starts: the offline rate of
``Aligner.align_batch`` on the same pairs (all in one call, the batch path ``xfast project``
uses), and the in-process p50 of ``Projector.project`` on each of those pairs, one at a time
(the clients cycle through the same pairs).

Goals: at concurrency 1, server p50 within 3 ms of the in-process p50; at 32, pairs/s >= 70% of
the offline rate (both asserted; ``XFAST_BENCH_SERVE_GAP_MS`` and ``XFAST_BENCH_SERVE_SHARE``
change them). The clients share the machine's two cores with the server, as they would with a
real caller on the same host.

Run: ``python -m pytest benchmarks/bench_serve.py -s`` (about 2 minutes).
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
from bench_host import cpu_line  # noqa: E402

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl"  # the shipped test sets
SECONDS = min(60.0, float(os.environ.get("XFAST_BENCH_SECONDS", "20")))
REQUESTS = int(os.environ.get("XFAST_BENCH_REQUESTS", "3000"))
GAP_MS = float(os.environ.get("XFAST_BENCH_SERVE_GAP_MS", "3.0"))
SHARE = float(os.environ.get("XFAST_BENCH_SERVE_SHARE", "0.7"))
N_PAIRS = 400


def _pairs() -> list[dict]:
    from xfast.io import read_conll
    from xfast.pipelines.parallel import labeled_entities

    en = read_conll(DATA / "en.conll")
    de = read_conll(DATA / "de.conll")
    return [{"labeled": e.tokens, "entities": [list(x) for x in labeled_entities(e.labels)], "receiving": d.tokens}
            for _, e, d in zip(range(N_PAIRS), en, de)]


def _offline(pairs: list[dict]) -> tuple[float, float]:
    """(align_batch pairs/s on all pairs, in-process project p50 ms one pair at a time)."""
    from xfast.serve import Projector

    projector = Projector()
    lab, rec = [p["labeled"] for p in pairs], [p["receiving"] for p in pairs]
    projector.aligner.align_batch(lab[:32], rec[:32])
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        projector.aligner.align_batch(lab, rec)
        best = min(best, time.perf_counter() - t)
    for p in pairs[:20]:
        projector.project(p["labeled"], p["entities"], p["receiving"])
    one = []
    for p in pairs:
        t = time.perf_counter()
        projector.project(p["labeled"], p["entities"], p["receiving"])
        one.append(time.perf_counter() - t)
    return len(pairs) / best, float(np.percentile(one, 50) * 1e3)


class _Client(threading.Thread):
    def __init__(self, port: int, pairs: list[dict], start: int, stop_at: float, budget: list) -> None:
        super().__init__(daemon=True)
        self.port, self.pairs, self.k, self.stop_at, self.budget = port, pairs, start, stop_at, budget
        self.latencies: list[float] = []
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.connect()
        # as urllib3 (requests) and most HTTP clients do: http.client sends headers and body in
        # two writes, which Nagle's algorithm would hold back for the server's delayed ACK
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.perf_counter() < self.stop_at:
            with _LOCK:
                if self.budget[0] <= 0:
                    break
                self.budget[0] -= 1
            body = json.dumps({"pairs": [self.pairs[self.k % len(self.pairs)]], "method": "heuristic"})
            self.k += 1
            t = time.perf_counter()
            conn.request("POST", "/v1/project", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            self.latencies.append(time.perf_counter() - t)
            if resp.status != 200 or not json.loads(payload)["results"]:
                self.errors += 1
        conn.close()


_LOCK = threading.Lock()


def _load(port: int, pairs: list[dict], clients: int) -> dict:
    stop_at = time.perf_counter() + SECONDS
    budget = [REQUESTS]
    workers = [_Client(port, pairs, k * 7, stop_at, budget) for k in range(clients)]
    t = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(SECONDS + 120)
    wall = time.perf_counter() - t
    lat = np.array([x for w in workers for x in w.latencies]) * 1e3
    return {"clients": clients, "requests": len(lat), "errors": sum(w.errors for w in workers),
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "rate": len(lat) / wall}


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_serve_load():
    pairs = _pairs()
    offline_rate, inproc_p50 = _offline(pairs)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xfast", "serve", "--port", "0"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        for _ in range(600):
            try:
                if _get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the server did not become ready in 60 s")
        _load(port, pairs[:50], 4)  # warm-up: word cache, allocator, connections
        rows = [_load(port, pairs, c) for c in (1, 8, 32)]
        batches = _get(port, "/metrics")[1]
    finally:
        proc.terminate()
        proc.wait(60)
    count = float(re.search(r"xfast_batch_pairs_count (\S+)", batches).group(1))
    total = float(re.search(r"xfast_batch_pairs_sum (\S+)", batches).group(1))
    print(f"\nxfast serve, e5-small fp32, one Europarl en->de pair per request, loopback ({cpu_line()})")
    print(f"offline Aligner.align_batch on the same {len(pairs)} pairs: {offline_rate:.1f} pairs/s; "
          f"in-process Projector.project p50 {inproc_p50:.2f} ms")
    print(f"{'clients':>8s} {'requests':>9s} {'errors':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'pairs/s':>8s} "
          f"{'of offline':>10s}")
    for r in rows:
        print(f"{r['clients']:8d} {r['requests']:9d} {r['errors']:7d} {r['p50']:8.2f} {r['p99']:8.2f} "
              f"{r['rate']:8.1f} {r['rate'] / offline_rate:10.0%}")
    print(f"mean pairs per encoder call over the run: {total / count:.1f}")
    assert all(r["errors"] == 0 for r in rows)
    assert rows[0]["p50"] - inproc_p50 <= GAP_MS, "concurrency 1: server p50 too far above in-process p50"
    assert rows[2]["rate"] >= SHARE * offline_rate, "concurrency 32: throughput below the goal share of offline"
