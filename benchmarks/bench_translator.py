"""Translator: CTranslate2 int8 vs transformers ``generate`` at NLLB-600M's shape (issue 5).

Run: ``python -m pytest benchmarks/bench_translator.py -s`` (``XFAST_BENCH_SENTENCES``:
how many Europarl-NER English sentences, default 8; ``XFAST_BENCH_THREADS``: default 2;
``XFAST_BENCH_DECODE``: decode length, default 48).

Model: random weights at the shape of ``facebook/nllb-200-distilled-600M`` (d_model 1024,
12+12 layers, FFN 4096, 16 heads, vocabulary 256,206, tied embeddings), so the compute is
real and the output meaningless. The tokenizer is the tiny NLLB one (SPEC §10); the
converter pads the vocabulary to 256,206 entries, so the output projection has its real
size. A random decoder almost never emits EOS, so every row decodes exactly
``XFAST_BENCH_DECODE`` tokens in every engine (checked). Baseline: transformers
``generate`` (greedy, float32) through ``Translator(backend="torch")``; xfast: CTranslate2
through ``Translator`` in int8 (the CPU default) and float32. Same sentences, same thread
count, one process; the random model is built once into the cache (``XFAST_CACHE``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ctranslate2")

from xfast.io import read_conll  # noqa: E402
from xfast.models.cache import atomic_dir, cache_dir  # noqa: E402
from xfast.models.translator import Translator, export_translator  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl"  # the shipped test sets
N_SENTENCES = int(os.environ.get("XFAST_BENCH_SENTENCES", "8"))
THREADS = int(os.environ.get("XFAST_BENCH_THREADS", "2"))
DECODE = int(os.environ.get("XFAST_BENCH_DECODE", "48"))
NLLB_600M = dict(
    vocab_size=256206, d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
    decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024,
    scale_embedding=True, activation_function="relu", dropout=0.0, attention_dropout=0.0,
    activation_dropout=0.0, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
    pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
)


def _sentences() -> list[str]:
    path = DATA / "en.conll"
    if path.is_file():
        sents = [" ".join(s.tokens) for s in read_conll(path)]
    else:  # outside the project checkout: the tiny corpus
        from xfast.testing.tiny import tiny_corpus

        sents = tiny_corpus()
    return [s for s in sents if 10 <= len(s.split()) <= 30][:N_SENTENCES]


def _nllb_600m_random(tiny_nllb: Path) -> Path:
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    out = cache_dir() / "bench" / "nllb-600m-shape-random-v1"
    if (out / "model.safetensors").is_file():
        return out
    with atomic_dir(out) as tmp:
        for f in ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model"):
            shutil.copy2(tiny_nllb / f, tmp / f)
        torch.manual_seed(0)
        model = M2M100ForConditionalGeneration(M2M100Config(**NLLB_600M)).eval()
        model.save_pretrained(str(tmp))
        del model
    return out


@pytest.fixture(scope="module")
def setup(tiny_models):
    t0 = time.perf_counter()
    hf_dir = _nllb_600m_random(tiny_models["nllb"])
    ct2_dir = export_translator(hf_dir, quantization="int8")
    print(f"\n[setup] random NLLB-600M shape and its int8 export ready in {time.perf_counter() - t0:.0f}s")
    return hf_dir, ct2_dir, _sentences()


def _run(translator: Translator, texts: list[str]) -> tuple[float, list[list[int]]]:
    translator.translate_ids(texts[:1], "en", "de")  # warm-up (allocations, kernels)
    t0 = time.perf_counter()
    ids = translator.translate_ids(texts, "en", "de")
    return time.perf_counter() - t0, ids


def test_ct2_int8_vs_transformers_generate(setup):
    hf_dir, ct2_dir, texts = setup
    assert texts
    common = dict(threads=THREADS, beam_size=1, max_decoding_length=DECODE + 2)
    rows = []
    base_t, base_ids = _run(Translator(hf_dir, backend="torch", **common), texts)
    rows.append(("transformers generate, float32", base_t, base_ids))
    for ct in ("float32", "int8"):
        t, ids = _run(Translator(ct2_dir, compute_type=ct, **common), texts)
        rows.append((f"CTranslate2 {ct}", t, ids))
    n_tok = sum(map(len, base_ids))
    print(f"\n{len(texts)} sentences, greedy, {DECODE} decoded tokens each, {THREADS} threads")
    print(f"{'engine':34} {'seconds':>8} {'tokens/s':>9} {'speed-up':>9}")
    for name, t, ids in rows:
        assert [len(x) for x in ids] == [len(x) for x in base_ids]  # same decode length
        print(f"{name:34} {t:8.2f} {n_tok / t:9.1f} {base_t / t:8.2f}x")
    assert all(len(x) == DECODE for x in base_ids)
