"""Determinism is a contract: every pipeline writes the same bytes with 1 or 2 threads and with
batches (shards) of 1, 7 or 512 sentences. And every sentence is accounted for: QA's sentences
in equal sentences out, and the failed ones (written as all-O) are a counted subset."""

import itertools
import json

import pytest

from tests._pipeline_helpers import europarl_path, head_conll, masakhaner_path
from xfast.cli import main

COMBOS = list(itertools.product(["1", "2"], ["1", "7", "512"]))


def _outputs(out):
    skip = {"run.json", "qa.json", "manifest.json"}  # timings, counts of batches, the settings themselves
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name not in skip}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    return {"en": head_conll(europarl_path("en"), 20, d / "en.conll"),
            "de": head_conll(europarl_path("de"), 20, d / "de.conll"),
            "hau": head_conll(masakhaner_path("hau"), 12, d / "hau.conll")}


def _runs(tmp_path, build):
    seen = {}
    for threads, size in COMBOS:
        out = tmp_path / f"out-{threads}-{size}"
        code = main(build(out, threads, size) + ["--quiet"])
        qa = json.loads((out / "qa.json").read_text())["sentences"]
        assert qa["in"] == qa["out"] > 0 and 0 <= qa["failed"] <= qa["out"]
        assert code == (1 if qa["failed"] else 0)
        seen[(threads, size)] = _outputs(out)
    first = seen[COMBOS[0]]
    assert first
    for combo, got in seen.items():
        assert got == first, combo


def test_project(tmp_path, inputs, tiny_models):
    def build(out, threads, size):
        return ["project", "--labeled", str(inputs["en"]), "--receiving", f"de={inputs['de']}", "--out", str(out),
                "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--threads", threads, "--batch-size", size,
                "--method", "heuristic", "ngram-greedy", "ngram-bipartite", "--write-alignments"]
    _runs(tmp_path, build)


def test_translate_test(tmp_path, inputs, tiny_models):
    def build(out, threads, size):
        return ["translate-test", "--input", str(inputs["hau"]), "--lang", "hau", "--out", str(out),
                "--translator", str(tiny_models["nllb_ct2"]), "--easyproject-translator", str(tiny_models["nllb_ct2"]),
                "--ner-model", str(tiny_models["ner_onnx"]), "--aligner", str(tiny_models["xlmr"]),
                "--mode", "src2tgt", "tgt2tgt", "--align-method", "itermax", "softmax", "--baseline",
                "--threads", threads, "--shard-size", size, "--dataset", "masakhaner2"]
    _runs(tmp_path, build)


def test_translate_train(tmp_path, inputs, tiny_models):
    def build(out, threads, size):
        return ["translate-train", "--input", str(inputs["en"]), "--lang", "hau", "--out", str(out),
                "--translator", str(tiny_models["nllb_ct2"]), "--easyproject-translator", str(tiny_models["nllb_ct2"]),
                "--aligner", str(tiny_models["xlmr"]), "--mode", "plain", "marker", "--threads", threads,
                "--shard-size", size]
    _runs(tmp_path, build)


def test_model_transfer(tmp_path, inputs, tiny_models):
    def build(out, threads, size):
        return ["model-transfer", "--input", str(inputs["hau"]), "--lang", "hau", "--out", str(out),
                "--ner-model", str(tiny_models["ner_onnx"]), "--threads", threads, "--shard-size", size,
                "--dataset", "masakhaner2"]
    _runs(tmp_path, build)
