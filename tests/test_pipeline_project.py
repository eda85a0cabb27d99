"""``xfast project`` on the columnar engine: the same labels and scores as the list API,
independent of batch size, shard size and overlap; resumable after SIGKILL; no stale outputs."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._pipeline_helpers import europarl_path, head_conll
from xfast.errors import OutputError, PipelineError
from xfast.evaluate import ScoreCounts, proj_ratio, scores
from xfast.io import read_conll, write_conll
from xfast.io.columns import from_sentences, LabelTypes
from xfast.pipelines.engines.local import overlapped
from xfast.pipelines.parallel import project_parallel
from xfast.pipelines.qa import RunReport

N = 40


@pytest.fixture(scope="module")
def aligner(tiny_models):
    from xfast.aligner import Aligner

    return Aligner(tiny_models["xlmr"], layer=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    en = head_conll(europarl_path("en"), N, d / "en.conll")
    de = head_conll(europarl_path("de"), N, d / "de.conll")
    es = d / "es.txt"
    es.write_text("\n".join(" ".join(s.tokens) for _, s in zip(range(N), read_conll(
        europarl_path("es")))) + "\n", encoding="utf-8")
    return en, de, es


def _outputs(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "run.json" and p.is_file()}


def test_labels_and_scores_equal_the_list_api(tmp_path, corpus, aligner):
    """Every projection equals the list API's on the same alignments, and metrics equal
    seqeval-mode scores of the written files."""
    from xfast.project import heuristic_batch, match_batch, ngram_candidates_batch
    from xfast.pipelines.parallel import labeled_entities

    en, de, es = corpus
    res = project_parallel(en, {"de": de, "es": es}, tmp_path / "out", aligner=aligner,
                           methods=("heuristic", "ngram-greedy", "ngram-bipartite"), progress=False)
    lab = list(read_conll(en))
    ents = [labeled_entities(s.labels) for s in lab]
    for name, path in (("de", de), ("es", es)):
        rec = [s.tokens for s in (read_conll(path) if name == "de" else
                                  (type("S", (), {"tokens": line.split()}) for line in
                                   path.read_text(encoding="utf-8").splitlines()))]
        alns = aligner.align_batch([s.tokens for s in lab], rec)
        n = [len(w) for w in rec]
        want = {"heuristic": heuristic_batch(ents, alns, n),
                "ngram-greedy": match_batch(ents, ngram_candidates_batch(rec), alns, n),
                "ngram-bipartite": match_batch(ents, ngram_candidates_batch(rec), alns, n, method="bipartite")}
        for m, labels in want.items():
            ref = tmp_path / f"ref.{name}.{m}.conll"
            write_conll(ref, list(zip(rec, labels)))
            assert (tmp_path / "out" / f"{name}.{m}.conll").read_bytes() == ref.read_bytes(), (name, m)
    gold = [s.labels for s in read_conll(de)]
    for row in res["results"]:
        pred = [s.labels for s in read_conll(tmp_path / "out" / f"de.{row['method']}.conll")]
        want = scores(gold, pred)
        want["proj_ratio"] = proj_ratio(gold, pred)
        assert {k: row[k] for k in want} == want
    assert {r["lang"] for r in res["results"]} == {"de"}     # es has no gold labels
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert qa["sentences"] == {"in": N, "out": N, "failed": 0, "failed_by_reason": {}}
    assert not (tmp_path / "out" / ".xfast-run").exists()


@pytest.mark.parametrize("batch_size,shard_size,overlap", [(1, 3, True), (7, 14, False), (7, 7, True),
                                                           (512, None, False)])
def test_outputs_do_not_depend_on_batching_or_overlap(tmp_path, corpus, aligner, batch_size, shard_size, overlap):
    en, de, es = corpus
    ref = tmp_path / "ref"
    project_parallel(en, {"de": de, "es": es}, ref, aligner=aligner, progress=False, write_alignments=True)
    out = tmp_path / "out"
    project_parallel(en, {"de": de, "es": es}, out, aligner=aligner, progress=False, write_alignments=True,
                     batch_size=batch_size, shard_size=shard_size, overlap=overlap)
    a, b = _outputs(ref), _outputs(out)
    assert a.keys() == b.keys()
    for k in a:
        if k != "manifest.json":  # it records the batch and shard sizes
            assert a[k] == b[k], k


def test_another_runs_outputs_are_refused_unless_overwrite(tmp_path, corpus, aligner):
    en, de, es = corpus
    out = tmp_path / "out"
    project_parallel(en, {"de": de}, out, aligner=aligner, methods=("heuristic", "ngram-bipartite"), progress=False)
    assert (out / "metrics.json").is_file() and (out / "de.ngram-bipartite.conll").is_file()
    # the same run again: its own outputs, recomputed
    project_parallel(en, {"de": de}, out, aligner=aligner, methods=("heuristic", "ngram-bipartite"), progress=False)
    with pytest.raises(PipelineError, match=r"E521.*another run.*--overwrite"):
        project_parallel(en, {"de": es}, out, aligner=aligner, methods=("heuristic",), progress=False)
    project_parallel(en, {"de": es}, out, aligner=aligner, methods=("heuristic",), progress=False, overwrite=True)
    # the first run's files are gone, metrics.json with them (es has no gold labels)
    assert sorted(p.name for p in out.iterdir()) == ["de.heuristic.conll", "manifest.json", "qa.json", "run.json"]


def test_a_file_no_run_wrote_is_refused(tmp_path, corpus, aligner):
    en, de, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    (out / "de.heuristic.conll").write_text("mine\n")
    with pytest.raises(PipelineError, match="E521.*de.heuristic.conll, which no xfast run recorded"):
        project_parallel(en, {"de": de}, out, aligner=aligner, methods=("heuristic",), progress=False)
    assert (out / "de.heuristic.conll").read_text() == "mine\n"
    with pytest.raises(OutputError, match="E522"):
        project_parallel(en, {"de": de}, out / "de.heuristic.conll", aligner=aligner, progress=False)


def test_missing_input_creates_nothing(tmp_path, corpus, aligner):
    from xfast.errors import DataError

    en, _, _ = corpus
    with pytest.raises(DataError, match="E110"):
        project_parallel(en, {"de": tmp_path / "nope.conll"}, tmp_path / "out", aligner=aligner, progress=False)
    assert not (tmp_path / "out").exists()


def test_resume_after_sigkill_gives_identical_outputs(tmp_path, tiny_models):
    """Five SIGKILLs at random moments, then the same command to the end: byte-identical to
    a run that was never interrupted."""
    en = head_conll(europarl_path("en"), 400, tmp_path / "en.conll")
    de = head_conll(europarl_path("de"), 400, tmp_path / "de.conll")
    big_en, big_de = tmp_path / "big_en.conll", tmp_path / "big_de.conll"
    big_en.write_bytes(en.read_bytes() * 6)
    big_de.write_bytes(de.read_bytes() * 6)

    def cmd(out):
        return [sys.executable, "-m", "xfast", "project", "--labeled", str(big_en), "--receiving", f"de={big_de}",
                "--out", str(out), "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--batch-size", "32",
                "--shard-size", "64", "--write-alignments", "--quiet"]

    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    ref = tmp_path / "ref"
    t = time.perf_counter()
    subprocess.run(cmd(ref), check=True, env=env, capture_output=True)
    full = time.perf_counter() - t
    out = tmp_path / "out"
    rng = random.Random(7)
    kills, mid_run = 0, 0
    state = out / ".xfast-run"
    while kills < 5:
        proc = subprocess.Popen(cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, full))
        if proc.poll() is not None:  # finished before the kill: start over from nothing
            for p in out.iterdir():
                p.unlink()
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        mid_run += state.is_dir() and any(state.glob("shard-*.json"))
    assert mid_run  # at least one kill left finished shards to resume from
    subprocess.run(cmd(out), check=True, env=env, capture_output=True)
    a, b = _outputs(ref), _outputs(out)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert not state.exists()
    assert json.loads((out / "qa.json").read_text())["sentences"]["out"] == 2400


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_score_counts_equal_whole_corpus_scores(data):
    labels = st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-DATE", "I-DATE"])
    sents = data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=30))
    gold = [data.draw(st.lists(labels, min_size=n, max_size=n)) for n in sents]
    pred = [data.draw(st.lists(labels, min_size=n, max_size=n)) for n in sents]
    ignore = data.draw(st.sampled_from([(), ("DATE",)]))
    types = LabelTypes()
    counts = ScoreCounts()
    cut = sorted(set(data.draw(st.lists(st.integers(0, len(sents)), max_size=4))) | {0, len(sents)})
    for a, b in zip(cut, cut[1:]):
        g = from_sentences([["w"] * n for n in sents[a:b]], types, gold[a:b])
        p = from_sentences([["w"] * n for n in sents[a:b]], types, pred[a:b])
        counts.add(g.codes, p.codes, g.sent_off, types.names, ignore=ignore)
        counts = ScoreCounts.from_dict(json.loads(json.dumps(counts.to_dict())))
    want = scores(gold, pred, ignore=ignore)
    from xfast.evaluate import ignore_types
    want["proj_ratio"] = proj_ratio(ignore_types(gold, ignore), ignore_types(pred, ignore))
    assert counts.result() == want


def test_overlapped_keeps_order_bounds_depth_and_raises():
    report = RunReport()
    seen, running = [], []
    lock = threading.Lock()

    def model(p):
        with lock:
            running.append(p)
        time.sleep(0.002)
        return p * 10

    def host(item, p, m):
        with lock:
            ahead = len(running) - len(seen) - 1
        assert ahead <= 1
        seen.append((item, m))

    overlapped(range(20), lambda i: i, model, host, report=report, depth=1)
    assert seen == [(i, i * 10) for i in range(20)]
    assert report.timings["model"] > 0

    def bad(p):
        if p == 5:
            raise RuntimeError("model down")
        return p

    with pytest.raises(RuntimeError, match="model down"):
        overlapped(range(20), lambda i: i, bad, lambda *a: None, report=RunReport())
    serial = []
    overlapped(range(5), lambda i: i, lambda p: p, lambda i, p, m: serial.append(m), report=RunReport(),
               overlap=False)
    assert serial == list(range(5))
