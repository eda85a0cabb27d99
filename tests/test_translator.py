"""Translator (SPEC §8): CTranslate2 greedy output equals transformers ``generate`` token for token.

The oracle is transformers itself, driven the documented way (``AutoTokenizer`` with
``src_lang``, ``generate`` with ``forced_bos_token_id`` and ``max_length``, HF's leading
``</s>`` and the target code dropped); it shares no code with xfast.
"""

import pytest

from xfast.errors import ModelError, ParameterError
from xfast.testing.tiny import tiny_corpus
from xfast.models.translator import Translator, export_translator, is_repetition_loop

TEXTS = tiny_corpus()[:24] + ["Maria went home", "x", "[ John ] is in Berlin.", "  padded text  ", "Øresund 2025 !"]


@pytest.fixture(scope="module")
def hf(tiny_models):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models["nllb"]))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(tiny_models["nllb"])).eval()
    return tok, model


def hf_generate(hf, texts, src, tgt, max_length):
    import torch

    tok, model = hf
    tok.src_lang = src
    out = []
    for text in texts:
        enc = tok(text.strip(), return_tensors="pt")
        with torch.inference_mode():
            g = model.generate(
                **enc,
                forced_bos_token_id=tok.convert_tokens_to_ids(tgt),
                max_length=max_length,
                num_beams=1,
                do_sample=False,
            )
        row = g[0].tolist()
        assert row[:2] == [tok.eos_token_id, tok.convert_tokens_to_ids(tgt)]
        out.append(row[2:])
    return out


@pytest.mark.parametrize("max_length", [7, 200])
@pytest.mark.parametrize("langs", [("eng_Latn", "deu_Latn"), ("hau", "en"), ("swa", "yor")])
def test_ct2_greedy_equals_generate(tiny_models, hf, langs, max_length):
    from xfast.models.flores import flores_code

    src, tgt = langs
    ref = hf_generate(hf, TEXTS, flores_code(src), flores_code(tgt), max_length)
    tr = Translator(tiny_models["nllb_ct2"], compute_type="float32", max_decoding_length=max_length)
    assert tr.translate_ids(TEXTS, src, tgt) == ref
    texts = tr.translate(TEXTS, src, tgt)
    assert texts == [t.strip() for t in hf[0].batch_decode(ref, skip_special_tokens=True)]
    short = Translator(tiny_models["nllb_ct2"], compute_type="float32")
    assert short.translate(TEXTS, src, tgt, max_decoding_length=max_length) == texts
    if max_length == 200:  # the copy-task fine-tune makes the decoder stop
        eos = hf[0].eos_token_id
        assert sum(r[-1] == eos for r in ref) >= len(ref) - 2


def test_torch_backend_equals_ct2(tiny_models):
    ct2 = Translator(tiny_models["nllb_ct2"], compute_type="float32")
    pt = Translator(tiny_models["nllb"], backend="torch")
    assert pt.translate(TEXTS, "de", "en") == ct2.translate(TEXTS, "de", "en")
    # an export directory leads the torch backend back to its source
    assert Translator(tiny_models["nllb_ct2"], backend="torch").model_dir == tiny_models["nllb"]


@pytest.mark.parametrize("max_batch_tokens", [1, 40, 100000])
def test_batching_does_not_change_output(tiny_models, max_batch_tokens):
    ref = Translator(tiny_models["nllb_ct2"], compute_type="float32").translate(TEXTS, "en", "de")
    tr = Translator(tiny_models["nllb_ct2"], compute_type="float32", max_batch_tokens=max_batch_tokens)
    assert tr.translate(TEXTS, "en", "de") == ref
    if max_batch_tokens == 1:
        assert tr.stats.batches == sum(1 for t in TEXTS if t.strip())


def test_int8_default_and_stats(tiny_models):
    tr = Translator(tiny_models["nllb_ct2"], threads=1)
    assert tr.compute_type == "int8"
    out = tr.translate(["Maria went home", "", "   ", "x"], "en", "de")
    assert len(out) == 4 and out[1] == out[2] == ""
    assert tr.stats.sentences == 2 and tr.stats.calls == 1
    assert tr.translate([], "en", "de") == []
    assert "Translator(" in repr(tr)


def test_markers_survive_tokenization(tiny_models):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_models["nllb_ct2"] / "tokenizer.json"))
    pieces = tok.encode("[Maria] went", add_special_tokens=False).tokens
    assert "[" in pieces and "]" in pieces


