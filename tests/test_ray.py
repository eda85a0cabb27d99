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
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests._pipeline_helpers import europarl_path, head_conll, masakhaner_path
from tests._ray_helpers import needs_ray, netns_cmd
from xfast.errors import ParameterError
from xfast.io import read_conll
from xfast.pipelines.engines.ray import RaySettings, pool_size
from xfast.pipelines.qa import RunReport

N = 48


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
    got = subprocess.run(netns_cmd(_args(corpus, on_ray, tiny_models, "--engine", "ray", "--stall-timeout", "300")),
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
    got = subprocess.run(netns_cmd(_args(corpus, on_ray, tiny_models, *extra, "--engine", "ray",
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
    cmd = netns_cmd(_args(big, out, tiny_models, "--engine", "ray"))
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
    got = subprocess.run(netns_cmd(_args(corpus, tmp_path / "out", tiny_models, "--engine", "ray",
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
    cmd = netns_cmd(_args(corpus, Path("out"), tiny_models, "--engine", "ray", "--stall-timeout", "300"))
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
    got = subprocess.run(netns_cmd([*args, "--out", str(on_ray), "--engine", "ray", "--stall-timeout", "300"]),
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
    got = subprocess.run(netns_cmd([*_nllb_args(kind, tiny_models, hau, en, on_ray), "--engine", "ray"]),
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
    again = subprocess.run(netns_cmd([*_nllb_args(kind, tiny_models, hau, en, on_ray), "--engine", "ray"]),
                           env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    qa = json.loads((on_ray / "qa.json").read_text())
    assert qa["cache"]["computed"] == {} and qa["engine"] == {"engine": "ray"}  # all cached: no cluster
    assert labeled(on_ray) == a


# --------------------------------------------------------------------------- errors that say the cause

#: an error-level line of Ray's C++ log, or of its Python logging
_RAY_ERROR_LINE = re.compile(r"^\[\S+ \S+ E \d+ \d+\]|^\S+ \S+\s+ERROR ", re.M)


@needs_ray
def test_worker_failures_name_the_shard_and_the_cause(tmp_path):
    """Four shards through map_shards on a real cluster, with workers that work, raise, fail to
    start, die once and die every time: results in order, or one error that names the shard and
    the worker's own exception (never Ray's retry-configuration hint); a worker killed once is
    restarted and its shard retried; one that dies every time stops the run after max_restarts
    further tries. The healthy job prints no error-level Ray line, and no deprecated Ray API is
    called from xfast (a DeprecationWarning from xfast's code is an error in that script)."""
    out = tmp_path / "got.json"
    got = subprocess.run(["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable,
                          "-m", "tests._ray_failures", str(out), str(tmp_path)],
                         cwd=Path(__file__).resolve().parents[1], env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert got.returncode == 0, got.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["healthy"] == {"rows": [[0, 0], [1, 2], [2, 4], [3, 6]], "error": None}
    err = res["raises"]["error"]
    assert err.startswith("[E533] shard 2 failed in a Ray worker on 127.0.0.1: FileNotFoundError: [Errno 2]")
    assert "/nonexistent/shard-2.npz" in err and "retry" not in err and "DataContext" not in err
    assert res["raises"]["rows"] == [[0, 0], [1, 2]]  # the shards before it came back, in order
    assert "the worker could not start: ValueError: no model at /models/missing (a test)" in res["init"]["error"]
    assert res["dies-once"] == res["healthy"]
    assert res["dies-always"]["error"].startswith("[E534] shard 1 is not tried again: its Ray worker died 2 times")
    healthy = got.stderr.split("@@ healthy", 1)[1].split("@@ raises", 1)[0]
    assert "core_worker.cc" not in healthy and not _RAY_ERROR_LINE.search(healthy), healthy


@needs_ray
def test_joining_by_address_says_what_token_auth_needs(tmp_path, corpus, tiny_models):
    """A cluster started with ``ray start --head`` where ~/.ray/auth_token exists uses Ray's token
    authentication; joining it with an explicit --address sends no token unless RAY_AUTH_MODE=token.
    Without it: exit 2 with [E532] saying what to set, in a few lines (not Ray's 20 retries); with
    it the run works and prints no error-level Ray line."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32), encoding="utf-8")
    temp = Path(tempfile.mkdtemp(prefix="xr", dir="/tmp"))  # Ray's socket paths must stay short
    out = tmp_path / "out"
    xfast = [sys.executable, "-m", "xfast", *[a for a in _args(corpus, out, tiny_models) if a != "--quiet"],
             "--engine", "ray", "--address", "127.0.0.1:6391", "--stall-timeout", "300"]
    script = "\n".join([
        "ip link set lo up",
        f"{shlex.quote(str(Path(sys.executable).with_name('ray')))} start --head --port=6391 --num-cpus=2 "
        f"--include-dashboard=false --disable-usage-stats --temp-dir={temp} > {tmp_path}/start.log 2>&1 || exit 9",
        f"{shlex.join(xfast)} > {tmp_path}/plain.out 2> {tmp_path}/plain.err; echo $? > {tmp_path}/plain.rc",
        f"RAY_AUTH_MODE=token {shlex.join(xfast)} > {tmp_path}/token.out 2> {tmp_path}/token.err; "
        f"echo $? > {tmp_path}/token.rc",
    ])  # in its own PID namespace: every Ray process ends with the script
    try:
        got = subprocess.run(["unshare", "-rnpf", "--mount-proc", "sh", "-c", script],
                             env={**_env(), "HOME": str(home)}, capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert got.returncode == 0, (tmp_path / "start.log").read_text()[-2000:]
    plain = (tmp_path / "plain.err").read_text()
    assert (tmp_path / "plain.rc").read_text().strip() == "2", plain[-2000:]
    assert "[E532] cannot join the Ray cluster at '127.0.0.1:6391'" in plain
    assert "RAY_AUTH_MODE=token" in plain and str(home / ".ray" / "auth_token") in plain
    assert "InvalidAuthToken" not in plain and "Traceback" not in plain and len(plain.splitlines()) <= 3
    token = (tmp_path / "token.err").read_text()
    assert (tmp_path / "token.rc").read_text().strip() == "1", token[-2000:]  # finished, one failing sentence
    assert not _RAY_ERROR_LINE.search(token) and "core_worker.cc" not in token, token
    assert (out / "de.heuristic.conll").is_file()
    assert json.loads((out / "run.json").read_text())["ray"]["started"] is False


def test_join_errors_say_what_to_do(monkeypatch, tmp_path):
    from xfast.pipelines.engines.raylink import join_error

    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    printed = "[2026-01-01 00:00:00,000 W 1 1] gcs_client.cc:210: Failed to get cluster ID from GCS server: " \
              "Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing or incorrect\n"
    refused = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    text = join_error("10.0.0.1:6379", refused, printed)
    assert text.startswith("[E532]") and "this machine has no token" in text and "RAY_AUTH_MODE=token" in text
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x", encoding="utf-8")
    assert f"a token is in {tmp_path / '.ray' / 'auth_token'}, not sent" in join_error("h:1", refused, printed)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "it refused the token from" in join_error("h:1", refused, printed)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "y")
    assert "it refused the token from RAY_AUTH_TOKEN" in join_error("h:1", refused, printed)
    other = join_error("h:1", ConnectionError("Failed to connect to Ray cluster at h:1"), "")
    assert other == "[E206] cannot join the Ray cluster at 'h:1': ConnectionError: Failed to connect to Ray cluster at h:1"


def test_reason_of_a_ray_error_is_its_cause_not_the_retry_hint():
    from xfast.pipelines.engines.raylink import reason_of

    class UserCodeException(Exception):
        pass

    hint = ("UDF failed to process a data block.\nFailed to apply UDF transform after 1/1 attempts (total backoff "
            "0.0s).\nTo change retry attempts, backoff, or which errors are retried, configure "
            "`ray.data.DataContext.get_current()` if you believe this to be transient.")
    traced = UserCodeException("\x1b[36mray::MapWorker(MapBatches(X)).submit()\x1b[39m (pid=1, ip=127.0.0.1)\n"
                               "  File \"x.py\", line 3, in __call__\n    open(p)\n"
                               "FileNotFoundError: [Errno 2] No such file or directory: '/s/shard-2.npz'\n\n"
                               "The above exception was the direct cause of the following exception:\n\n" + hint)
    assert reason_of(traced) == "FileNotFoundError: [Errno 2] No such file or directory: '/s/shard-2.npz'"
    assert reason_of(UserCodeException(hint)) == "UserCodeException"
    wrapped = RuntimeError("outer")
    wrapped.cause = MemoryError("Task was killed due to the node running low on memory.")
    assert reason_of(wrapped) == "MemoryError: Task was killed due to the node running low on memory."


def test_the_stderr_filter_drops_only_the_benign_ray_line():
    """Whole lines matching the pattern go; everything else passes byte for byte, a progress
    bar's partial line at once (not held until a newline)."""
    from xfast.pipelines.engines.raylink import BENIGN, _pass_lines

    benign = (b"[2026-12-08 00:08:50,921 E 23772 24021] core_worker.cc:2465: Actor with class name: "
              b"'MapWorker(MapBatches(ShardProjector))' and ID: '1119bd9d2eb1ac7e3ee7e73001000000' has constructor "
              b"arguments in the object store and max_restarts > 0. If the arguments in the object store go out of "
              b"scope or are lost, the actor restart will fail. See https://github.com/ray-project/ray/issues/53727 "
              b"for more details.\n")
    other = b"[2026-12-08 00:08:51,000 E 23772 24021] core_worker.cc:99: a real error\n"
    r, w = os.pipe()
    r_out, w_out = os.pipe()
    thread = threading.Thread(target=_pass_lines, args=(r, w_out, BENIGN))
    thread.start()
    os.write(w, b"\rproject: 1/4 pairs")
    t = time.monotonic()
    first = os.read(r_out, 100)
    assert first == b"\rproject: 1/4 pairs" and time.monotonic() - t < 1.0  # not held for a newline
    for chunk in (benign[:40], benign[40:] + other, b"\rproject: 2/4 pairs" + benign, b"done\n"):
        os.write(w, chunk)
    os.close(w)
    thread.join(5)
    os.close(w_out)
    rest = b""
    while chunk := os.read(r_out, 1 << 16):
        rest += chunk
    os.close(r_out)
    assert rest == other + b"\rproject: 2/4 pairsdone\n"
