"""The builders behind :func:`xfast.testing.tiny.build_tiny`: tokenizers trained in memory,
random-weight models of the real shapes, the NLLB copy task, and the exports.

torch, transformers, sentencepiece and the exporters are imported here, at the top (guarded: a
missing package is raised when a build runs, and build_tiny reports it as [E431]);
:mod:`xfast.testing.tiny` imports this module only when it builds, so that importing it (the CLI
does, to offer ``xfast models tiny``; tests and benchmarks do, for the corpus) loads none of them.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from xfast.models.export.encoder import export_encoder
from xfast.models.export.tagger import export_tagger
from xfast.models.export.translator import export_translator
from xfast.models.flores import FLORES200

try:  # the build toolchain; a missing package is raised when a build runs
    import sentencepiece as spm
    import torch
    from transformers import (AutoTokenizer, BertConfig, BertModel, M2M100Config, M2M100ForConditionalGeneration,
                              XLMRobertaConfig, XLMRobertaForTokenClassification, XLMRobertaModel)
except ModuleNotFoundError as _err:
    _MISSING: ModuleNotFoundError | None = _err
else:
    _MISSING = None

__all__ = ["build_models"]


def build_models(out: Path, lines: list[str], *, labels: tuple[str, ...], layer: int, seed: int,
                 log: Callable[[str], None]) -> dict[str, Path]:
    """The four tiny models under ``out``, trained on ``lines`` and initialised from ``seed``
    (``labels``: the tagger's), then their exports (encoders cut after ``layer``); returns
    :func:`~xfast.testing.tiny.build_tiny`'s paths. ``log`` gets the progress lines."""
    if _MISSING is not None:  # torch, transformers or sentencepiece is not installed
        raise _MISSING
    paths: dict[str, Path] = {}
    paths["xlmr"] = _build_xlmr(out / "xlmr", lines, layers=10, labels=None, seed=seed)
    paths["ner"] = _build_xlmr(out / "ner", lines, layers=2, labels=labels, seed=seed)
    paths["mbert"] = _build_mbert(out / "mbert", lines, seed=seed)
    log("encoders and tagger built")
    paths["nllb"] = _build_nllb(out / "nllb", lines, steps=300, seed=seed, log=log)
    paths["ner_onnx"] = export_tagger(paths["ner"], out / "ner_onnx")
    paths["nllb_ct2"] = export_translator(paths["nllb"], out / "nllb_ct2", quantization="float32")
    for key in ("xlmr", "mbert"):
        paths[f"{key}_onnx"] = Path(export_encoder(paths[key], layer, out / f"{key}_onnx"))
    return paths


def _train_spm(lines: list[str], model_type: str) -> bytes:
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        model_type=model_type,
        vocab_size=400,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        character_coverage=1.0,
        user_defined_symbols=["[", "]"],
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def _spm_tokenizer(out: Path, spm_model: bytes, config: dict):
    """Write a SentencePiece tokenizer dir, load it with AutoTokenizer, save tokenizer.json."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "sentencepiece.bpe.model").write_bytes(spm_model)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.save_pretrained(str(out))
    # transformers 5 does not write the .model file back: keep ours
    (out / "sentencepiece.bpe.model").write_bytes(spm_model)
    return tok


def _wordpiece_vocab(lines: list[str]) -> list[str]:
    """mBERT-like layout: [PAD]=0, [unused*], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for line in lines for c in line if not c.isspace()})
    vocab += chars + [f"##{c}" for c in chars]
    seen = set(vocab)
    words = Counter(w.strip(".,;:?!\"'()[]") for line in lines for w in line.split())
    for word, _ in words.most_common(300):
        if len(word) > 1 and word not in seen:
            vocab.append(word)
            seen.add(word)
    return vocab


def _build_xlmr(out: Path, lines: list[str], *, layers: int, labels: tuple[str, ...] | None, seed: int) -> Path:
    tok = _spm_tokenizer(
        out,
        _train_spm(lines, "unigram"),
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512},
    )
    kw = {}
    if labels is not None:
        kw = {"id2label": dict(enumerate(labels)), "label2id": {k: i for i, k in enumerate(labels)}}
    config = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **kw,
    )
    torch.manual_seed(seed)
    if labels is None:
        model = XLMRobertaModel(config, add_pooling_layer=False)
    else:
        model = XLMRobertaForTokenClassification(config)
    model.eval().save_pretrained(str(out))
    return out


def _build_mbert(out: Path, lines: list[str], *, seed: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(_wordpiece_vocab(lines)) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": False, "model_max_length": 512})
    )
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.save_pretrained(str(out))
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=10,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(str(out))
    return out


def _build_nllb(out: Path, lines: list[str], *, steps: int, seed: int, log: Callable[[str], None]) -> Path:
    tok = _spm_tokenizer(
        out,
        _train_spm(lines, "bpe"),
        {
            "tokenizer_class": "NllbTokenizer",
            "extra_special_tokens": list(FLORES200),
            "src_lang": "eng_Latn",
            "tgt_lang": "eng_Latn",
            "model_max_length": 1024,
        },
    )
    config = M2M100Config(
        vocab_size=len(tok),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        activation_function="relu",
        max_position_embeddings=1024,
        scale_embedding=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(config)
    _copy_task(model, tok, lines, steps=steps, seed=seed, log=log)
    model.eval().save_pretrained(str(out))
    gen = out / "generation_config.json"
    if gen.exists():  # keep generate() greedy and bounded like the pipelines
        cfg = json.loads(gen.read_text())
        cfg.update({"max_length": 200, "num_beams": 1, "do_sample": False})
        gen.write_text(json.dumps(cfg, indent=1))
    return out


# languages the copy task pairs (the tests' codes come first)
_COPY_LANGS = ("eng_Latn", "deu_Latn", "hau_Latn", "swh_Latn", "yor_Latn", "spa_Latn", "ita_Latn", "zul_Latn")


def _copy_task(model, tok, lines: list[str], *, steps: int, seed: int, log: Callable[[str], None]) -> None:
    """Fine-tune on copying (source -> same text) so that the decoder learns to stop."""
    rng = random.Random(seed)
    pad, eos = tok.pad_token_id, tok.eos_token_id
    pieces = [tok.convert_tokens_to_ids(tok.tokenize(line))[:40] for line in lines]
    lang_ids = tok.convert_tokens_to_ids(list(_COPY_LANGS))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        src, tgt = [], []
        for ids in rng.sample(pieces, 16):
            src.append([rng.choice(lang_ids), *ids, eos])
            tgt.append([rng.choice(lang_ids), *ids, eos])
        n, m = max(map(len, src)), max(map(len, tgt))
        input_ids = torch.tensor([s + [pad] * (n - len(s)) for s in src])
        labels = torch.tensor([t + [-100] * (m - len(t)) for t in tgt])
        dec_in = torch.tensor([[eos, *t[:-1]] + [pad] * (m - len(t)) for t in tgt])
        loss = model(
            input_ids=input_ids,
            attention_mask=(input_ids != pad).long(),
            decoder_input_ids=dec_in,
            labels=labels,
        ).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    log(f"nllb copy task: {steps} steps, loss {loss.item():.3f}, {time.perf_counter() - t0:.1f}s")
