"""Host workers: the host stages of different batches in several threads give the bytes of one
thread (outputs, QA, metrics, run key) for any count and batch size; results are finished in
order with a bounded number in flight; a failure in a worker stops the run with its error; a
run killed mid-way resumes to the same bytes; the word cache is safe under contention."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests._pipeline_helpers import europarl_path, head_conll
from xfast.errors import PipelineError
from xfast.io import read_conll
from xfast.io.tokens import from_sentences
from xfast.pipelines.engines.local import overlapped
from xfast.pipelines.parallel import project_parallel
from xfast.pipelines.qa import RunReport

N = 61  # an odd count: the last batch is short under every batch size below


@pytest.fixture(scope="module")
def aligner(tiny_models):
    from xfast.aligner import Aligner

    return Aligner(tiny_models["xlmr"], layer=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """English and German CoNLL, Spanish plain text, and German NER candidates whose third
    sentence has two words too many (that sentence fails with ner-greedy and is counted)."""
    d = tmp_path_factory.mktemp("workers")
    en = head_conll(europarl_path("en"), N, d / "en.conll")
    de = head_conll(europarl_path("de"), N, d / "de.conll")
    es = d / "es.txt"
    es.write_text("\n".join(" ".join(s.tokens) for _, s in zip(range(N), read_conll(europarl_path("es")))) + "\n",
                  encoding="utf-8")
    blocks = de.read_text(encoding="utf-8").split("\n\n")
    blocks[2] += "\nextra\tB-PER\nwords\tI-PER"
    cand = d / "cand_de.conll"
    cand.write_text("\n\n".join(blocks), encoding="utf-8")
    cand_es = d / "cand_es.conll"
    cand_es.write_text("".join("".join(f"{w}\tO\n" for w in line.split()) + "\n"
                               for line in es.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    return en, de, es, {"de": cand, "es": cand_es}


def _files(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != "run.json"}


@pytest.mark.parametrize("batch_size", [5, 7, 64])
def test_outputs_are_the_same_bytes_for_any_number_of_workers(tmp_path, corpus, aligner, batch_size):
    en, de, es, cand = corpus
    kw = dict(aligner=aligner, methods=("heuristic", "ngram-greedy", "ner-greedy"), candidates=cand,
              batch_size=batch_size, shard_size=batch_size * 2, write_alignments=True, progress=False,
              filters=("min-score=0.3", "drop-partial"))
    seen = {}
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}"
        res = project_parallel(en, {"de": de, "es": es}, out, host_workers=workers, **kw)
        assert res["run"]["host_workers"] == workers
        assert res["qa"]["sentences"]["failed"] == 1 and res["qa"]["failures"][0]["sentence"] == 2
        seen[workers] = _files(out)
    assert seen[1] and seen[1].keys() == seen[2].keys() == seen[3].keys()
    for workers in (2, 3):
        assert [k for k in seen[1] if seen[1][k] != seen[workers][k]] == [], workers


def test_finish_sees_items_in_order_with_a_bounded_number_in_flight():
    depth, workers = 1, 3
    live, peak, lock = [0], [0], threading.Lock()
    rng = random.Random(3)
    delays = [rng.uniform(0, 0.004) for _ in range(60)]

    def prepare(i):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(delays[i] / 2)
        return i * 10

    def host(i, p, m):
        time.sleep(delays[(i * 7) % 60])
        return (i, p, m)

    finished = []

    def finish(i, r):
        with lock:
            live[0] -= 1
        finished.append(r)

    overlapped(range(60), prepare, lambda p: p + 1, host, finish, report=RunReport(), depth=depth, workers=workers)
    assert finished == [(i, i * 10, i * 10 + 1) for i in range(60)]
    assert peak[0] <= depth + workers + 1  # the one being read may be prepared before a finish


@pytest.mark.parametrize("where", ["prepare", "model", "host"])
def test_a_failure_in_any_stage_stops_the_run_with_its_error(where):
    def stage(name):
        def run(*args):
            if name == where and args[0] == 7:
                raise PipelineError(f"[E501] {name} failed on item 7")
            return args[0]
        return run

    finished = []
    with pytest.raises(PipelineError, match=f"{where} failed on item 7"):
        overlapped(range(40), stage("prepare"), stage("model"), stage("host"), lambda i, r: finished.append(i),
                   report=RunReport(), workers=2)
    assert finished == list(range(len(finished))) and len(finished) <= 7


def test_a_failing_batch_stops_project_with_its_error(tmp_path, corpus, aligner, monkeypatch):
    from xfast.pipelines.stages import batch

    real = batch.BatchWork.host

    def host(self, row, prep, model_out, *, start, **kw):
        if start >= 20:
            raise PipelineError("[E501] host stage failed: a test's failure")
        return real(self, row, prep, model_out, start=start, **kw)

    monkeypatch.setattr(batch.BatchWork, "host", host)
    en, de, _, _ = corpus
    with pytest.raises(PipelineError, match="a test's failure"):
        project_parallel(en, {"de": de}, tmp_path / "o", aligner=aligner, batch_size=5, progress=False,
                         host_workers=2)


def test_resume_after_sigkill_with_workers_gives_identical_outputs(tmp_path, tiny_models):
    en = head_conll(europarl_path("en"), 400, tmp_path / "en.conll")
    de = head_conll(europarl_path("de"), 400, tmp_path / "de.conll")
    big_en, big_de = tmp_path / "big_en.conll", tmp_path / "big_de.conll"
    big_en.write_bytes(en.read_bytes() * 4)
    big_de.write_bytes(de.read_bytes() * 4)

    def cmd(out, workers):
        return [sys.executable, "-m", "xfast", "project", "--labeled", str(big_en), "--receiving", f"de={big_de}",
                "--out", str(out), "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--batch-size", "32",
                "--shard-size", "64", "--host-workers", str(workers), "--quiet"]

    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    ref = tmp_path / "ref"
    t = time.perf_counter()
    subprocess.run(cmd(ref, 1), check=True, env=env, capture_output=True)
    full = time.perf_counter() - t
    out, state = tmp_path / "out", tmp_path / "out" / ".xfast-run"
    rng = random.Random(11)
    for _ in range(20):
        proc = subprocess.Popen(cmd(out, 3), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, full))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if state.is_dir() and any(state.glob("shard-*.json")):
                break
        for p in out.iterdir() if out.exists() else ():
            if p.is_file():
                p.unlink()
    else:
        pytest.fail("no kill left finished shards to resume from")
    subprocess.run(cmd(out, 2), check=True, env=env, capture_output=True)
    a, b = _files(ref), _files(out)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    assert json.loads((out / "run.json").read_text())["resumed_shards"] > 0


def test_the_word_cache_under_contention(aligner):
    """Eight threads tokenizing overlapping batches at once get the ids one thread gets, and the
    encoder's counts add up."""
    enc = aligner.encoder
    sents = [s.tokens for _, s in zip(range(120), read_conll(europarl_path("de")))]
    batches = [from_sentences(sents[i:i + 30]) for i in range(0, 120, 10)]
    enc.word_cache.clear()
    want = [enc.subwords(b) for b in batches]
    before = dict(enc.stats)
    enc.word_cache.clear()
    got: dict[int, list] = {}
    barrier = threading.Barrier(8)

    def run(k):
        barrier.wait()
        got[k] = [enc.subwords(b) for b in batches[k % 3:] + batches[:k % 3]]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, subs in got.items():
        order = batches[k % 3:] + batches[:k % 3]
        for b, sub in zip(order, subs):
            ref = want[batches.index(b)]
            assert (sub.ids.tolist(), sub.word_ids.tolist(), sub.offsets.tolist()) == \
                (ref.ids.tolist(), ref.word_ids.tolist(), ref.offsets.tolist())
    assert enc.stats["sentences"] - before["sentences"] == 8 * sum(len(b) for b in batches)


