"""The whole translate-test pipeline at real model shapes: time per stage and the share that is
not model inference (issue 7; goal < 10%).

Run: ``python -m pytest benchmarks/bench_pipeline.py -s`` (``XFAST_BENCH_SENTENCES``: how many
MasakhaNER Hausa test sentences, default 500; ``XFAST_BENCH_THREADS``: default 2;
``XFAST_BENCH_DECODE``: generated tokens per translation, default 48).

Models: random weights at real shapes, so the compute is real and the output meaningless:
NLLB-200-distilled-600M (the translator, and also standing in for the EasyProject 3.3B
marker translator), XLM-R large with a 9-label token-classification head (English NER and
the ``ner`` candidates), and the embedded e5-small aligner (real weights, the CLI default).
Tokenizers are the tiny ones (SPEC §10); the embedding matrices have the real vocabulary
sizes. The embedding rows (tied to the output projection) of ids beyond the tiny tokenizer are
zero, so the argmax is a token the tokenizer can decode (else every translation would decode
to an empty text and the later stages would have nothing to do); the projection is still
computed over all 256,206 entries. A random decoder rarely emits EOS, so translations are capped at
``XFAST_BENCH_DECODE`` tokens (about a real sentence's length) instead of running to
``max_length``. The run: src2tgt and tgt2tgt, align methods itermax and softmax, projection
heuristic, ngram-greedy and ner-greedy, plus the model-transfer baseline: every stage.
Model inference = the ``*.model`` timings (translator, tagger and encoder calls); model
loading is reported apart; everything else (reading, detokenizing, splitting, EasyProject
matching, cache writes, extraction, projection, writing, scoring) is the overhead.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ctranslate2")

from xfast.io import read_conll, write_conll  # noqa: E402
from xfast.models.cache import atomic_dir, cache_dir  # noqa: E402
from xfast.models.translator import Translator  # noqa: E402
from xfast.pipelines.translate_test import translate_test  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "masakhaner2"
N_SENTENCES = int(os.environ.get("XFAST_BENCH_SENTENCES", "500"))
THREADS = int(os.environ.get("XFAST_BENCH_THREADS", "2"))
DECODE = int(os.environ.get("XFAST_BENCH_DECODE", "48"))
NLLB_600M = dict(
    vocab_size=256206, d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
    decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024,
    scale_embedding=True, activation_function="relu", dropout=0.0, attention_dropout=0.0,
    activation_dropout=0.0, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
    pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
)
XLMR_LARGE = dict(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)


class CappedTranslator(Translator):
    """A Translator whose outputs stop after ``DECODE`` generated tokens (random weights never
    emit EOS; real NLLB stops near the source length)."""

    def translate(self, texts, src_lang, tgt_lang):
        saved = self.max_decoding_length
        self.max_decoding_length = min(saved, DECODE + 2)
        try:
            return super().translate(texts, src_lang, tgt_lang)
        finally:
            self.max_decoding_length = saved


def _nllb_600m_random(tiny_nllb: Path) -> Path:
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    from tokenizers import Tokenizer

    out = cache_dir() / "bench" / "nllb-600m-shape-random-inrange-v1"
    if (out / "model.safetensors").is_file():
        return out
    n_tok = Tokenizer.from_file(str(tiny_nllb / "tokenizer.json")).get_vocab_size()
    with atomic_dir(out) as tmp:
        for f in ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model"):
            shutil.copy2(tiny_nllb / f, tmp / f)
        torch.manual_seed(0)
        model = M2M100ForConditionalGeneration(M2M100Config(**NLLB_600M)).eval()
        with torch.no_grad():  # ids the tiny tokenizer lacks get zero logits: outputs decode to text
            model.get_input_embeddings().weight[n_tok:] = 0.0
        model.save_pretrained(str(tmp))
    return out


def _xlmr_large_ner_random(tiny_ner: Path) -> Path:
    import json

    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

    out = cache_dir() / "bench" / "xlmr-large-ner-shape-random-v1"
    if (out / "model.safetensors").is_file():
        return out
    labels = json.loads((tiny_ner / "config.json").read_text())["id2label"]
    with atomic_dir(out) as tmp:
        for f in ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model"):
            if (tiny_ner / f).is_file():
                shutil.copy2(tiny_ner / f, tmp / f)
        torch.manual_seed(0)
        cfg = XLMRobertaConfig(**XLMR_LARGE, id2label={int(k): v for k, v in labels.items()},
                               label2id={v: int(k) for k, v in labels.items()})
        XLMRobertaForTokenClassification(cfg).eval().save_pretrained(str(tmp))
    return out


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    from xfast.aligner import Aligner
    from xfast.models.tagger import Tagger, export_tagger
    from xfast.models.translator import export_translator

    t0 = time.perf_counter()
    translator = CappedTranslator(export_translator(_nllb_600m_random(tiny_models["nllb"]), quantization="int8"),
                                  threads=THREADS)
    tagger = Tagger(export_tagger(_xlmr_large_ner_random(tiny_models["ner"])), threads=THREADS)
    aligner = Aligner("e5-small", threads=THREADS)
    data = tmp_path_factory.mktemp("bench") / "hau.conll"
    write_conll(data, (s for _, s in zip(range(N_SENTENCES), read_conll(DATA / "hau.test.txt"))))
    print(f"\n[setup] models ready in {time.perf_counter() - t0:.0f}s")
    return translator, tagger, aligner, data


def test_translate_test_stage_times(setup, tmp_path):
    from xfast.report import format_table

    translator, tagger, aligner, data = setup
    res = translate_test(data, "hau", tmp_path / "out", modes=("src2tgt", "tgt2tgt"),
                         methods=("heuristic", "ngram-greedy", "ner-greedy"), align_methods=("itermax", "softmax"),
                         translator=translator, easyproject_translator=translator, ner_model=tagger,
                         aligner=aligner, baseline=True, dataset="masakhaner2", progress=False)
    t = res["timings"]
    total = t["total"]
    load = sum(v for k, v in t.items() if k.startswith("load "))
    infer = sum(v for k, v in t.items() if k.endswith(".model"))
    other = total - load - infer
    n = res["qa"]["sentences"]["in"]
    rows = [[k, float(v), 100.0 * v / total] for k, v in t.items() if k != "total"]
    print(f"\ntranslate-test, {n} MasakhaNER hau sentences, {THREADS} threads, decode {DECODE} tokens:")
    print(format_table(["stage", "seconds", "% of total"], rows))
    print(f"total {total:.1f}s; model inference {infer:.1f}s; loading {load:.1f}s; "
          f"not inference {other:.1f}s = {100 * other / (total - load):.2f}% of the run without loading")
    qa = res["qa"]
    print(f"translator: {qa['translator']['sentences']} sentences, {qa['translator']['empty']} empty, "
          f"{qa['translator']['target_tokens']} target tokens; EasyProject {qa.get('easyproject')}; "
          f"failed sentences: {qa['sentences']['failed']}")
    assert qa["sentences"]["out"] == n
