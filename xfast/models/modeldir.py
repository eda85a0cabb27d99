"""What a model directory says about itself, read the same way by the runtime and the exporters.

A Hugging Face directory's ``config.json`` (a translator's encoder sizes under the names encoders
use), the longest input its position table allows and where positions start, the layer check,
an encoder export's metadata file, the checkpoint behind a CTranslate2 translator export, and
the ``tokenizers`` tokenizer of a directory. ``tokenizers`` and ``transformers`` are imported
only when a tokenizer is read (:func:`_tokenizer_class`, :func:`_auto_tokenizer`), so this
module stays out of their way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xfast.errors import ModelError, ParameterError, msg
from xfast.models.cache import EXPORT_MANIFEST

__all__ = ["ENCODER_META", "ENCODER_QUANTIZE", "ROBERTA_LIKE", "TRANSLATORS", "check_layer", "encoder_source", "load_tokenizer",
           "max_length", "position_offset", "read_config", "tokenizer_of"]

#: metadata file of an encoder export (layer, limits, graph form)
ENCODER_META = "xfast-encoder.json"
#: the forms an encoder export comes in (its metadata's ``quantize``)
ENCODER_QUANTIZE = (None, "int8", "float16")
#: model types whose positions count from ``pad_token_id + 1``
ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl")
#: encoder-decoder translators whose encoder xfast aligns with (NLLB-200's dense checkpoints);
#: their sentences start with a language code
TRANSLATORS = ("m2m_100",)


def read_config(hf_dir: Path) -> dict:
    """A model's config.json; a translator's encoder sizes under the names encoders use."""
    cfg = hf_dir / "config.json"
    if not cfg.is_file():
        raise ModelError(msg("E411", path=hf_dir, reason="no config.json"))
    cfg = json.loads(cfg.read_text(encoding="utf-8"))
    if cfg.get("model_type") in TRANSLATORS:
        cfg = {**cfg, "hidden_size": cfg["d_model"], "num_hidden_layers": cfg["encoder_layers"],
               "intermediate_size": cfg.get("encoder_ffn_dim")}
    return cfg


def encoder_source(model_dir: Path) -> Path:
    """The Hugging Face directory behind a CTranslate2 translator export (the checkpoint it
    was converted from, which holds the encoder's weights); any other directory as it is."""
    manifest = model_dir / EXPORT_MANIFEST
    if manifest.is_file() and not (model_dir / ENCODER_META).is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ModelError(msg("E411", path=model_dir, reason=f"its {EXPORT_MANIFEST} is not JSON ({e})")) from e
        if data.get("kind") == "translator":
            source = Path(data.get("source", ""))
            if not (source / "config.json").is_file():
                raise ModelError(msg("E411", path=model_dir, reason=(
                    f"a CTranslate2 export whose source checkpoint {source} is gone; the encoder's weights "
                    "are only in the Hugging Face checkpoint: pass that directory")))
            return source
    return model_dir


def max_length(cfg: dict) -> int:
    """Longest input (special tokens included) the position table allows."""
    return int(cfg.get("max_position_embeddings", 512)) - position_offset(cfg)


def position_offset(cfg: dict) -> int:
    """Position id of a sentence's first token (RoBERTa-like models count from pad + 1)."""
    return int(cfg.get("pad_token_id", 1)) + 1 if cfg.get("model_type") in ROBERTA_LIKE else 0


def check_layer(layer: object, cfg: dict, where: object) -> int:
    """``layer`` as an int in ``[0, num_hidden_layers]``, else :class:`ParameterError` [E412]."""
    n = int(cfg.get("num_hidden_layers", 0))
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer <= n:
        raise ParameterError(msg("E412", layer=layer, name=where, n=n))
    return int(layer)


def load_tokenizer(model_dir: str | Path):
    """A ``tokenizers.Tokenizer`` for a model directory, no truncation, no padding.

    Uses ``tokenizer.json`` when present, else converts the directory's slow tokenizer
    files once through transformers' ``AutoTokenizer``.
    """
    model_dir = Path(model_dir)
    path = model_dir / "tokenizer.json"
    if path.is_file():
        tok = _tokenizer_class().from_file(str(path))
    else:
        tok = _tokenizer_class().from_str(_tokenizer_json_from_hf(model_dir))
    tok.no_truncation()
    tok.no_padding()
    return tok


def tokenizer_of(model_dir: Path):
    """A ``tokenizers.Tokenizer`` for a tagger or translator (``tokenizer.json``, else
    transformers' fast tokenizer), with the settings the files give."""
    path = model_dir / "tokenizer.json"
    if path.is_file():
        return _tokenizer_class().from_file(str(path))
    return _auto_tokenizer(model_dir).backend_tokenizer


def _tokenizer_json_from_hf(hf_dir: Path) -> str:
    try:
        hf_tok = _auto_tokenizer(hf_dir)
    except Exception as e:  # noqa: BLE001 - any loader failure is "no usable tokenizer"
        raise ModelError(msg("E411", path=hf_dir, reason=f"no tokenizer.json and AutoTokenizer failed ({e})")) from e
    backend = getattr(hf_tok, "backend_tokenizer", None) or getattr(hf_tok, "_tokenizer", None)
    if backend is None:
        raise ModelError(msg("E411", path=hf_dir, reason="the tokenizer has no fast (tokenizers) form"))
    return backend.to_str()


def _tokenizer_class():
    """``tokenizers.Tokenizer``; ``tokenizers`` is imported here only (not by ``import xfast``)."""
    from tokenizers import Tokenizer

    return Tokenizer


def _auto_tokenizer(model_dir: Path):
    """transformers' ``AutoTokenizer`` for a directory without ``tokenizer.json``; transformers
    (seconds to import) is imported here only."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))