@pytest.mark.parametrize("command", ["translate-test", "translate-train"])
def test_nllb_pipelines_project_shards_on_workers_to_the_same_bytes(tmp_path, tiny_models, command):
    from tests._pipeline_helpers import masakhaner_path
    from xfast.cli import main

    data = head_conll(masakhaner_path("hau") if command == "translate-test" else europarl_path("en"), 13,
                      tmp_path / "in.conll")
    models = ["--translator", str(tiny_models["nllb_ct2"]), "--easyproject-translator", str(tiny_models["nllb_ct2"]),
              "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--shard-size", "3", "--quiet",
              "--method", "heuristic", "ngram-greedy", "ner-greedy", "--ner-model", str(tiny_models["ner_onnx"])]
    extra = ["--lang", "hau", "--mode", "src2tgt", "tgt2tgt", "--baseline"] if command == "translate-test" else \
        ["--lang", "de", "yo", "--mode", "plain"]
    seen = {}
    for workers in ("1", "2", "3"):
        out = tmp_path / f"w{workers}"
        assert main([command, "--input", str(data), "--out", str(out), "--host-workers", workers, *models,
                     *extra]) in (0, 1)
        qa = json.loads((out / "qa.json").read_text())
        qa.pop("timings_s")
        for counts in qa["encoder"].values():  # a model's own clock: not a count
            counts.pop("seconds", None)
        seen[workers] = ({p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".conll"}, qa)
    assert seen["1"][0] and seen["1"] == seen["2"] == seen["3"]
