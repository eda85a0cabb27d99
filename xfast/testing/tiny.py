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
runtime. The builders (:mod:`xfast.testing._tinybuild`, which imports torch, transformers,
sentencepiece and the exporters at its top) are imported only when a build runs, so importing
this module (for the corpus, the key, or to offer the command) stays light.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from importlib import metadata
from pathlib import Path

from xfast.errors import ModelError, msg
from xfast.models.cache import cache_dir

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
    try:
        from xfast.testing._tinybuild import build_models  # torch and transformers: only when building

        paths = build_models(out, lines, labels=NER_LABELS, layer=TINY_LAYER, seed=_SEED,
                             log=lambda text: _log(progress, text))
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
_KEY_MODULES = ("testing/tiny.py", "testing/_tinybuild.py", "models/flores.py", "models/modeldir.py")


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
