"""``xfast models list`` and ``xfast models export``: thin wrappers over the registry and exporters.

The exporters (:mod:`xfast.models.export`) import torch, transformers and ctranslate2 at their
top, so :func:`cmd_export` imports the one it runs.
"""

from __future__ import annotations

import json as _json
import sys

from xfast.errors import ParameterError, check_choice, msg
from xfast.models.encoder import _default_layer
from xfast.models.modeldir import encoder_source
from xfast.models.registry import list_models, resolve

__all__ = ["cmd_list", "cmd_export"]


def cmd_list(json: bool = False) -> int:
    """Print the registry as a table, or as one JSON object ``{"models": [...]}``."""
    models = list_models()
    if json:
        print(_json.dumps({"models": [m.to_dict() for m in models]}))
        return 0
    rows = [("NAME", "KIND", "LAYER", "LICENSE", "HUB ID")]
    rows += [(m.name, m.kind, "-" if m.default_layer is None else str(m.default_layer), m.license, m.hf_id)
             for m in models]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_export(src: str, kind: str, layer: int | None = None, out: str | None = None,
               quantize: str | None = None) -> int:
    """Export ``src`` (a local HF directory, or a registry name / hub id available offline)
    as ``kind`` (``encoder``: ONNX cut after ``layer``, by default the registry's, an NLLB
    encoder's last, else 8; ``tagger``: ONNX token classifier;
    ``translator``: CTranslate2). Prints the export directory. ``quantize``: None or
    ``int8`` or ``float16`` (encoder), ``int8`` (tagger); ``int8``, ``float16`` or ``float32`` (translator).
    """
    check_choice("kind", kind, ("encoder", "tagger", "translator"))
    hf_dir = resolve(src, progress=sys.stderr.isatty())
    if kind == "encoder":
        from xfast.models.export.encoder import export_encoder

        q = None if quantize == "float32" else quantize
        check_choice("quantize", q, (None, "int8", "float16"))
        hf_dir = encoder_source(hf_dir)  # a translator's CTranslate2 export: its checkpoint
        path = export_encoder(hf_dir, _default_layer(src, hf_dir) if layer is None else layer, out, quantize=q)
    elif kind == "tagger":
        from xfast.models.export.tagger import export_tagger

        q = None if quantize == "float32" else quantize
        check_choice("quantize", q, (None, "int8"))
        path = export_tagger(hf_dir, out, quantize=q)
    else:
        from xfast.models.export.translator import export_translator

        if layer not in (None, 8):
            raise ParameterError(msg("E202", name="layer", expected="unset for a translator", value=layer))
        path = export_translator(hf_dir, out, quantization=quantize or "int8")
    print(path)
    return 0
