"""``xfast project --engine ray``: the same bytes as the local engine, failures counted, resume
after SIGKILL, a starved pool stopped by the stall timeout.

Every run that starts Ray runs as a subprocess inside a network namespace that holds only
loopback (``unshare -rn``), with Ray's usage statistics off, and must report 127.0.0.1 as its
node address: nothing a test starts can reach beyond this machine. Without ``unshare`` (or
without Ray) these tests skip; the engine-independent parts are tested in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._pipeline_helpers import europarl_path, head_conll, masakhaner_path
from xfast.errors import ParameterError
from xfast.io import read_conll
from xfast.pipelines.engines.ray import RaySettings, pool_size
from xfast.pipelines.qa import RunReport

N = 48


def _netns_ok() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not (_has_ray() and _netns_ok()),
                               reason="needs ray[data] and a loopback-only network namespace (unshare -rn)")


def _netns_cmd(args: list[str]) -> list[str]:
    """``xfast ARGS`` inside a new network namespace whose only interface is loopback."""
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m", "xfast", *args]


def _env() -> dict:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != "run.json"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Labeled English, German CoNLL, Spanish plain text, and NER candidates for both; the
    German candidates' third sentence has two words more than its receiving sentence, so that
    sentence fails to project with ner-greedy (and is counted)."""
    d = tmp_path_factory.mktemp("ray")
    en = head_conll(europarl_path("en"), N, d / "en.conll")
    de = head_conll(europarl_path("de"), N, d / "de.conll")
    es_sents = [s.tokens for _, s in zip(range(N), read_conll(europarl_path("es")))]
    es = d / "es.txt"
    es.write_text("\n".join(" ".join(t) for t in es_sents) + "\n", encoding="utf-8")
    blocks = de.read_text(encoding="utf-8").split("\n\n")
    blocks[2] += "\nextra\tB-PER\nwords\tI-PER"
    cand_de = d / "cand_de.conll"
    cand_de.write_text("\n\n".join(blocks), encoding="utf-8")
    cand_es = d / "cand_es.conll"
    cand_es.write_text("".join("".join(f"{w}\tO\n" for w in t) + "\n" for t in es_sents), encoding="utf-8")
    return {"en": en, "de": de, "es": es, "cand_de": cand_de, "cand_es": cand_es}


def _args(c: dict, out: Path, tiny_models, *extra: str) -> list[str]:
    return ["project", "--labeled", str(c["en"]), "--receiving", f"de={c['de']}", f"es={c['es']}",
            "--candidates", f"de={c['cand_de']}", f"es={c['cand_es']}",
            "--method", "heuristic", "ngram-greedy", "ner-greedy", "--out", str(out),
            "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--batch-size", "8", "--shard-size", "16",
            "--write-alignments", "--quiet", *extra]


