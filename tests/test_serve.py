"""xfast serve: the HTTP API answers exactly what the Projector answers, batches concurrent
requests, refuses bad input with a 422 naming the field (413, 503 for size and overload), and
drains in-flight requests on SIGTERM. Every request goes to 127.0.0.1."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from tests._serve_helpers import Server, free_port  # noqa: E402
from xfast.serve.app import ServeSettings  # noqa: E402
from xfast.serve.projector import Projector  # noqa: E402

PAIRS = [
    {"labeled": ["Angela", "Merkel", "spoke", "in", "Berlin", "."], "entities": [[0, 2, "PER"], [4, 5, "LOC"]],
     "receiving": ["Angela", "Merkel", "sprach", "in", "Berlin", "."]},
    {"labeled": ["The", "European", "Parliament", "met"], "entities": [[1, 3, "ORG"]],
     "receiving": ["Das", "Europäische", "Parlament", "tagte"]},
]


@pytest.fixture(scope="module")
def projector(tiny_models):
    return Projector({"model": str(tiny_models["xlmr"]), "layer": 2})


@pytest.fixture
def server(projector):
    s = Server(projector, ServeSettings(max_wait_ms=20, max_request_bytes=20_000))
    yield s
    s.stop()


def test_project_answers_what_the_projector_answers(server, projector):
    for method in ("heuristic", "ngram-greedy", "ngram-bipartite"):
        code, body, _ = server.call("/v1/project", {"pairs": PAIRS, "method": method})
        assert code == 200
        want = projector.project_batch([(p["labeled"], [tuple(e) for e in p["entities"]], p["receiving"]) for p in PAIRS],
                                       method=method)
        assert body["results"] == [{"labels": w.labels, "spans": [{"start": s.start, "end": s.end, "label": s.label,
                                                                   "score": s.score} for s in w.spans]}
                                   for w in want]


def test_options_as_keys_equal_the_projector_with_that_config(server, projector):
    from xfast.project.config import ProjectionConfig

    pairs = [(p["labeled"], [tuple(e) for e in p["entities"]], p["receiving"]) for p in PAIRS]
    for options in ({"length_ratio": 0.99, "merge_distance": 0}, {"min_words": 2, "max_words": 2}):
        method = "heuristic" if "length_ratio" in options else "ngram-bipartite"
        code, body, _ = server.call("/v1/project", {"pairs": PAIRS, "method": method, **options})
        assert code == 200
        want = projector.project_batch(pairs, method=method, config=ProjectionConfig(**options))
        assert [r["labels"] for r in body["results"]] == [w.labels for w in want]


def test_health_readiness_metrics_and_align(server, projector):
    assert server.call("/healthz")[:2] == (200, {"status": "ok"})
    code, body, _ = server.call("/readyz")
    assert code == 200 and body["status"] == "ready"
    code, body, _ = server.call("/v1/align", {"pairs": [{"labeled": ["a", "b"], "receiving": ["a", "c"]}]})
    want = projector.align_batch([(["a", "b"], ["a", "c"])])[0]
    assert code == 200 and body["results"][0]["pairs"] == want[0].tolist()
    assert len(body["results"][0]["scores"]) == len(want[0])
    text = server.text("/metrics")
    assert 'xfast_requests_total{path="/v1/align",status="200"}' in text
    for name in ("xfast_request_seconds_bucket", "xfast_batch_pairs_bucket", "xfast_queue_depth"):
        assert name in text
    assert server.text("/openapi.json").startswith("{")


@pytest.mark.parametrize("body,field", [
    (b"{not json", "body"),
    ({"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "method": "teleport"}, "method"),
    ({"pairs": [{"labeled": "a b", "receiving": ["b"]}]}, "pairs[0].labeled"),
    ({"pairs": [{"labeled": [], "entities": [], "receiving": ["b"]}]}, "pairs[0].labeled"),
    ({"pairs": [{"labeled": ["a"], "entities": [[0, 3, "PER"]], "receiving": ["b"]}]}, "pairs[0].entities[0]"),
    ({"pairs": [{"labeled": ["a"], "entities": [[0, 1]], "receiving": ["b"]}]}, "pairs[0].entities[0]"),
    ({"pairs": [{"receiving": ["b"]}]}, "pairs[0].labeled"),
    ({"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "methd": "heuristic"}, "methd"),
    ({"pairs": [{"labeled": ["a"], "receiving": ["b"], "extra": 1}]}, "pairs[0].extra"),
    ({"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "merge_distance": -1}, "merge_distance"),
    ({"pairs": [{"labeled": ["a"], "receiving": ["b"]}], "length_ratio": "high"}, "length_ratio"),
    ({"pairs": {"labeled": ["a"]}}, "pairs"),
])
def test_bad_input_is_422_naming_the_field(server, body, field):
    code, payload, _ = server.call("/v1/project", raw=body if isinstance(body, bytes) else json.dumps(body).encode())
    assert code == 422
    # loc is the field's path, as pydantic writes it: pairs[0].entities[0] -> pairs, 0, entities, 0
    path = [int(i) if i else n for n, i in re.findall(r"(\w+)|\[(\d+)\]", field)]
    assert any(e["loc"][1:1 + len(path)] == path or (path == ["body"] and e["loc"][0] == "body")
               for e in payload["detail"]), payload
    assert all(e["msg"] for e in payload["detail"])
    if isinstance(body, bytes):
        assert payload["detail"][0]["msg"].startswith("invalid JSON at character 1:")
    assert server.call("/healthz")[0] == 200  # still serving


def test_a_large_body_is_413(server):
    big = {"pairs": [{"labeled": ["w"] * 5000, "entities": [], "receiving": ["w"] * 5000}]}
    code, payload, _ = server.call("/v1/project", big)
    assert code == 413 and "over" in payload["detail"]


def test_concurrent_clients_each_get_their_own_answer(server, projector):
    import random

    rng = random.Random(3)
    words = ["Berlin", "Paris", "Merkel", "the", "of", "Rat", "Europa", "in", "und", "spoke"]
    jobs = []
    for i in range(40):
        n = rng.randint(2, 9)
        lab, rec = [rng.choice(words) for _ in range(n)], [rng.choice(words) for _ in range(rng.randint(2, 9))]
        jobs.append({"labeled": lab, "entities": [[0, 1, "PER"]], "receiving": rec})
    answers = [None] * len(jobs)

    def client(k):
        answers[k] = server.call("/v1/project", {"pairs": [jobs[k]], "method": "ngram-greedy"})

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    want = projector.project_batch([(j["labeled"], [(0, 1, "PER")], j["receiving"]) for j in jobs],
                                   method="ngram-greedy")
    for (code, body, _), w in zip(answers, want):
        assert code == 200 and body["results"][0]["labels"] == w.labels
    text = server.text("/metrics")
    # concurrent requests shared encoder calls: fewer calls than requests
    calls = float(text.split("xfast_batch_pairs_count ")[1].split()[0])
    assert calls < len(jobs)


class _Slow:
    """A projector whose calls take 300 ms: the encoder stays busy while requests queue."""

    def __init__(self, projector):
        self.inner, self.config, self.aligner = projector, projector.config, projector.aligner

    def check(self, *args):
        return self.inner.check(*args)

    def project_batch(self, *args, **kwargs):
        time.sleep(0.3)
        return self.inner.project_batch(*args, **kwargs)


def test_overload_is_503_with_retry_after(projector):
    s = Server(_Slow(projector), ServeSettings(max_queue=1))
    try:
        results = []

        def client():
            results.append(s.call("/v1/project", {"pairs": PAIRS}))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
            time.sleep(0.02)  # one at a time: the first runs, the second queues, the rest overflow
        for t in threads:
            t.join(60)
        codes = sorted(r[0] for r in results)
        assert codes.count(200) >= 2 and 503 in codes and set(codes) <= {200, 503}
        refused = next(r for r in results if r[0] == 503)
        assert refused[2].get("retry-after") == "1" or refused[2].get("Retry-After") == "1"
        assert "queue is full" in refused[1]["detail"]
        text = s.text("/metrics")
        assert 'xfast_requests_total{path="/v1/project",status="503"}' in text
    finally:
        s.stop()


def test_a_lone_request_does_not_wait_and_bursts_share_calls(projector):
    """max_wait_ms is an upper bound: with nothing else arriving a request goes at once."""
    s = Server(projector, ServeSettings(max_wait_ms=2000))
    try:
        t = time.monotonic()
        assert s.call("/v1/project", {"pairs": PAIRS})[0] == 200
        assert time.monotonic() - t < 1.5
    finally:
        s.stop()


def test_serve_binds_loopback_with_nodelay_connections(monkeypatch):
    """serve() listens on 127.0.0.1 by default, on a socket asyncio gives TCP_NODELAY to."""
    import uvicorn as uv

    from xfast.serve.app import serve

    seen = {}

    def fake_run(self, sockets=None):
        seen["sock"] = sockets[0]
        seen["addr"] = sockets[0].getsockname()

    monkeypatch.setattr(uv.Server, "run", fake_run)
    assert serve(ServeSettings(), port=0) == 0
    assert seen["addr"][0] == "127.0.0.1" and seen["sock"].proto == socket.IPPROTO_TCP
    seen["sock"].close()


def test_unknown_paths_share_one_metrics_label(server):
    for k in range(5):
        assert server.call(f"/no/such/{k}")[0] == 404
    text = server.text("/metrics")
    assert 'xfast_requests_total{path="other",status="404"} 5.0' in text and "/no/such" not in text


def test_sigterm_answers_every_request_in_flight(tmp_path, tiny_models):
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-m", "xfast", "serve", "--port", str(port), "--aligner",
                             str(tiny_models["xlmr"]), "--layer", "2", "--max-wait-ms", "400"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "serving on http://127.0.0.1:" in proc.stderr.readline()
        client = Server.connect(port)
        # six requests of about half a second of work each: most are still queued or running
        # when SIGTERM comes
        rng = random.Random(0)
        vocab = ["Berlin", "Paris", "Merkel", "the", "of", "Rat", "Europa", "in", "und", "spoke"]
        heavy = [{"labeled": [rng.choice(vocab) for _ in range(120)], "entities": [[0, 2, "PER"]],
                  "receiving": [rng.choice(vocab) for _ in range(120)]} for _ in range(32)]
        results, done_at = [], []

        def call():
            results.append(client.call("/v1/project", {"pairs": heavy, "method": "ngram-bipartite"}, timeout=120))
            done_at.append(time.monotonic())

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)
        assert proc.wait(60) == 0
        assert len(results) == 6 and all(code == 200 and len(body["results"]) == 32 for code, body, _ in results)
        assert max(done_at) > sent  # some were answered after the signal: drained, not dropped
    finally:
        if proc.poll() is None:
            proc.kill()
