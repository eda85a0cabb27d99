"""Tiny offline models (SPEC §10): tokenizer layouts, vocab sizes, exports, the cache."""

import json

import pytest

from xfast.models.flores import FLORES200
from xfast.testing.tiny import NER_LABELS, build_tiny, tiny_key


def test_keys_and_manifest(tiny_models):
    assert {"xlmr", "mbert", "ner", "nllb", "ner_onnx", "nllb_ct2"} <= set(tiny_models)
    for path in tiny_models.values():
        assert path.is_dir()
    root = tiny_models["nllb"].parent
    assert root.name == f"tiny-{tiny_key()}" or (root / "tiny.json").is_file()
    assert build_tiny(root, progress=False) == tiny_models  # a finished build is reused


@pytest.mark.parametrize("key", ["xlmr", "ner", "nllb", "mbert"])
def test_vocab_size_equals_tokenizer(tiny_models, key):
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models[key]))
    assert AutoConfig.from_pretrained(str(tiny_models[key])).vocab_size == len(tok)


@pytest.mark.parametrize("key,cls", [("xlmr", "XLMRobertaTokenizer"), ("nllb", "NllbTokenizer")])
def test_sentencepiece_tokenizers(tiny_models, key, cls):
    from transformers import AutoTokenizer

    d = tiny_models[key]
    assert (d / "sentencepiece.bpe.model").is_file()  # kept although transformers 5 drops it
    assert json.loads((d / "tokenizer_config.json").read_text())["tokenizer_class"] == cls
    tok = AutoTokenizer.from_pretrained(str(d))
    assert type(tok).__name__ == cls
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert "[" in tok.tokenize("[Maria]") and "]" in tok.tokenize("[Maria]")


def test_nllb_language_codes(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models["nllb"]), src_lang="hau_Latn")
    ids = tok.convert_tokens_to_ids(list(FLORES200))
    assert len(set(ids)) == 202 and tok.unk_token_id not in ids
    enc = tok("Maria went home")["input_ids"]
    assert enc[0] == tok.convert_tokens_to_ids("hau_Latn") and enc[-1] == tok.eos_token_id
    for code in ("eng_Latn", "deu_Latn", "swh_Latn", "yor_Latn"):
        assert tok.tokenize(f"a {code} b").count(code) == 1  # a special token, never split


def test_mbert_layout(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models["mbert"]))
    assert tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 100, 101, 102, 103]
    enc = tok(["Maria", "went", "Øresund"], is_split_into_words=True)
    assert enc["input_ids"][0] == 101 and enc["input_ids"][-1] == 102
    assert enc.word_ids()[1:-1] == sorted(enc.word_ids()[1:-1])
    assert "Maria" == tok.decode(tok("Maria", add_special_tokens=False)["input_ids"])


def test_ner_labels(tiny_models):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(tiny_models["ner"]))
    assert [cfg.id2label[i] for i in range(len(NER_LABELS))] == list(NER_LABELS)
    onnx_cfg = json.loads((tiny_models["ner_onnx"] / "config.json").read_text())
    assert onnx_cfg["id2label"]["1"] == "B-PER"


@pytest.mark.parametrize("key", ["xlmr", "mbert"])
def test_layer_cut_equals_hidden_states(tiny_models, key):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(tiny_models[key])).eval()
    ids = torch.tensor([[model.config.bos_token_id or 101, 10, 20, 30, model.config.eos_token_id or 102]])
    with torch.inference_mode():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
        model.encoder.layer = model.encoder.layer[:8]
        cut = model(input_ids=ids).last_hidden_state
    assert len(states) == 11
    torch.testing.assert_close(cut, states[8])


def test_encoder_exports(tiny_models):
    assert (tiny_models["xlmr_onnx"] / "model.onnx").is_file()
    assert (tiny_models["mbert_onnx"] / "model.onnx").is_file()


def test_tiny_key_depends_on_versions(monkeypatch):
    from importlib import metadata

    key = tiny_key()
    assert key == tiny_key()
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.0" if name == "ctranslate2" else real(name))
    assert tiny_key() != key
