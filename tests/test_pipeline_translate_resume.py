"""Kill and resume: ``xfast translate-test`` killed (SIGKILL) right after its first cached
shard is written, then rerun, gives byte-identical outputs to an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests._pipeline_helpers import head_conll, masakhaner_path

N = 60


def cli(tiny, data, out, cache):
    return [sys.executable, "-m", "xfast", "translate-test", "--input", str(data), "--lang", "hau",
            "--out", str(out), "--cache", str(cache), "--translator", str(tiny["nllb_ct2"]),
            "--easyproject-translator", str(tiny["nllb_ct2"]), "--ner-model", str(tiny["ner_onnx"]),
            "--aligner", str(tiny["xlmr"]), "--mode", "src2tgt", "tgt2tgt", "--method", "heuristic",
            "ngram-greedy", "--dataset", "masakhaner2", "--baseline", "--shard-size", "1", "--quiet"]


def outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".conll", ".csv")}


def test_killed_run_resumes_from_the_cache_with_identical_output(tmp_path, tiny_models):
    data = head_conll(masakhaner_path("hau"), N, tmp_path / "hau.conll")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    ref = subprocess.run(cli(tiny_models, data, tmp_path / "ref", tmp_path / "ref-cache"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr

    cache = tmp_path / "cache"
    proc = subprocess.Popen(cli(tiny_models, data, tmp_path / "out", cache), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while not list(cache.glob("translate/*/shard-00000.jsonl")):
            assert proc.poll() is None, "the run ended before writing a shard"
            assert time.monotonic() < deadline, "no shard written within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    written = list(cache.glob("translate/*/shard-*.jsonl"))
    assert 1 <= len(written) < N  # killed part-way through the first stage
    assert not (tmp_path / "out" / "metrics.csv").exists()

    again = subprocess.run(cli(tiny_models, data, tmp_path / "out", cache) + ["--json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    qa = json.loads(again.stdout)["qa"]
    assert qa["cache"]["loaded"]["translate"] >= len(written)
    assert qa["cache"]["computed"]["translate"] <= N - len(written)
    got, want = outputs(tmp_path / "out"), outputs(tmp_path / "ref")
    assert len(want) == 2 * 2 + 1 + 1  # 4 variants, the baseline, metrics.csv
    assert got == want
