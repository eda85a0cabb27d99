"""Tiny offline models (docs/cli.md): every pipeline runs without a model hub.

:func:`build_tiny` writes, under one directory, small random-weight models shaped like the
real ones, with real tokenizers trained in memory on a synthetic corpus:

``xlmr``   XLM-R-like encoder (SentencePiece unigram, ``XLMRobertaTokenizer``), 10 layers
``mbert``  mBERT-like encoder (WordPiece vocabulary laid out like mBERT's), 10 layers
``ner``    XLM-R-like token classifier with labels O, B-/I-PER, ORG, LOC, MISC
``nllb``   NLLB-like M2M100 translator (SentencePiece BPE, ``NllbTokenizer``, the 202
           FLORES-200 codes, ``[``/``]`` kept whole), copy-task fine-tuned so it emits EOS

and their exports: ``ner_onnx`` (ONNX tagger), ``nllb_ct2`` (CTranslate2, float32 so that
greedy output equals transformers ``generate``), ``xlmr_onnx`` / ``mbert_onnx`` (encoders cut
at :data:`TINY_LAYER`), written by :mod:`xfast.models.export`.
Weights are random: outputs are meaningless, compute paths are real.

A test tool (``xfast models tiny``, the test suite's fixtures, benchmarks), not part of the
runtime: torch, transformers and sentencepiece are imported at the top, guarded so that a
missing one is raised (as [E431]) only when a build runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

from xfast.errors import ModelError, msg
from xfast.models.cache import cache_dir
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

try:  # POSIX: concurrent builds wait on a lock file (elsewhere they race, and one rename wins)
    import fcntl
except ImportError:
    fcntl = None

__all__ = ["NER_LABELS", "TINY_LAYER", "TINY_VERSION", "build_tiny", "ensure_tiny", "tiny_corpus", "tiny_key"]

#: bump when the recipe changes, so caches keyed on it rebuild
TINY_VERSION = 1
#: encoder layer the tiny encoder exports are cut at (the aligner's default)
TINY_LAYER = 8
NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
_MANIFEST = "tiny.json"
_SEED = 1234

# characters the synthetic corpus covers: ASCII, the Latin letters of Europarl and
# MasakhaNER, a few combining marks and symbols
_EXTRA_CHARS = (
    "°º¿¡£€«»ÀÃÄÈÉËÌÑÒÖÜßàáâãäåçèéêëìíîïñòóôõöùúûü"
    "ăěĩńŊŋœšũƆƉƏƐƑƒƔƝǎǐǒǔǝɑɔɖəɛɣɩɲʉʋʻʼ"
    "ṢṣẸẹẽỊịỌọỤụ‘’‚“”–—…"
)
_ENGLISH = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "will more no out do so can what up said about other into than its time only could new "
    "them man some these then two first may any like now my such make over our even most me "
    "state after also made many did must before back see through way where get much go well "
    "your know should down work year because come people just say each those take day good "
    "how long Mr own too little use US very great still men here life both between old under "
    "last never place same another think house while high right might came off find states "
    "since used give against three himself look few general hand school part small American "
    "home during number again Mrs around thought went without however govern don't world"
).split()
_NAMES = (
    "John Mary Smith Berlin London Paris Europe Africa Nigeria Kenya Lagos Nairobi Google "
    "Microsoft Commission Parliament Council Union Maria Anna Peter Obama Merkel Ghana Accra "
    "Kampala Uganda Rwanda Kigali Dakar Senegal Zulu Xhosa Yoruba Hausa Amina Kwame Chidi"
).split()
_SYLLABLES = (
    "ba be bi bo bu ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu sa se si so "
    "su ta te ti to tu wa we wi wo ya yo da de di do du ga ge gi go gu ha he hi ho hu za zo "
    "ch sch ei au ie qu gb kp ny ng mb nd ọ ẹ ṣ ɛ ɔ ŋ ɖ ä ö ü é è à ñ ó ú í ç ß"
).split()


def tiny_corpus(n: int = 600, seed: int = _SEED) -> list[str]:
    """The synthetic multilingual corpus the tiny tokenizers are trained on (stripped lines)."""
    rng = random.Random(seed)
    pseudo = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(400)]
    lines = []
    for i in range(n):
        pool = _ENGLISH if i % 2 == 0 else pseudo
        words = [rng.choice(pool) for _ in range(rng.randint(3, 14))]
        for _ in range(rng.randint(0, 2)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(_NAMES))
        if rng.random() < 0.3:
            k = rng.randrange(len(words))
            words[k] = f"[{words[k]}]" if rng.random() < 0.5 else f"[ {words[k]} ]"
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words) + 1), str(rng.randint(0, 2025)))
        words[0] = words[0][:1].upper() + words[0][1:]
        lines.append(" ".join(words) + rng.choice(".?!,;:"))
    # every character at least once, so character_coverage=1.0 keeps them all
    chars = "".join(chr(c) for c in range(33, 127)) + _EXTRA_CHARS
    lines.extend(" ".join(chars[i : i + 12]) for i in range(0, len(chars), 12))
    return [line.strip() for line in lines]


def _log(progress: bool, text: str) -> None:
    if progress:
        print(f"[xfast tiny] {text}", file=sys.stderr, flush=True)


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


def _build_xlmr(out: Path, lines: list[str], *, layers: int, labels: tuple[str, ...] | None) -> Path:
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
    torch.manual_seed(_SEED)
    if labels is None:
        model = XLMRobertaModel(config, add_pooling_layer=False)
    else:
        model = XLMRobertaForTokenClassification(config)
    model.eval().save_pretrained(str(out))
    return out


def _build_mbert(out: Path, lines: list[str]) -> Path:
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
    torch.manual_seed(_SEED)
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(str(out))
    return out


def _build_nllb(out: Path, lines: list[str], *, steps: int, progress: bool) -> Path:
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
    torch.manual_seed(_SEED)
    model = M2M100ForConditionalGeneration(config)
    _copy_task(model, tok, lines, steps=steps, progress=progress)
    model.eval().save_pretrained(str(out))
    gen = out / "generation_config.json"
    if gen.exists():  # keep generate() greedy and bounded like the pipelines
        cfg = json.loads(gen.read_text())
        cfg.update({"max_length": 200, "num_beams": 1, "do_sample": False})
        gen.write_text(json.dumps(cfg, indent=1))
    return out


# languages the copy task pairs (the tests' codes come first)
_COPY_LANGS = ("eng_Latn", "deu_Latn", "hau_Latn", "swh_Latn", "yor_Latn", "spa_Latn", "ita_Latn", "zul_Latn")


def _copy_task(model, tok, lines: list[str], *, steps: int, progress: bool) -> None:
    """Fine-tune on copying (source -> same text) so that the decoder learns to stop."""
    rng = random.Random(_SEED)
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
    _log(progress, f"nllb copy task: {steps} steps, loss {loss.item():.3f}, {time.perf_counter() - t0:.1f}s")


def build_tiny(out: str | Path, *, progress: bool = True) -> dict[str, Path]:
    """Build the tiny models (``xfast models tiny``, docs/cli.md) and their exports under ``out``.

    Returns ``{"xlmr", "mbert", "ner", "nllb"}`` Hugging Face directories plus the exports
    ``"ner_onnx"``, ``"nllb_ct2"``, ``"xlmr_onnx"`` and ``"mbert_onnx"``. A finished build
    (``tiny.json`` present with the same recipe version) is reused as it is.
    """
    out = Path(out)
    manifest = out / _MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        if data.get("version") == TINY_VERSION and all((out / p).exists() for p in data["paths"].values()):
            return {k: out / p for k, p in data["paths"].items()}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lines = tiny_corpus()
    paths: dict[str, Path] = {}
    try:
        if _MISSING is not None:  # torch, transformers or sentencepiece is not installed
            raise _MISSING
        paths["xlmr"] = _build_xlmr(out / "xlmr", lines, layers=10, labels=None)
        paths["ner"] = _build_xlmr(out / "ner", lines, layers=2, labels=NER_LABELS)
        paths["mbert"] = _build_mbert(out / "mbert", lines)
        _log(progress, "encoders and tagger built")
        paths["nllb"] = _build_nllb(out / "nllb", lines, steps=300, progress=progress)
        paths["ner_onnx"] = export_tagger(paths["ner"], out / "ner_onnx")
        paths["nllb_ct2"] = export_translator(paths["nllb"], out / "nllb_ct2", quantization="float32")
        for key in ("xlmr", "mbert"):
            paths[f"{key}_onnx"] = Path(export_encoder(paths[key], TINY_LAYER, out / f"{key}_onnx"))
    except Exception as exc:  # a clear, numbered error instead of a deep traceback
        raise ModelError(msg("E431", what="tiny models", reason=f"{type(exc).__name__}: {exc}")) from exc
    data = {"version": TINY_VERSION, "paths": {k: p.relative_to(out).as_posix() for k, p in paths.items()}}
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(manifest)
    _log(progress, f"built {sorted(paths)} in {time.perf_counter() - t0:.1f}s under {out}")
    return paths


_KEY_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime", "ctranslate2", "sentencepiece", "tokenizers")
#: the modules whose code builds or exports the tiny models (files under ``xfast/``; every
#: module of ``models/export`` too): a change to any of them rebuilds, a change to the runtime
#: does not
_KEY_MODULES = ("testing/tiny.py", "models/flores.py", "models/modeldir.py")


def _key_files() -> list[Path]:
    root = Path(__file__).resolve().parents[1]
    return [root / name for name in _KEY_MODULES] + sorted((root / "models" / "export").glob("*.py"))


def tiny_key() -> str:
    """Cache key of a tiny build: package versions, :data:`TINY_VERSION` and the source of
    the modules that build and export the models."""
    h = hashlib.sha256(str(TINY_VERSION).encode())
    for name in _KEY_PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "none"
        h.update(f"{name}={version};".encode())
    for path in _key_files():
        h.update(path.read_bytes() if path.is_file() else b"-")
    return h.hexdigest()[:16]


def ensure_tiny(root: str | Path | None = None, *, progress: bool = True) -> dict[str, Path]:
    """The tiny models, built once per key under ``root`` (default: the model cache,
    ``$XFAST_CACHE`` or ``~/.cache/xfast``, as ``tiny-<key>``). Concurrent callers wait on a
    lock file, so parallel test sessions build once."""
    out = Path(root) if root is not None else cache_dir() / f"tiny-{tiny_key()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    with open(lock, "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        if os.environ.get("XFAST_TINY_REBUILD") and (out / _MANIFEST).is_file():
            (out / _MANIFEST).unlink()
        return build_tiny(out, progress=progress)
