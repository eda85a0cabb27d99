"""The Prometheus series ``xfast serve`` exposes at ``GET /metrics`` (one registry per app)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics", "PATHS"]

#: paths counted under their own label; every other path is counted as "other"
PATHS = ("/healthz", "/readyz", "/metrics", "/v1/project", "/v1/align", "/docs", "/openapi.json")

#: request latency buckets, seconds: from 1 ms to 2 minutes (a large request may take a minute)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: pairs per encoder call
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512)


class Metrics:
    """Request counts and latency by path and status, pairs per encoder call, queue depth."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("xfast_requests", "HTTP requests by path and status", ["path", "status"],
                                registry=self.registry)
        self.latency = Histogram("xfast_request_seconds", "request latency", ["path"], registry=self.registry,
                                 buckets=LATENCY_BUCKETS)
        self.batch = Histogram("xfast_batch_pairs", "sentence pairs per encoder call", registry=self.registry,
                               buckets=BATCH_BUCKETS)
        self.queue = Gauge("xfast_queue_depth", "requests waiting for the encoder", registry=self.registry)

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request; ``path`` outside :data:`PATHS` is counted as ``other``."""
        label = path if path in PATHS else "other"  # bounded label values
        self.requests.labels(label, str(status)).inc()
        self.latency.labels(label).observe(seconds)

    def text(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
