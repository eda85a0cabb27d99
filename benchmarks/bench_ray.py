"""``xfast project --engine ray`` on a local Ray cluster beside the local engine (issue 13).

The same command, heuristic + n-gram greedy on the Europarl-NER en->de test sets repeated to
``XFAST_BENCH_RAY_PAIRS`` pairs (default 20,774), run twice in the same benchmark: ``--engine
local`` and ``--engine ray`` (xfast starts the cluster on 127.0.0.1). Two encoders:

* ``mini``: one BERT layer 16 wide with e5-small's real tokenizer (a near-free model, so the
  engines' own costs show);
* ``e5-small``: the embedded aligner, fp32, on ``XFAST_BENCH_RAY_E5_PAIRS`` pairs (default
  20,774; about 7 minutes per engine on 2 cores).

Reported per engine: wall time, peak memory of the whole process tree (driver, Ray's processes,
the actors; RSS summed, sampled every 0.2 s), and for Ray its fixed start-up cost (cluster
start, then the actor's start and model load until the first shard is back) and its overhead
per shard beyond that. Outputs of both engines are asserted byte-identical. With e5-small on 20k
pairs Ray's wall time is asserted below 1.5x the local engine's (``XFAST_BENCH_RAY_RATIO``); with
the near-free encoder the ratio only shows Ray's fixed start-up cost, and is reported.

Loopback only: every run happens inside a network namespace holding only loopback (``unshare
-rn``) with Ray's usage statistics off, and Ray's node address must be 127.0.0.1.

Run: ``python -m pytest benchmarks/bench_ray.py -s`` (about 16 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _random_models import mini_e5  # noqa: E402
from bench_host import cpu_line  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl"  # the shipped test sets
PAIRS = int(os.environ.get("XFAST_BENCH_RAY_PAIRS", "20774"))
E5_PAIRS = int(os.environ.get("XFAST_BENCH_RAY_E5_PAIRS", "20774"))
RATIO = float(os.environ.get("XFAST_BENCH_RAY_RATIO", "1.5"))


def _netns_ok() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


def _corpus(d: Path, pairs: int) -> tuple[Path, Path]:
    out = []
    for lang in ("en", "de"):
        blocks = [b for b in (DATA / f"{lang}.conll").read_text(encoding="utf-8").split("\n\n")
                  if b.strip() and not b.startswith("-DOCSTART-")]
        reps = -(-pairs // len(blocks))
        path = d / f"{lang}.{pairs}.conll"
        path.write_text("\n\n".join((blocks * reps)[:pairs]) + "\n\n", encoding="utf-8")
        out.append(path)
    return out[0], out[1]


def _tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and every process below it."""
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    total, todo = 0, [pid]
    while todo:
        q = todo.pop()
        todo.extend(kids.get(q, []))
        try:
            total += int((Path(f"/proc/{q}/statm")).read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _run(out: Path, en: Path, de: Path, aligner: list[str], engine: str) -> dict:
    cmd = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m", "xfast",
           "project", "--labeled", str(en), "--receiving", f"de={de}", "--out", str(out), "--aligner", *aligner,
           "--method", "heuristic", "ngram-greedy", "--engine", engine, "--quiet", "--overwrite"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    peak = [0]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t
    th.join()
    assert proc.returncode == 0, err[-2000:]
    run = json.loads((out / "run.json").read_text())
    if engine == "ray":
        assert run["ray"]["node_address"] == "127.0.0.1"
    return {"wall": wall, "peak": peak[0], "run": run}


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != "run.json"}


def _compare(tmp: Path, name: str, aligner: list[str], pairs: int) -> tuple[dict, dict]:
    en, de = _corpus(tmp, pairs)
    local = _run(tmp / f"{name}-local", en, de, aligner, "local")
    ray = _run(tmp / f"{name}-ray", en, de, aligner, "ray")
    assert _outputs(tmp / f"{name}-local") == _outputs(tmp / f"{name}-ray")
    w, r = ray["run"]["worker_timings_s"], ray["run"]["ray"]
    shards = ray["run"]["shards"]
    load = w.get("load aligner", 0.0)
    walls = r["shard_wall_s"]  # each shard's time inside its actor
    # one actor: fixed = starting the cluster, then the actor (its process, imports and model);
    # what the job takes beyond that and the shards' own time is Ray's cost per shard
    fixed = ray["run"]["timings_s"].get("start ray", 0.0) + r["actor_ready_s"]
    per_shard = (r["map_s"] - r["actor_ready_s"] - sum(walls)) / max(1, shards)
    print(f"\n{name}: {pairs:,} pairs, {shards} shards of 8,192, heuristic + n-gram greedy, 2 cores ({cpu_line()})")
    print(f"{'engine':<8}{'wall s':>9}{'pairs/s':>10}{'peak MiB':>10}")
    for label, x in (("local", local), ("ray", ray)):
        print(f"{label:<8}{x['wall']:9.2f}{pairs / x['wall']:10.0f}{x['peak'] / 2**20:10.0f}")
    print(f"ray / local wall: {ray['wall'] / local['wall']:.2f}x; fixed start-up {fixed:.1f} s (cluster "
          f"{ray['run']['timings_s'].get('start ray', 0):.1f} s, then the actor ready in {r['actor_ready_s']:.1f} s, "
          f"{load:.1f} s of it loading the model); overhead per shard {per_shard * 1e3:.0f} ms "
          f"({per_shard / 8192 * 1e6:.1f} us per pair); shards' time in the actor "
          f"{', '.join(f'{x:.2f}' for x in walls)} s")
    return local, ray


@pytest.mark.skipif(not _netns_ok(), reason="needs a loopback-only network namespace (unshare -rn)")
def test_ray_vs_local(tmp_path):
    pytest.importorskip("ray.data")
    from xfast.models.cache import cache_dir

    mini = mini_e5(cache_dir() / "bench" / "mini-e5-16")
    _compare(tmp_path, "mini", [str(mini), "--layer", "1"], PAIRS)
    local, ray = _compare(tmp_path, "e5-small", ["e5-small"], E5_PAIRS)
    if E5_PAIRS >= 20000:
        assert ray["wall"] <= RATIO * local["wall"]
