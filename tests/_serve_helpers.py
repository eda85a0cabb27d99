"""A server in a thread and stand-in projectors for the xfast serve tests; every request goes
to 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import numpy as np
import uvicorn

from xfast.project.config import ProjectionConfig
from xfast.serve.app import ServeSettings, create_app
from xfast.serve.projector import Projection

PAIR = {"labeled": ["Angela", "Merkel", "spoke", "in", "Berlin", "."], "entities": [[0, 2, "PER"], [4, 5, "LOC"]],
        "receiving": ["Angela", "Merkel", "sprach", "in", "Berlin", "."]}


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``create_app(settings, projector)`` served by uvicorn in a thread on an ephemeral port."""

    def __init__(self, projector, settings: ServeSettings | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.app = create_app(settings or ServeSettings(), projector)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(250):
            if self.server.started:
                break
            time.sleep(0.02)

    @classmethod
    def connect(cls, port: int, *, seconds: float = 30) -> "Server":
        """A client of a server already started (another process) on ``port``, once its
        ``/readyz`` answers 200 (or after ``seconds``)."""
        client = cls.__new__(cls)
        client.port = port
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if client.call("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        return client

    def call(self, path: str, body: object = None, *, raw: bytes | None = None, headers: dict | None = None,
             method: str | None = None, timeout: float = 30) -> tuple[int, object, dict]:
        """(status, JSON payload or text, headers with lower-case names)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        heads = {"Content-Type": "application/json"} if data is not None else {}
        heads.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method or ("POST" if data is not None else "GET"), path, body=data, headers=heads)
            resp = conn.getresponse()
            text = resp.read()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text.decode("utf-8", "replace")
            return resp.status, payload, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def text(self, path: str) -> str:
        """The body of ``GET path`` as text (``/metrics``)."""
        status, payload, _ = self.call(path)
        return payload if isinstance(payload, str) else json.dumps(payload)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StandIn:
    """A projector without a model: every receiving word is ``O``, each word pairs with the same
    position. It records each call's pairs, sleeps ``seconds_per_pair`` per pair, and raises
    for a pair holding the word ``"poison"`` (as a failure no check foresaw would)."""

    def __init__(self, seconds_per_pair: float = 0.0) -> None:
        self.config = ProjectionConfig()
        self.aligner = "stand-in"
        self.seconds_per_pair = seconds_per_pair
        self.calls: list[list] = []  # the pairs of each call, in order
        self.lock = threading.Lock()

    def _called(self, pairs: list) -> None:
        with self.lock:
            self.calls.append(list(pairs))
        time.sleep(self.seconds_per_pair * len(pairs))
        if any("poison" in p[0] for p in pairs):
            raise RuntimeError("a pair the model cannot take")

    def project_batch(self, pairs: list, *, method="heuristic", config=None) -> list[Projection]:
        self._called(pairs)
        return [Projection(["O"] * len(p[2]), []) for p in pairs]

    def align_batch(self, pairs: list) -> list:
        self._called(pairs)
        out = []
        for lab, rec in pairs:
            n = min(len(lab), len(rec))
            out.append((np.stack([np.arange(n), np.arange(n)], 1).astype(np.int32), np.ones(n, np.float32)))
        return out
