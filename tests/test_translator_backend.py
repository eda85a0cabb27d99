"""NLLB on torch where CTranslate2 cannot run, and the NLLB pipelines on the torch backends.

``Translator(backend="auto")`` takes CTranslate2 where it runs and torch otherwise, saying why
in one line; on the tiny NLLB both backends translate identically with greedy decoding (length-
sorted batches of any size). CTranslate2's failure to load CUDA 12's libraries cannot happen on
a CPU, so it is simulated where CTranslate2 starts. The pipelines take ``--backend`` (aligner
encoder and tagger) and ``--translator-backend`` and give the same results on either runtime.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests._pipeline_helpers import head_conll, masakhaner_path
from xfast.errors import ModelError, ParameterError
from xfast.models import translator as translator_module
from xfast.models.translator import Translator
from xfast.testing.tiny import tiny_corpus

pytest.importorskip("torch")

TEXTS = tiny_corpus()[:16] + ["Maria went home", "x", "  padded text  "]
CUBLAS = "Library libcublas.so.12 is not found or cannot be loaded"


def _notices(capsys) -> list[str]:
    """xfast's lines on stderr (transformers may draw a progress bar there too)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("xfast:")]


@pytest.mark.parametrize("max_batch_tokens", [8, 4096])
def test_torch_and_ct2_translate_identically_with_greedy_decoding(tiny_models, max_batch_tokens):
    ct2 = Translator(tiny_models["nllb_ct2"], compute_type="float32", max_batch_tokens=max_batch_tokens)
    pt = Translator(tiny_models["nllb_ct2"], backend="torch", max_batch_tokens=max_batch_tokens)
    assert pt.backend == "torch" and pt.compute_type == "float32" and pt.model_dir == tiny_models["nllb"]
    assert pt.translate_ids(TEXTS, "en", "de") == ct2.translate_ids(TEXTS, "en", "de")
    assert pt.translate(TEXTS, "de", "en") == ct2.translate(TEXTS, "de", "en")
    assert pt.stats.batches == ct2.stats.batches  # the same length-sorted batches


def test_auto_takes_ct2_where_it_runs(tiny_models, capsys):
    tr = Translator(tiny_models["nllb_ct2"], backend="auto", compute_type="float32")
    assert tr.backend == "ct2" and tr.notice is None
    assert "xfast:" not in capsys.readouterr().err


def test_auto_takes_torch_without_ctranslate2(tiny_models, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ctranslate2" else real(name, *a))
    tr = Translator(tiny_models["nllb"], backend="auto")
    assert tr.backend == "torch" and "CTranslate2 is not installed" in tr.notice
    assert _notices(capsys) == [f"xfast: {tr.notice}"]
    with pytest.raises(ParameterError, match=r"\[E232\] --translator-backend ct2 needs CTranslate2"):
        Translator(tiny_models["nllb"], backend="ct2")


def test_auto_falls_back_when_ct2_cannot_load_cuda(tiny_models, monkeypatch, capsys):
    """CTranslate2's wheels load CUDA 12's libcublas at first use; on a CUDA 13 machine that fails."""
    started = []

    def ct2_runner(self, threads):
        def run(batch, tgt, max_length):
            raise RuntimeError(CUBLAS)
        return run

    def torch_runner(self, threads):
        started.append((self.device, self.compute_type))
        return lambda batch, tgt, max_length: [[] for _ in batch]

    monkeypatch.setattr(Translator, "_ct2_runner", ct2_runner)
    monkeypatch.setattr(Translator, "_torch_runner", torch_runner)
    monkeypatch.setattr(translator_module, "_auto_backend", lambda device: ("ct2", None))
    tr = Translator(tiny_models["nllb_ct2"], backend="auto", device="cuda", compute_type="int8_float16")
    assert tr.backend == "torch" and tr.model_dir == tiny_models["nllb"]
    assert started == [("cuda", "float16")]  # int8_float16 has no torch form: float16
    assert CUBLAS in tr.notice and "transformers on torch, float16" in tr.notice
    assert _notices(capsys) == [f"xfast: {tr.notice}"]
    with pytest.raises(ModelError, match=r"\[E440\] CTranslate2 cannot run on CUDA here \(Library libcublas"):
        Translator(tiny_models["nllb_ct2"], backend="ct2", device="cuda")


def test_cache_keys_name_the_runtimes():
    from xfast.pipelines.loaders import ModelOptions, Models

    assert Models(ModelOptions()).translator_fields("nllb-600m")["backend"] == "ct2"  # as before
    assert Models(ModelOptions(translator_backend="torch")).translator_fields("nllb-600m")["backend"] == "torch"
    assert Models(ModelOptions()).aligner_fields("e5-small")["backend"] == "onnx"
    assert Models(ModelOptions(backend="torch")).tagger_fields("x")["backend"] == "torch"
    assert repr(ModelOptions()) == ("ModelOptions(device='cpu', compute_type=None, threads=None, layer=None, "
                                    "token_type='bpe', quantize=None)")  # run keys of earlier runs stay


def test_translate_test_on_the_torch_runtimes_gives_the_same_results(tiny_models, tmp_path, capsys):
    from xfast.cli import main

    hau = head_conll(masakhaner_path("hau"), 8, tmp_path / "hau.conll")
    t = tiny_models
    results = {}
    for name, extra in (("default", []), ("torch", ["--backend", "torch", "--translator-backend", "torch"])):
        rc = main(["translate-test", "--input", str(hau), "--lang", "hau", "--out", str(tmp_path / name),
                   "--translator", str(t["nllb_ct2"]), "--easyproject-translator", str(t["nllb_ct2"]),
                   "--ner-model", str(t["ner_onnx"]), "--aligner", str(t["xlmr"]), "--layer", "2",
                   "--compute-type", "float32", "--method", "heuristic", "--dataset", "masakhaner2", "--json",
                   "--quiet", *extra])
        assert rc == 0
        results[name] = json.loads(capsys.readouterr().out)["results"]
    assert [r["overall_f1"] for r in results["torch"]] == [r["overall_f1"] for r in results["default"]]
    with pytest.raises(SystemExit) as stop:  # model-transfer translates nothing
        main(["model-transfer", "--input", str(hau), "--lang", "hau", "--out", str(tmp_path / "mt"),
              "--translator-backend", "torch"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --translator-backend" in capsys.readouterr().err
