"""Ray without shared storage: a cluster of two nodes on this machine, the second in a mount
namespace of its own where the inputs' and the output's folders are hidden under empty tmpfs
mounts, as on a cluster whose nodes share no file system. ``xfast project --engine ray`` with an
actor on each node gives the local engine's bytes: the driver alone reads the inputs and writes
``--out``; shards travel through Ray's object store.

Everything runs inside a network namespace that holds only loopback (``unshare -rn``), with
Ray's usage statistics off; without ``unshare`` or Ray the test skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests._pipeline_helpers import europarl_path, head_conll, masakhaner_path

RAY = shutil.which("ray", path=str(Path(sys.executable).parent))


def _can() -> bool:
    if RAY is None or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up && unshare -m true"], capture_output=True)
    return probe.returncode == 0


needs_nodes = pytest.mark.skipif(not _can(), reason="needs ray, unshare -rn and unshare -m (namespaces)")


@needs_nodes
@pytest.mark.parametrize("command", ["project", "translate-test", "translate-train"])
def test_two_nodes_without_shared_storage_equal_local(tmp_path, tiny_models, command):
    data, out_parent = tmp_path / "data", tmp_path / "runs"
    data.mkdir()
    out_parent.mkdir()
    en = head_conll(europarl_path("en"), 48, data / "en.conll")
    de = head_conll(europarl_path("de"), 48, data / "de.conll")
    hau = head_conll(masakhaner_path("hau"), 24, data / "hau.conll")
    nllb = ["--translator", str(tiny_models["nllb_ct2"]), "--easyproject-translator", str(tiny_models["nllb_ct2"]),
            "--ner-model", str(tiny_models["ner_onnx"]), "--shard-size", "4"]
    aligner = ["--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--method", "heuristic", "ngram-greedy", "--quiet"]
    common = {
        "project": ["project", "--labeled", str(en), "--receiving", f"de={de}", "--batch-size", "8", "--shard-size",
                    "8", "--write-alignments"],
        "translate-test": ["translate-test", "--input", str(hau), "--lang", "hau", "--mode", "src2tgt", "tgt2tgt",
                           "--baseline", *nllb],
        "translate-train": ["translate-train", "--input", str(en), "--lang", "de", "--mode", "plain", "marker", *nllb],
    }[command] + aligner
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    local = subprocess.run([sys.executable, "-m", "xfast", *common, "--out", str(out_parent / "local")], env=env,
                           capture_output=True, text=True)
    assert local.returncode in (0, 1), local.stderr[-2000:]
    on_ray = out_parent / "ray"
    ray_tmp = tempfile.mkdtemp(prefix="xr", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    script = textwrap.dedent(f"""
        set -e
        ip link set lo up
        export RAY_TMPDIR={ray_tmp} RAY_AUTH_MODE=disabled  # a loopback-only namespace: nothing else can join
        "{RAY}" start --head --port=6390 --node-ip-address=127.0.0.1 --num-cpus=2 --include-dashboard=false \
            --disable-usage-stats > {tmp_path / "head.log"} 2>&1
        unshare -m sh -c 'mount -t tmpfs none "{data}" && mount -t tmpfs none "{out_parent}" && \
            "{RAY}" start --address=127.0.0.1:6390 --node-ip-address=127.0.0.1 --num-cpus=2 \
            --disable-usage-stats > {tmp_path / "node.log"} 2>&1'
        set +e
        "{sys.executable}" -m xfast {" ".join(common)} --out {on_ray} --engine ray --address 127.0.0.1:6390 \
            --ray-actors 2 --ray-cpus-per-actor 1.5 --stall-timeout 300
        code=$?
        "{RAY}" stop --force > /dev/null 2>&1
        exit $code
    """)
    try:
        got = subprocess.run(["unshare", "-rn", "sh", "-c", script], env=env, capture_output=True, text=True,
                             timeout=900)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert got.returncode == local.returncode, (got.stdout + got.stderr)[-3000:]
    skip = {"run.json", "qa.json", "manifest.json"}  # timings, the engine's record, paths
    a = {p.name: p.read_bytes() for p in (out_parent / "local").iterdir() if p.is_file() and p.name not in skip}
    b = {p.name: p.read_bytes() for p in on_ray.iterdir() if p.is_file() and p.name not in skip}
    assert a and a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    if command == "project":
        assert len(json.loads((on_ray / "run.json").read_text())["ray"]["nodes"]) == 2  # an actor on each node
