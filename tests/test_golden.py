"""Golden outputs: what every pipeline writes, the run keys, ``demo --json``'s scores and the
server's answers, pinned as digests in ``tests/data/golden.json``.

A change that only moves code must leave all of them byte-identical. Encoders compute in floating
point, and their kernels differ between CPU instruction sets and library versions; so the pins
hold for the machine kind and package versions they were written on (the file's
``fingerprint``), and elsewhere the test skips and says what differs. Run keys and stage-cache
keys name models by folder, file sizes and times: the pipelines here read the tiny models,
their exports and the inputs from one fixed folder (``$TMPDIR/xfast-golden``) with fixed file
times, so the keys are the same on every machine. To pin again after a change that is meant to
change outputs: ``XFAST_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from tests._pipeline_helpers import HERE, europarl_path, head_conll, masakhaner_path
from xfast.cli import main

GOLDEN = HERE / "data" / "golden.json"
WRITE = os.environ.get("XFAST_WRITE_GOLDEN") == "1"
SKIP = {"run.json", "qa.json", "manifest.json"}  # timings and paths; the run key and QA counts are pinned apart
PACKAGES = ("xfast", "numpy", "onnxruntime", "onnx", "ctranslate2", "tokenizers", "transformers", "torch",
            "sentencepiece")


def _cpu_level() -> str:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    words = set(flags.split())
    return "avx512" if "avx512f" in words else "avx2" if "avx2" in words else "baseline"


def _fingerprint() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "none"
    return {"cpu": _cpu_level(), **versions}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


def _folder(out: Path) -> dict:
    files = {p.relative_to(out).as_posix(): _digest(p.read_bytes()) for p in sorted(out.rglob("*"))
             if p.is_file() and p.name not in SKIP}
    qa = json.loads((out / "qa.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return {"files": files, "run_key": manifest.get("run_key"), "sentences": qa.get("sentences")}


@pytest.fixture(scope="module")
def pinned():
    if WRITE:
        got: dict = {"fingerprint": _fingerprint(), "cases": {}}
        yield got
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} not written yet (XFAST_WRITE_GOLDEN=1)")
    data = json.loads(GOLDEN.read_text(encoding="utf-8"))
    differs = {k: (v, data["fingerprint"].get(k)) for k, v in _fingerprint().items() if data["fingerprint"].get(k) != v}
    if differs:
        pytest.skip(f"goldens pinned on another machine kind or package versions: {differs}")
    yield data


def _check(pinned: dict, case: str, got: dict) -> None:
    if WRITE:
        pinned["cases"][case] = got
        return
    assert got == pinned["cases"][case]


ROOT = Path(tempfile.gettempdir()) / "xfast-golden"
STAMP = 1_600_000_000  # every file's time under ROOT (model fingerprints read sizes and times)


def _stamp(folder: Path) -> None:
    for p in folder.rglob("*"):
        os.utime(p, (STAMP, STAMP), follow_symlinks=False)


@pytest.fixture(scope="module")
def fixed(tiny_models):
    """``(inputs, models)`` at fixed paths under :data:`ROOT`, with the aligner's export built in a
    fixed cache there and every file time set to :data:`STAMP`; the model cache points there
    while the module runs."""
    from xfast.aligner import Aligner

    ROOT.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".lock", "a") as lock, pytest.MonkeyPatch.context() as mp:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions share the folder
        for sub in ("inputs", "models", "cache"):
            shutil.rmtree(ROOT / sub, ignore_errors=True)
        inputs = {"en": head_conll(europarl_path("en"), 16, ROOT / "inputs" / "en.conll"),
                  "de": head_conll(europarl_path("de"), 16, ROOT / "inputs" / "de.conll"),
                  "es": head_conll(europarl_path("es"), 16, ROOT / "inputs" / "es.conll"),
                  "hau": head_conll(masakhaner_path("hau"), 10, ROOT / "inputs" / "hau.conll")}
        models = {name: Path(shutil.copytree(tiny_models[name], ROOT / "models" / name))
                  for name in ("xlmr", "nllb_ct2", "ner_onnx", "nllb", "ner")}
        for export, source in (("nllb_ct2", "nllb"), ("ner_onnx", "ner")):  # exports name their checkpoint
            meta = models[export] / "xfast-export.json"
            meta.write_text(json.dumps({**json.loads(meta.read_text()), "source": str(models[source])}, indent=1))
        mp.setenv("XFAST_CACHE", str(ROOT / "cache"))
        Aligner(str(models["xlmr"]), layer=2)  # its ONNX export, before the times are set
        _stamp(ROOT)
        yield inputs, models
        with contextlib.suppress(OSError):
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pipeline_args(name: str, inputs: dict, tiny: dict, out: Path) -> list[str]:
    """The command line of pipeline ``name`` on the fixed inputs and models."""
    models = {"translator": ["--translator", str(tiny["nllb_ct2"]), "--easyproject-translator", str(tiny["nllb_ct2"])],
              "aligner": ["--aligner", str(tiny["xlmr"]), "--layer", "2"], "ner": ["--ner-model", str(tiny["ner_onnx"])]}
    return {
        "project": ["project", "--labeled", str(inputs["en"]), "--receiving", f"de={inputs['de']}",
                    f"es={inputs['es']}", "--candidates", f"de={inputs['de']}", f"es={inputs['es']}", "--method", "heuristic",
                    "ngram-greedy", "ngram-bipartite", "ner-greedy", "--write-alignments", *models["aligner"]],
        "translate-test": ["translate-test", "--input", str(inputs["hau"]), "--lang", "hau", "--mode", "src2tgt",
                           "tgt2tgt", "--align-method", "itermax", "softmax", "--baseline", "--dataset",
                           "masakhaner2", *models["translator"], *models["ner"], *models["aligner"]],
        "translate-train": ["translate-train", "--input", str(inputs["en"]), "--lang", "hau", "de", "--mode",
                            "plain", "marker", *models["translator"], *models["aligner"]],
        "model-transfer": ["model-transfer", "--input", str(inputs["hau"]), "--lang", "hau", "--dataset",
                           "masakhaner2", *models["ner"]],
    }[name] + ["--out", str(out), "--quiet"]


@pytest.mark.parametrize("name", ["project", "translate-test", "translate-train", "model-transfer"])
def test_pipeline_outputs(name, pinned, fixed, tmp_path):
    inputs, models = fixed
    out = tmp_path / "out"
    assert main(_pipeline_args(name, inputs, models, out)) in (0, 1)
    _check(pinned, name, _folder(out))


def test_demo_json(pinned, capsys):
    assert main(["demo", "--limit", "20", "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    _check(pinned, "demo", [{k: v for k, v in r.items() if not k.endswith("_s")} for r in res])


def test_serve_answers(pinned, tiny_models):
    from tests._serve_helpers import Server
    from xfast.serve.projector import Projector

    pairs = [{"labeled": ["Angela", "Merkel", "spoke", "in", "Berlin", "."],
              "entities": [[0, 2, "PER"], [4, 5, "LOC"]],
              "receiving": ["Angela", "Merkel", "sprach", "in", "Berlin", "."]},
             {"labeled": ["The", "European", "Parliament", "met", "in", "Strasbourg"],
              "entities": [[1, 3, "ORG"], [5, 6, "LOC"]],
              "receiving": ["Das", "Europäische", "Parlament", "tagte", "in", "Straßburg"]}]
    server = Server(Projector({"model": str(tiny_models["xlmr"]), "layer": 2}))
    try:
        answers = {}
        for method in ("heuristic", "ngram-greedy", "ngram-bipartite"):
            status, body, _ = server.call("/v1/project", {"pairs": pairs, "method": method})
            answers[method] = [status, body]
        status, body, _ = server.call("/v1/align", {"pairs": [{"labeled": p["labeled"], "receiving": p["receiving"]}
                                                              for p in pairs]})
        answers["align"] = [status, body]
    finally:
        server.stop()
    _check(pinned, "serve", answers)
