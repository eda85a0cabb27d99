"""Worker failures on a real Ray cluster, for tests/test_ray.py: ``python -m tests._ray_failures
OUT.json SCRATCH`` starts a cluster on 127.0.0.1 (inside the test's loopback-only namespace),
maps four shards through :func:`xfast.pipelines.engines.ray.map_shards` with workers that work,
raise, fail to start or die, and writes what each scenario gave: its rows in order, or the
message of the error it stopped with. Each scenario's stderr starts with a line ``@@ NAME``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from xfast.errors import XfastError
from xfast.pipelines.engines.ray import RaySettings, connect, map_shards, shutdown


class Doubler:
    """Works every shard: its result is twice its number, after ``die_on`` kills the worker
    (once when ``once`` names a marker file not yet there, else every time) or ``raise_on``
    raises."""

    def __init__(self, die_on: int = -1, raise_on: int = -1, once: str = "", fail_init: bool = False) -> None:
        if fail_init:
            raise ValueError("no model at /models/missing (a test)")
        self.die_on, self.raise_on, self.once = die_on, raise_on, once

    def __call__(self, batch: dict) -> dict:
        out = []
        for s in batch["shard"]:
            s = int(s)
            if s == self.raise_on:
                open(f"/nonexistent/shard-{s}.npz", "rb")
            if s == self.die_on and not (self.once and Path(self.once).exists()):
                if self.once:
                    Path(self.once).touch()
                os._exit(1)  # a worker killed mid-shard: no exception, the process is gone
            out.append(2 * s)
        return {"shard": batch["shard"], "result": np.array(out, dtype=np.int64)}


SCENARIOS = {
    "healthy": {},
    "raises": {"raise_on": 2},
    "init": {"fail_init": True},
    "dies-once": {"die_on": 1},
    "dies-always": {"die_on": 1},
}


def main(out: str, scratch: str) -> None:
    # a deprecated Ray API called from xfast's own code fails the run (Ray's warnings about its own
    # internals name Ray's modules and pass)
    warnings.filterwarnings("error", category=DeprecationWarning, module=r"xfast\.")
    settings = RaySettings(stall_timeout_s=120, max_restarts=1)
    cluster = connect(settings)
    got = {}
    try:
        for name, kwargs in SCENARIOS.items():
            print(f"@@ {name}", file=sys.stderr, flush=True)
            if name == "dies-once":
                kwargs = {**kwargs, "once": str(Path(scratch) / "died")}
            rows, error = [], None
            try:
                for item in map_shards([{"shard": i} for i in range(4)], Doubler, kwargs, settings, cluster):
                    rows.append([int(item["shard"]), int(item["result"])])
            except XfastError as err:
                error = str(err)
            got[name] = {"rows": rows, "error": error}
            sys.stderr.flush()
    finally:
        print("@@ end", file=sys.stderr, flush=True)
        shutdown(cluster)
    Path(out).write_text(json.dumps(got, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
