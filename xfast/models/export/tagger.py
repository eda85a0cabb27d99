"""Export a Hugging Face token classifier to ONNX for :class:`~xfast.models.tagger.Tagger`.

torch and transformers are imported here, at the top; this module is imported only when a
tagger export is built, never by ``import xfast``.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from xfast.errors import check_choice
from xfast.models.cache import cached_export
from xfast.models.export.quantize import quantize_int8_default

try:  # the export toolchain; a missing package is raised when an export is built
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer
except ModuleNotFoundError as _err:
    _MISSING: ModuleNotFoundError | None = _err
else:
    _MISSING = None

__all__ = ["export_tagger"]

#: the graph file of a tagger export
ONNX = "model.onnx"


def export_tagger(hf_dir: str | Path, out_dir: str | Path | None = None, *, quantize: str | None = None) -> Path:
    """Export a Hugging Face token classifier to ONNX (``model.onnx`` + tokenizer + config).

    ``out_dir=None`` puts the export in the model cache under a name derived from the source
    files' hash and the package versions; an existing export with the same key is reused.
    ``quantize="int8"`` applies ONNX Runtime dynamic int8 quantization. Returns the directory.
    """
    check_choice("quantize", quantize, (None, "int8"))
    return cached_export("tagger", hf_dir, out_dir, marker=ONNX, settings={"quantize": quantize},
                         key_extra={"quantize": quantize, "opset": 17},
                         build=lambda src, tmp: _export_onnx(src, tmp, quantize))


def _export_onnx(hf_dir: Path, tmp: Path, quantize: str | None) -> None:
    if _MISSING is not None:  # torch or transformers is not installed
        raise _MISSING

    class _Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    model = AutoModelForTokenClassification.from_pretrained(str(hf_dir)).eval()
    wrapper = _Logits(model).eval()  # the wrapper itself in eval(), else dropout is exported
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    target = tmp / ("model.f32.onnx" if quantize else ONNX)
    with torch.inference_mode(), warnings.catch_warnings():
        # tracing notes about Python bools in masking code: shapes stay dynamic, checked by tests
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index")
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            dynamo=False,
        )
    if quantize == "int8":
        quantize_int8_default(target, tmp / ONNX)
        target.unlink()
    AutoTokenizer.from_pretrained(str(hf_dir)).save_pretrained(str(tmp))
    shutil.copy2(hf_dir / "config.json", tmp / "config.json")
