"""Convert a Hugging Face NLLB/M2M100 checkpoint to CTranslate2 for
:class:`~xfast.models.translator.Translator`.

ctranslate2's converter and transformers are imported here, at the top (as CTranslate2's own
converters import torch and transformers); this module is imported only when a translator
export is built, never by ``import xfast``.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

from xfast.errors import ModelError, check_choice, msg
from xfast.models.cache import cached_export

try:  # the conversion toolchain; a missing package is raised when an export is built
    import ctranslate2
    from transformers import AutoTokenizer
except ModuleNotFoundError as _err:
    _MISSING: ModuleNotFoundError | None = _err
else:
    _MISSING = None

__all__ = ["export_translator"]

#: the model file of a CTranslate2 export
CT2 = "model.bin"
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    "generation_config.json",
)


def export_translator(
    hf_dir: str | Path, out_dir: str | Path | None = None, *, quantization: str = "int8"
) -> Path:
    """Convert a Hugging Face NLLB/M2M100 model to CTranslate2 (with its tokenizer files).

    ``quantization`` is the stored weight type (``"int8"``, ``"float16"``, ``"float32"``);
    CTranslate2 can still run it in another compute type. ``out_dir=None`` puts the export in
    the model cache, keyed by the source files' hash and the package versions; an existing
    export with the same key is reused. Returns the directory.
    """
    check_choice("quantization", quantization, ("int8", "float16", "float32"))
    return cached_export("translator", hf_dir, out_dir, marker=CT2, settings={"quantization": quantization},
                         key_extra={"quantization": quantization, "ctranslate2": _version("ctranslate2")},
                         build=lambda src, tmp: _convert(src, tmp, quantization))


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def _convert(hf_dir: Path, tmp: Path, quantization: str) -> None:
    if _MISSING is not None:  # ctranslate2 or transformers is not installed
        raise _MISSING
    # the converter writes into a directory it creates itself
    target = tmp / "ct2"
    ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(
        str(target), quantization=quantization, force=True
    )
    for f in target.iterdir():
        f.rename(tmp / f.name)
    target.rmdir()
    AutoTokenizer.from_pretrained(str(hf_dir)).save_pretrained(str(tmp))
    for name in _TOKENIZER_FILES:  # keep the originals (transformers 5 drops the .model)
        if (hf_dir / name).is_file():
            shutil.copy2(hf_dir / name, tmp / name)
    if not (tmp / "tokenizer.json").is_file():
        raise ModelError(msg("E432", what="translator", path=str(hf_dir), reason="no fast tokenizer (tokenizer.json)"))