@pytest.mark.parametrize("lang", ["bbj", "pcm"])
def test_unsupported_language(tiny_models, lang):
    tr = Translator(tiny_models["nllb_ct2"], compute_type="float32")
    with pytest.raises(ParameterError, match=r"\[E402\]"):
        tr.translate(["a"], lang, "en")
    with pytest.raises(ParameterError, match=r"\[E402\]"):
        tr.translate(["a"], "en", lang)


def test_parameter_errors(tiny_models):
    d = tiny_models["nllb_ct2"]
    for kw in ({"backend": "onnx"}, {"device": "tpu"}, {"beam_size": 0}, {"max_decoding_length": 1},
               {"threads": 0}, {"compute_type": "int4"}):
        with pytest.raises(ParameterError):
            Translator(d, **kw)
    tr = Translator(d, compute_type="float32")
    with pytest.raises(ParameterError, match=r"\[E202\]"):
        tr.translate("one string", "en", "de")
    with pytest.raises(ParameterError, match=r"\[E303\]"):
        tr.translate(["ok", 3], "en", "de")
    with pytest.raises(ParameterError, match=r"\[E202\]"):
        tr.translate(["ok"], "en", "de", max_decoding_length=2)


def test_export_errors_and_reuse(tiny_models, tmp_path):
    with pytest.raises(ModelError, match=r"\[E401\]"):
        export_translator(tmp_path)
    with pytest.raises(ParameterError, match=r"\[E201\]"):
        export_translator(tiny_models["nllb"], quantization="int4")
    out = export_translator(tiny_models["nllb"], tmp_path / "ct2", quantization="int8")
    stamp = (out / "model.bin").stat().st_mtime_ns
    assert export_translator(tiny_models["nllb"], out, quantization="int8") == out
    assert (out / "model.bin").stat().st_mtime_ns == stamp  # same key: reused, not rebuilt
    assert Translator(out).translate(["Maria went home"], "en", "de")[0]


def test_repetition_guard():
    assert is_repetition_loop([5, 7, 7, 7, 7])
    assert is_repetition_loop([1, 2, 3, 4, 3, 4, 3, 4, 3, 4])
    assert is_repetition_loop([9] + [1, 2, 3] * 4)
    assert not is_repetition_loop([1, 2, 3, 4, 3, 4, 3, 4])
    assert not is_repetition_loop([7, 7, 7])
    assert not is_repetition_loop([])


def test_guards_count_without_dropping(tiny_models, monkeypatch):
    tr = Translator(tiny_models["nllb_ct2"], compute_type="float32", max_decoding_length=30)
    eos = tr._eos
    loop = [100, 101] * 14  # 28 tokens = max_decoding_length - 2, no EOS: truncated and a loop
    fake = {0: [100, 101, eos], 1: [eos], 2: loop}

    def decode(batch, tgt, max_length):
        return [fake[len(s) % 3] for s in batch]

    monkeypatch.setattr(tr, "_decode_batch", decode)
    texts = ["a", "a b", "a b c", "x y z w", "", "q r s t u v"]
    lengths = [len(tr._tok.encode(t, add_special_tokens=False).tokens) + 2 for t in texts]
    out = tr.translate(texts, "en", "de")
    assert len(out) == len(texts) and out[4] == ""
    kinds = [fake[n % 3] for n in lengths]
    nonblank = [k for k, t in zip(kinds, texts) if t.strip()]
    assert tr.stats.empty == sum(k == [eos] for k in nonblank)
    assert tr.stats.repetition_loops == tr.stats.truncated == sum(k is loop for k in nonblank)
    assert {r for _, _, r in tr.stats.flagged} <= {"empty", "repetition_loop", "truncated"}
    assert tr.stats.as_dict()["sentences"] == 5


def test_input_longer_than_the_model_is_translated_in_pieces(tiny_models):
    """A 400-word sentence (over 1,024 NLLB tokens) no longer aborts: it is cut at word starts
    into pieces the model accepts, their translations joined, and counted."""
    tr = Translator(tiny_models["nllb_ct2"], compute_type="float32")
    words = " ".join(tiny_corpus()[:60]).split()
    long = " ".join((words * 40)[:400])
    n_tokens = len(tr._tok.encode(long, add_special_tokens=False).tokens)
    assert n_tokens + 2 > tr.max_input_tokens == 1024
    short = "hello world"
    out = tr.translate([short, long, ""], "en", "hau")
    assert len(out) == 3 and out[2] == ""
    assert tr.stats.split == 1 and (tr.stats.calls, 1, "split") in tr.stats.flagged
    ids = tr.translate_ids([long], "en", "hau")[0]
    assert ids.count(tr._eos) <= 1  # the pieces' own ends are dropped
    assert out[0] == tr.translate([short], "en", "hau")[0]  # the others are unaffected
