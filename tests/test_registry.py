"""Model registry, cache helpers and the ``xfast models list/export`` commands."""

from __future__ import annotations

import json
import os

import pytest

from xfast.errors import ModelError, ParameterError
from xfast.models import cache, commands, registry

PAPER_MODELS = {
    "bert-base-multilingual-cased": "encoder",
    "FacebookAI/xlm-roberta-base": "encoder",
    "FacebookAI/xlm-roberta-large": "encoder",
    "FacebookAI/xlm-roberta-large-finetuned-conll03-english": "tagger",
    "facebook/nllb-200-distilled-600M": "translator",
    "facebook/nllb-200-3.3B": "translator",
    "ychenNLP/nllb-200-3.3B-easyproject": "translator",
    "intfloat/multilingual-e5-small": "encoder",
}


def test_registry_holds_every_model_of_the_issue():
    infos = registry.list_models()
    by_id = {m.hf_id: m for m in infos}
    assert {k: by_id[k].kind for k in PAPER_MODELS} == PAPER_MODELS
    for m in infos:
        assert m.kind in registry.KINDS and m.license
        assert (m.default_layer is not None) == (m.kind == "encoder")
        assert bool(m.flores) == (m.kind == "translator")
        assert registry.get(m.name) is m and registry.get(m.hf_id) is m
    assert registry.get("mbert").default_layer == 8
    assert registry.get("e5-small").default_layer == 8


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ParameterError, match=r"\[E203\] unknown model 'bertt'.*'e5-small'.*'mbert'"):
        registry.get("bertt")
    with pytest.raises(ParameterError, match=r"\[E203\]"):
        registry.resolve("bertt")
    with pytest.raises(ModelError, match=r"\[E401\].*no such directory"):
        registry.resolve("./no/such/dir")


def test_offline_hub_model(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match=r"\[E401\].*nllb-200-distilled-600M.*offline"):
        registry.resolve("nllb-600m")
    with pytest.raises(ModelError, match=r"\[E401\].*someone/model"):
        registry.resolve("someone/model")
    with pytest.raises(ParameterError, match=r"\[E202\]"):
        registry.resolve("nllb-600m", kind="encoder")


def test_cache_dir_and_content_hash(monkeypatch, tmp_path):
    monkeypatch.setenv("XFAST_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("two")
    h = cache.content_hash([a, b])
    assert h == cache.content_hash([a, b]) and h != cache.content_hash([b, a])
    assert h != cache.content_hash([a, b], extra={"layer": 8})
    a.write_text("ONE")
    assert h != cache.content_hash([a, b])
    monkeypatch.setattr(cache, "package_versions", lambda: {"torch": "0"})
    assert cache.content_hash([a, b]) != h


def test_atomic_dir(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with cache.atomic_dir(final) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed")
    assert not final.exists() and os.listdir(tmp_path) == []
    with cache.atomic_dir(final) as tmp:
        (tmp / "done").write_text("x")
    assert (final / "done").is_file() and os.listdir(tmp_path) == ["out"]
    with cache.atomic_dir(final) as tmp:  # someone else finished first: theirs wins
        (tmp / "other").write_text("y")
    assert sorted(os.listdir(final)) == ["done"] and os.listdir(tmp_path) == ["out"]


def test_cmd_list(capsys):
    assert commands.cmd_list(json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert {m["hf_id"] for m in data["models"]} >= set(PAPER_MODELS)
    assert commands.cmd_list(json=False) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["NAME", "KIND", "LAYER"] and "nllb-3.3b-easyproject" in text


def test_cmd_export_encoder(monkeypatch, tmp_path, capsys):
    from tests.test_encoder import _build_mbert

    monkeypatch.setenv("XFAST_CACHE", str(tmp_path / "cache"))
    src = _build_mbert(tmp_path / "mbert")
    assert commands.cmd_export(str(src), "encoder", 2, str(tmp_path / "enc"), None) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "enc") and (tmp_path / "enc" / "model.onnx").is_file()
    assert commands.cmd_export(str(src), "encoder", 2, str(tmp_path / "enc16"), "float16") == 0  # for GPUs
    assert json.loads((tmp_path / "enc16" / "xfast-encoder.json").read_text())["quantize"] == "float16"
    with pytest.raises(ParameterError, match=r"\[E201\].*quantize"):
        commands.cmd_export(str(src), "encoder", 2, None, "int4")
    with pytest.raises(ParameterError, match=r"\[E201\].*kind"):
        commands.cmd_export(str(src), "aligner", 2, None, None)


def test_locate_follows_an_export_back_to_its_source(tmp_path):
    hf, export = tmp_path / "hf", tmp_path / "export"
    hf.mkdir()
    export.mkdir()
    (export / "model.bin").write_bytes(b"")
    (export / "m.json").write_text(json.dumps({"source": str(hf)}))
    made = []

    def fake_export(d):
        made.append(d)
        return export

    kw = dict(kind="translator", marker="model.bin", manifest="m.json", export=fake_export, described="x",
              export_described="y")
    assert registry.locate(export, "ct2", **kw) == export
    assert registry.locate(export, "torch", **kw) == hf
    assert registry.locate(hf, "torch", **kw) == hf and made == []
    assert registry.locate(hf, "ct2", **kw) == export and made == [hf]


@pytest.mark.parametrize("module, cls, marker, words", [
    ("tagger", "Tagger", "model.onnx", "transformers token classifier: an ONNX export"),
    ("translator", "Translator", "model.bin", "transformers translator: a CTranslate2 export"),
])
def test_torch_on_an_export_whose_source_is_gone(tmp_path, module, cls, marker, words):
    import importlib

    (tmp_path / marker).write_bytes(b"")
    (tmp_path / "xfast-export.json").write_text(json.dumps({"source": str(tmp_path / "gone")}))
    model = getattr(importlib.import_module(f"xfast.models.{module}"), cls)
    expected = f"[E433] {tmp_path} is not a usable {words}; pass the Hugging Face directory for backend='torch'"
    with pytest.raises(ModelError) as e:
        model(tmp_path, backend="torch")
    assert str(e.value) == expected
