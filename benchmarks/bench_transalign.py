"""What the translator's encoder costs as an aligner (issue 16), beside the encoders xfast
otherwise aligns with, on the same Europarl en-de pairs, in one process.

Rows (``Aligner.align_batch`` over all pairs, warm: each model aligned the pairs once before):

* ``e5-small``: the embedded aligner (real weights; 12 x 384, layer 8, itermax), the baseline;
* ``mBERT shape``: the paper's aligner's shape (12 x 768, 119,547-piece WordPiece), random
  weights, layer 8, itermax;
* ``NLLB-600M encoder``: NLLB-200-distilled-600M's encoder shape (12 x 1024, FFN 4096) with the
  real XLM-R SentencePiece vocabulary plus the FLORES-200 codes, random weights, its last layer
  (all 12 layers run, then the final norm), softmax, each side read with its language code.

fp32 and int8 each. Random weights make the compute real and the alignments meaningless; the
quality of a real NLLB encoder as aligner is not measured here (no real NLLB weights offline).
Printed: pairs/s, subwords per pair, and each row's time relative to e5-small fp32.
``XFAST_BENCH_PAIRS`` (default 400) sets the pairs.

Run: ``python -m pytest benchmarks/bench_transalign.py -s`` (first run builds the random NLLB
encoder, about 1.1 GB on disk, and its ONNX exports: several minutes on 2 cores).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _random_models import NLLB_600M, _nllb_tokenizer, mbert_shape  # noqa: E402
from bench_host import cpu_line  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "xfast" / "data" / "europarl"  # the shipped test sets
PAIRS = int(os.environ.get("XFAST_BENCH_PAIRS", "400"))


def _nllb_encoder_shape(out: Path) -> Path:
    """An M2M100 checkpoint at NLLB-600M's encoder shape (one decoder layer: only the encoder
    is exported), random weights, the XLM-R vocabulary with the FLORES-200 codes."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    from xfast.models.cache import atomic_dir

    if (out / "model.safetensors").is_file():
        return out
    with atomic_dir(out) as tmp:
        n_tok = _nllb_tokenizer(tmp)
        torch.manual_seed(0)
        model = M2M100ForConditionalGeneration(M2M100Config(**{**NLLB_600M, "vocab_size": n_tok,
                                                               "decoder_layers": 1})).eval()
        model.save_pretrained(str(tmp))
    return out


def _pairs() -> tuple[list[list[str]], list[list[str]]]:
    from xfast.io import read_conll

    en = [s.tokens for _, s in zip(range(PAIRS), read_conll(DATA / "en.conll"))]
    de = [s.tokens for _, s in zip(range(PAIRS), read_conll(DATA / "de.conll"))]
    return en, de


def test_translator_encoder_cost(tmp_path):
    from xfast.aligner import Aligner
    from xfast.models.cache import cache_dir

    bench = cache_dir() / "bench"
    t0 = time.perf_counter()
    nllb = _nllb_encoder_shape(bench / "nllb-600m-encoder-shape-xlmr-vocab-v1")
    mbert = mbert_shape(tmp_path / "mbert")
    print(f"\n[setup] random models ready in {time.perf_counter() - t0:.0f}s")
    en, de = _pairs()
    rows = []
    for name, model, langs in (("e5-small", "e5-small", None), ("mBERT shape", mbert, None),
                               ("NLLB-600M encoder", nllb, ("en", "de"))):
        for quantize in (None, "int8"):
            aligner = Aligner(model, quantize=quantize, threads=2)
            aligner.align_batch(en, de, langs=langs)  # warm: export, session, word cache
            sub0 = aligner.stats["subwords"]
            t = time.perf_counter()
            aligner.align_batch(en, de, langs=langs)
            dt = time.perf_counter() - t
            rows.append((name, quantize or "fp32", aligner.method, aligner.encoder.layer, dt,
                         (aligner.stats["subwords"] - sub0) / len(en)))
            del aligner
    base = rows[0][4]
    print(f"\n{cpu_line()}\n{len(en)} Europarl en-de pairs, 2 threads\n")
    print("| encoder | weights | method | layer | pairs/s | subwords/pair | time / e5-small fp32 |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, q, method, layer, dt, sub in rows:
        print(f"| {name} | {q} | {method} | {layer} | {len(en) / dt:.1f} | {sub:.1f} | {dt / base:.2f}x |")
    assert all(dt > 0 for *_, dt, _ in rows)
    assert rows[4][2] == "softmax" and rows[4][3] == 12  # the NLLB encoder's defaults


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-s"]))
