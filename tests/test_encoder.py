"""Encoder: ONNX export cut at layer L vs transformers' full model, windows, batching, cache.

Models: the session fixture ``tiny_models`` (SPEC §10: XLM-R-like and mBERT-like encoders)
when it exists; otherwise two small random-weight models built here with a real fast tokenizer
(Unigram + Metaspace like XLM-R, WordPiece with mBERT's special-id layout). The oracle is
transformers' full model with ``output_hidden_states=True`` (what SimAlign runs), one sentence
at a time, no padding: it shares no code with xfast's cut, batching or windowing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xfast.errors import ModelError, ParameterError
from xfast.models.encoder import Encoder, export_encoder, load_tokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_WORDS = ("the of and to in house Parliament Berlin Maria John commission vote adopted today "
          "Haus ist ein der die das und Straße Ĩkũmi ọmọ ẹkọ 2024 , . ! ? ( ) - ' \"").split()


def _corpus(n: int = 300, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 15))) for _ in range(n)]


def _build_xlmr(out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out.mkdir(parents=True)
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(_corpus(), trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(out / "tokenizer.json"))
    cfg = XLMRobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=10,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=514,
                           type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(1)
    XLMRobertaModel(cfg).eval().save_pretrained(str(out))
    return out


def _build_mbert(out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    out.mkdir(parents=True)
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in _WORDS for c in w})
    vocab += chars + [f"##{c}" for c in chars] + sorted({w for w in _WORDS if len(w) > 3})[:10]
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.BertProcessing(("[SEP]", 102), ("[CLS]", 101))
    tok.save(str(out / "tokenizer.json"))
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=10, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, pad_token_id=0)
    torch.manual_seed(2)
    BertModel(cfg).eval().save_pretrained(str(out))
    return out


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    """Exports of this module's models go to a throw-away cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XFAST_CACHE", str(tmp_path_factory.mktemp("xfast-cache")))
        yield


@pytest.fixture(scope="module")
def encoders(request, tmp_path_factory) -> dict[str, Path]:
    try:
        tiny = request.getfixturevalue("tiny_models")
        return {"xlmr": Path(tiny["xlmr"]), "mbert": Path(tiny["mbert"])}
    except pytest.FixtureLookupError:
        root = tmp_path_factory.mktemp("encoders")
        return {"xlmr": _build_xlmr(root / "xlmr"), "mbert": _build_mbert(root / "mbert")}


_probe: dict = {}


def _window_probe(hf_dir: Path) -> Encoder:
    """One torch-backend Encoder reused by the property test (its window maths only)."""
    if "enc" not in _probe:
        _probe["enc"] = Encoder(hf_dir, backend="torch", layer=1)
    return _probe["enc"]


SENTS = [
    ["the", "Parliament", "adopted", "Maria's", "vote", "today", "."],
    ["Haus"],
    ["ein", "Haus", "in", "Berlin", ",", "Straße", "2024", "!"],
    [],
    ["ọmọ", "ẹkọ", "Ĩkũmi", "(", "John", ")"],
]