@needs_ray
def test_ray_engine_equals_local_byte_for_byte(tmp_path, corpus, tiny_models):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    subprocess.run([sys.executable, "-m", "xfast", *_args(corpus, local, tiny_models)], env=_env(), check=False,
                   capture_output=True)
    got = subprocess.run(_netns_cmd(_args(corpus, on_ray, tiny_models, "--engine", "ray", "--stall-timeout", "300")),
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert got.returncode == 1, got.stderr[-2000:]  # 1: finished, with the one failing sentence
    a, b = _outputs(local), _outputs(on_ray)
    assert sorted(a) == sorted(b) and len(a) >= 10
    assert [k for k in a if a[k] != b[k]] == []
    qa = json.loads((on_ray / "qa.json").read_text())
    assert qa["sentences"]["failed"] == 1
    assert qa["failures"][0]["sentence"] == 2 and qa["failures"][0]["where"] == "de/ner-greedy"
    run = json.loads((on_ray / "run.json").read_text())
    assert run["engine"] == "ray" and run["ray"]["node_address"] == "127.0.0.1" and run["ray"]["started"]
    assert run["shards"] == N // 16 and not (on_ray / ".xfast-run").exists()


@needs_ray
def test_filtered_project_on_ray_equals_local(tmp_path, corpus, tiny_models):
    """--filter runs in the actors' host stage and its counts go through the report merge:
    kept outputs, rejects files and the QA filter counts are the local engine's bytes."""
    extra = ("--filter", "min-score=0.3", "drop-partial")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    subprocess.run([sys.executable, "-m", "xfast", *_args(corpus, local, tiny_models, *extra)], env=_env(),
                   check=False, capture_output=True)
    got = subprocess.run(_netns_cmd(_args(corpus, on_ray, tiny_models, *extra, "--engine", "ray",
                                          "--stall-timeout", "300")), env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert got.returncode == 1, got.stderr[-2000:]
    a, b = _outputs(local), _outputs(on_ray)
    assert any(k.endswith(".rejects.jsonl") for k in a) and a == b
    assert json.loads((on_ray / "qa.json").read_text())["filter"]


@needs_ray
def test_ray_engine_resumes_after_sigkill(tmp_path, corpus, tiny_models):
    """The driver and its cluster killed once a shard is committed; the same command again
    skips that shard and ends with the bytes of an uninterrupted local run."""
    big = {k: tmp_path / Path(v).name for k, v in corpus.items()}
    for k, v in corpus.items():
        big[k].write_bytes(Path(v).read_bytes() * 4)
    ref, out = tmp_path / "ref", tmp_path / "out"
    subprocess.run([sys.executable, "-m", "xfast", *_args(big, ref, tiny_models)], env=_env(), capture_output=True)
    assert json.loads((ref / "qa.json").read_text())["sentences"]["out"] == 4 * N
    cmd = _netns_cmd(_args(big, out, tiny_models, "--engine", "ray"))
    proc = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = out / ".xfast-run"
    t = time.monotonic()
    while not list(state.glob("shard-*.json")) and time.monotonic() - t < 300 and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before a kill could interrupt it"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(state.glob("shard-*.json")))
    assert 1 <= done < 4 * N // 16
    got = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert got.returncode == 1, got.stderr[-2000:]
    a, b = _outputs(ref), _outputs(out)
    assert [k for k in a if a.get(k) != b.get(k)] == [] and a.keys() == b.keys()
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_shards"] >= done and run["ray"]["node_address"] == "127.0.0.1"


@needs_ray
def test_a_pool_that_cannot_be_scheduled_stops_with_a_clear_error(tmp_path, corpus, tiny_models):
    """Actors that each want 3 CPUs on a 2-CPU cluster never start: the stall timeout ends the
    job with exit code 2 and a message saying why, instead of a job at 0% forever."""
    t = time.monotonic()
    got = subprocess.run(_netns_cmd(_args(corpus, tmp_path / "out", tiny_models, "--engine", "ray",
                                          "--ray-cpus-per-actor", "3", "--stall-timeout", "10")),
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert got.returncode == 2, got.stderr[-2000:]
    assert "[E531]" in got.stderr and "Traceback" not in got.stderr
    assert time.monotonic() - t < 200


@needs_ray
def test_ray_run_from_the_parent_of_a_clone(tmp_path, corpus, tiny_models):
    """The ``xfast`` command, run from a folder that holds a clone named ``xfast``: Ray's workers
    start with that folder first on their path, and must still import the package the driver
    runs (not the clone's top folder as an empty namespace package)."""
    (tmp_path / "xfast" / "xfast").mkdir(parents=True)
    (tmp_path / "xfast" / "setup.py").write_text("", encoding="utf-8")
    cmd = _netns_cmd(_args(corpus, Path("out"), tiny_models, "--engine", "ray", "--stall-timeout", "300"))
    i = cmd.index(sys.executable)
    cmd[i:i + 3] = [str(Path(sys.executable).with_name("xfast"))]  # the console script, not python -m
    got = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert got.returncode == 1, got.stderr[-2000:]  # finished, with the corpus' one failing sentence
    assert "E501" not in got.stderr and (tmp_path / "out" / "de.heuristic.conll").is_file()


def test_missing_ray_is_a_usage_error_before_any_output(tmp_path, corpus, monkeypatch):
    from xfast.pipelines.parallel import project_parallel

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ParameterError, match=r"E204.*xfast\[ray\]"):
        project_parallel(corpus["en"], {"de": corpus["de"]}, tmp_path / "out", engine="ray", progress=False)
    assert not (tmp_path / "out").exists()


def test_pool_size_leaves_a_cpu_and_uses_every_gpu():
    assert pool_size(RaySettings(), {"cpus": 2.0, "gpus": 0.0}) == (1, 1.0, 0.0)
    assert pool_size(RaySettings(), {"cpus": 16.0, "gpus": 0.0}) == (15, 1.0, 0.0)
    assert pool_size(RaySettings(cpus_per_actor=4), {"cpus": 16.0, "gpus": 0.0}) == (3, 4, 0.0)
    assert pool_size(RaySettings(), {"cpus": 64.0, "gpus": 8.0}) == (8, 1.0, 1.0)
    assert pool_size(RaySettings(gpus_per_actor=0.5), {"cpus": 64.0, "gpus": 8.0}) == (16, 1.0, 0.5)
    assert pool_size(RaySettings(actors=3), {"cpus": 2.0, "gpus": 0.0}) == (3, 1.0, 0.0)


@pytest.mark.parametrize("bad", [dict(actors=0), dict(cpus_per_actor=0), dict(gpus_per_actor=-1),
                                 dict(stall_timeout_s=0), dict(max_restarts=-1), dict(actors=1.5)])
def test_ray_settings_out_of_range(bad):
    with pytest.raises(ParameterError, match="E202"):
        RaySettings(**bad).check()


def test_report_merge_equals_one_report():
    """Shards counted apart and merged in order give the counts of one report that saw all."""
    whole, parts = RunReport(), [RunReport() for _ in range(3)]
    for k, part in enumerate(parts):
        for rep in (whole, part):
            rep.sentences_in += 10
            rep.sentences_out += 10
            rep.fail("de/heuristic", 10 * k + 1, f"projection: reason {k % 2}")
            rep.entities["de/heuristic"].update({"PER:in": k, "LOC:out": 1})
            rep.projection["de/heuristic"].update({"spans": 2 * k, "merged": 0})
        part.encoder = {"sentences": 10, "subwords": 7 * k}
    whole.encoder = {"sentences": 30, "subwords": 21}
    merged = RunReport()
    for part in parts:
        merged.merge(part.state())
    assert merged.state() == whole.state()
    assert json.dumps(merged.state()) == json.dumps(whole.state())  # key order too


@needs_ray
def test_project_with_an_nllb_encoder_on_ray_equals_local(tmp_path, corpus, tiny_models):
    """Each actor reads the sides' languages from the plan: the same bytes as locally."""
    args = ["project", "--labeled", str(corpus["en"]), "--receiving", f"de={corpus['de']}", f"es={corpus['es']}",
            "--method", "heuristic", "ngram-greedy", "--aligner", str(tiny_models["nllb"]), "--batch-size", "8",
            "--shard-size", "16", "--write-alignments", "--quiet"]
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    ref = subprocess.run([sys.executable, "-m", "xfast", *args, "--out", str(local)], env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    got = subprocess.run(_netns_cmd([*args, "--out", str(on_ray), "--engine", "ray", "--stall-timeout", "300"]),
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-2000:]
    a, b = _outputs(local), _outputs(on_ray)
    assert len(a) >= 6 and a == b
    assert json.loads((on_ray / "manifest.json").read_text())["langs"] == ["eng_Latn", "deu_Latn", "spa_Latn"]


def _nllb_args(kind: str, t: dict, hau: Path, en: Path, out: Path) -> list[str]:
    models = ["--translator", str(t["nllb_ct2"]), "--easyproject-translator", str(t["nllb_ct2"]),
              "--ner-model", str(t["ner_onnx"]), "--aligner", str(t["xlmr"])]
    if kind == "translate-train/translator":  # the translator's encoder aligns, in its actors too
        return ["translate-train", "--input", str(en), "--lang", "hau", "de", "--out", str(out), *models[:-1],
                "translator", "--method", "heuristic", "ngram-greedy", "--shard-size", "8", "--quiet"]
    if kind == "translate-test":
        return ["translate-test", "--input", str(hau), "--lang", "hau", "--out", str(out), *models,
                "--mode", "src2tgt", "tgt2tgt", "--align-method", "itermax", "softmax", "--method", "heuristic",
                "ngram-greedy", "ner-greedy", "--baseline", "--dataset", "masakhaner2", "--shard-size", "8", "--quiet"]
    if kind == "translate-train":
        return ["translate-train", "--input", str(en), "--lang", "hau", "--out", str(out), *models,
                "--mode", "plain", "marker", "--method", "heuristic", "ner-greedy", "--shard-size", "8", "--quiet"]
    return ["model-transfer", "--input", str(hau), "--lang", "hau", "--out", str(out), "--ner-model",
            str(t["ner_onnx"]), "--dataset", "masakhaner2", "--shard-size", "8", "--quiet"]


@needs_ray
@pytest.mark.parametrize("kind", ["translate-test", "translate-train", "model-transfer", "translate-train/translator"])
def test_nllb_pipelines_on_ray_equal_local(tmp_path, tiny_models, kind):
    """Every cached stage's missing shards worked by Ray actors: the labeled outputs and the
    metrics are the bytes the local engine writes, and a rerun loads every shard from the cache
    without starting Ray."""
    hau = head_conll(masakhaner_path("hau"), 20, tmp_path / "hau.conll")
    en = head_conll(europarl_path("en"), 20, tmp_path / "en.conll")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    ref = subprocess.run([sys.executable, "-m", "xfast", *_nllb_args(kind, tiny_models, hau, en, local)],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    got = subprocess.run(_netns_cmd([*_nllb_args(kind, tiny_models, hau, en, on_ray), "--engine", "ray"]),
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-2000:]

    def labeled(out: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".conll", ".csv")}

    a, b = labeled(local), labeled(on_ray)
    assert a and a == b
    qa = json.loads((on_ray / "qa.json").read_text())
    assert qa["engine"]["engine"] == "ray" and qa["engine"]["node_address"] == "127.0.0.1"
    assert qa["cache"]["computed"] == json.loads((local / "qa.json").read_text())["cache"]["computed"]
    assert json.loads((local / "qa.json").read_text())["engine"] == {"engine": "local"}
    again = subprocess.run(_netns_cmd([*_nllb_args(kind, tiny_models, hau, en, on_ray), "--engine", "ray"]),
                           env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    qa = json.loads((on_ray / "qa.json").read_text())
    assert qa["cache"]["computed"] == {} and qa["engine"] == {"engine": "ray"}  # all cached: no cluster
    assert labeled(on_ray) == a