def _oracle(hf_dir: Path, sents, layer: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """transformers' full model, hidden_states[layer], one sentence at a time, specials dropped."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(hf_dir)).eval()
    tok = load_tokenizer(hf_dir)
    out = []
    for ws in sents:
        if not ws:
            out.append((np.zeros((0, model.config.hidden_size), np.float32), np.zeros(0, np.int32)))
            continue
        e = tok.encode(ws, is_pretokenized=True)
        keep = [k for k, w in enumerate(e.word_ids) if w is not None]
        with torch.inference_mode():
            hs = model(torch.tensor([e.ids]), output_hidden_states=True).hidden_states[layer][0]
        out.append((hs[keep].numpy(), np.array([e.word_ids[k] for k in keep], np.int32)))
    return out


@pytest.mark.parametrize("kind", ["xlmr", "mbert"])
@pytest.mark.parametrize("layer", [8, 3])
def test_onnx_and_torch_equal_full_model_hidden_states(encoders, kind, layer):
    want = _oracle(encoders[kind], SENTS, layer)
    for backend in ("onnx", "torch"):
        enc = Encoder(encoders[kind], layer=layer, backend=backend, threads=1)
        got = enc.encode(SENTS)
        assert len(got) == len(SENTS)
        for g, (states, wids) in zip(got, want):
            assert g.states.dtype == np.float32 and g.word_ids.dtype == np.int32
            np.testing.assert_array_equal(g.word_ids, wids)
            np.testing.assert_allclose(g.states, states, atol=1e-5, rtol=0)
        assert enc.stats["sentences"] == len(SENTS) and enc.stats["windowed"] == 0
        assert enc.stats["subwords"] == sum(len(w) for _, w in want)


def test_layer_zero_is_the_embeddings(encoders):
    want = _oracle(encoders["mbert"], SENTS[:1], 0)
    got = Encoder(encoders["mbert"], layer=0).encode(SENTS[:1])
    np.testing.assert_allclose(got[0].states, want[0][0], atol=1e-5, rtol=0)


def test_batching_does_not_change_states(encoders):
    enc = Encoder(encoders["xlmr"])
    together = enc.encode(SENTS)
    tiny_batches = Encoder(encoders["xlmr"], max_tokens=1)  # one sequence per batch
    apart = tiny_batches.encode(SENTS)
    assert tiny_batches.stats["batches"] == sum(1 for s in SENTS if s)
    for a, b in zip(together, apart):
        np.testing.assert_allclose(a.states, b.states, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(a.word_ids, b.word_ids)


def test_window_that_fits_equals_one_pass(encoders):
    one_pass = Encoder(encoders["xlmr"]).encode(SENTS)
    n_max = max(len(e.word_ids) for e in one_pass)
    windowed = Encoder(encoders["xlmr"], window=n_max + 2)  # + <s> </s>: every sentence fits
    for a, b in zip(one_pass, windowed.encode(SENTS)):
        np.testing.assert_allclose(a.states, b.states, atol=1e-5, rtol=0)
    assert windowed.stats["windowed"] == 0


@pytest.mark.parametrize("kind", ["xlmr", "mbert"])
def test_long_sentence_windows_cover_every_word(encoders, kind):
    rng = random.Random(3)
    long = [rng.choice(_WORDS) for _ in range(60)]
    window = 16
    enc = Encoder(encoders[kind], window=window)
    got = enc.encode([long, SENTS[1]])
    full = Encoder(encoders[kind]).encode([long])[0]  # the model's limit: one pass
    np.testing.assert_array_equal(got[0].word_ids, full.word_ids)
    assert set(got[0].word_ids.tolist()) == set(range(len(long)))  # no silent loss
    assert enc.stats["windowed"] == 1 and enc.stats["windows"] > 2
    # oracle for the ends: the first and the last window run on their own through transformers
    tok = load_tokenizer(encoders[kind])
    ids = tok.encode(long, is_pretokenized=True, add_special_tokens=False).ids
    size = window - 2  # content subwords per window ([CLS]/[SEP] or <s>/</s>)
    n, q = len(ids), size // 4
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(encoders[kind])).eval()
    first_special, last_special = tok.encode(["a"], is_pretokenized=True).ids[0], tok.encode(["a"], is_pretokenized=True).ids[-1]
    for a in (0, n - size):
        with torch.inference_mode():
            x = torch.tensor([[first_special, *ids[a:a + size], last_special]])
            hs = model(x, output_hidden_states=True).hidden_states[8][0, 1:-1].numpy()
        rows = slice(0, q) if a == 0 else slice(size - q, size)
        np.testing.assert_allclose(got[0].states[a:a + size][rows], hs[rows], atol=1e-5, rtol=0)
    # and a sentence that fits is untouched by its long batch mate
    np.testing.assert_allclose(got[1].states, Encoder(encoders[kind]).encode([SENTS[1]])[0].states, atol=1e-5)


def test_words_without_subwords_and_empty_input(encoders):
    enc = Encoder(encoders["xlmr"])
    assert enc.encode([]) == []
    out = enc.encode([["Haus", "", "ist"]])
    assert 1 not in out[0].word_ids.tolist() and {0, 2} <= set(out[0].word_ids.tolist())
    assert "Encoded(" in repr(out[0]) and "Encoder(" in repr(enc)


def test_export_is_cached_and_keyed(encoders, tmp_path):
    a = export_encoder(encoders["mbert"], 4)
    mtime = (a / "model.onnx").stat().st_mtime_ns
    assert export_encoder(encoders["mbert"], 4) == a and (a / "model.onnx").stat().st_mtime_ns == mtime
    assert export_encoder(encoders["mbert"], 5) != a
    meta = json.loads((a / "xfast-encoder.json").read_text())
    assert meta["layer"] == 4 and meta["max_length"] == 512
    out = export_encoder(encoders["mbert"], 4, tmp_path / "exp")
    assert (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match=r"\[E414\]"):
        export_encoder(encoders["mbert"], 4, tmp_path / "taken")


def test_int8_export_is_close_to_float32(encoders):
    ref = Encoder(encoders["xlmr"]).encode(SENTS)
    q = Encoder(encoders["xlmr"], quantize="int8")
    for a, b in zip(ref, q.encode(SENTS)):
        np.testing.assert_array_equal(a.word_ids, b.word_ids)
        if len(a.states):
            cos = (a.states * b.states).sum(1) / np.linalg.norm(a.states, axis=1) / np.linalg.norm(b.states, axis=1)
            assert cos.min() > 0.95


def test_parameter_errors(encoders):
    with pytest.raises(ParameterError, match=r"\[E412\]"):
        Encoder(encoders["mbert"], layer=11)
    with pytest.raises(ParameterError, match=r"\[E201\].*backend"):
        Encoder(encoders["mbert"], backend="tf")
    with pytest.raises(ParameterError, match=r"\[E201\].*quantize"):
        export_encoder(encoders["mbert"], 2, quantize="int4")
    with pytest.raises(ParameterError, match=r"\[E202\].*quantize"):
        Encoder(encoders["mbert"], backend="torch", quantize="int8")
    with pytest.raises(ParameterError, match=r"\[E202\].*window"):
        Encoder(encoders["mbert"], window=3)
    enc = Encoder(encoders["mbert"], layer=2)
    with pytest.raises(ParameterError, match=r"\[E202\]"):
        enc.encode(["not", "split"])
    with pytest.raises(ParameterError, match=r"\[E303\].*sentence 1"):
        enc.encode([["ok"], ["bad", 3]])
    with pytest.raises(ModelError, match=r"\[E411\]"):
        export_encoder(encoders["mbert"].parent, 2)


def test_offline_hub_model_says_how_to_export(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match=r"\[E401\].*'mbert'.*bert-base-multilingual-cased.*offline.*xfast models export"):
        Encoder("mbert")


def test_same_states_for_any_thread_count(encoders):
    one = Encoder(encoders["mbert"], threads=1).encode(SENTS)
    two = Encoder(encoders["mbert"], threads=2, max_tokens=40).encode(SENTS)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a.states, b.states, atol=1e-5, rtol=0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), size=st.integers(2, 64))
def test_windows_partition_every_subword(encoders, n, size):
    enc = _window_probe(encoders["xlmr"])
    enc._content = size
    spans = enc._windows(n)
    owned = [t for a, b, oa, ob in spans for t in range(oa, ob)]
    assert owned == list(range(n))  # each subword from exactly one window, in order
    for a, b, oa, ob in spans:
        assert 0 <= a <= oa < ob <= b <= n and b - a <= size
        if len(spans) > 1:  # at least a quarter window of context on each inner side
            assert (oa == 0 or oa - a >= size // 4) and (ob == n or b - ob >= size // 4)


def test_truncate_keeps_the_first_pass_only(tiny_models):
    """compat (SPEC §2): subwords past the limit get no states, and the kept ones are those of
    one pass over the first ``content`` subwords; the default encodes every word in windows."""
    from xfast.models.encoder import Encoder

    cut = Encoder(tiny_models["xlmr"], layer=2, window=12, truncate=True)
    full = Encoder(tiny_models["xlmr"], layer=2, window=12)
    one = Encoder(tiny_models["xlmr"], layer=2)
    # a word that is a single subword, so the cut falls on a word boundary
    word = next(w for w in ("the", "a", "de", "la", "in", ".", ",")
                if len(cut.tokenizer.encode([w], is_pretokenized=True, add_special_tokens=False).ids) == 1)
    words = [word] * 40
    (c,), (f,) = cut.encode([words]), full.encode([words])
    assert len(c.word_ids) == cut._content and len(f.word_ids) == 40
    assert c.word_ids.tolist() == list(range(cut._content))
    assert cut.stats["truncated"] == 1 and cut.stats["windowed"] == 0 and full.stats["windowed"] == 1
    (ref,) = one.encode([words[: cut._content]])
    np.testing.assert_allclose(c.states, ref.states, atol=1e-5)


def test_an_onnx_export_directory_is_an_encoder(tiny_models):
    """The exports `xfast models tiny` writes (and `xfast models export`) load directly, with
    the states of the Hugging Face directory they came from; a layer they were not cut at is
    a clear error."""
    from xfast.aligner import Aligner
    from xfast.errors import ParameterError

    words = [["Hello", "world", "!"], ["Guten", "Tag"]]
    direct = Encoder(tiny_models["xlmr_onnx"], layer=8).encode(words)
    source = Encoder(tiny_models["xlmr"], layer=8).encode(words)
    assert all(np.array_equal(a.states, b.states) for a, b in zip(direct, source))
    a = Aligner(tiny_models["xlmr_onnx"], layer=8).align_batch(words, words)
    b = Aligner(tiny_models["xlmr"], layer=8).align_batch(words, words)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ParameterError, match="the layer .* was cut after"):
        Encoder(tiny_models["xlmr_onnx"], layer=2)
