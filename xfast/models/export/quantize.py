"""Smaller and faster forms of an ONNX graph: int8 dynamic quantization and the float16 recipe.

Each recipe reads one ``model.onnx`` and writes another; the exporters call them on the float32
graph they wrote (:func:`xfast.models.export.encoder.export_encoder`,
:func:`xfast.models.export.tagger.export_tagger`). onnx and ONNX Runtime's quantization tools are
imported here, at the top (this module is imported only when an export is built).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:  # the quantization toolchain; a missing package is raised when a recipe runs
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic
except ModuleNotFoundError as _err:
    _MISSING: ModuleNotFoundError | None = _err
else:
    _MISSING = None

__all__ = ["convert_float16", "has_vnni", "quantize_int8", "quantize_int8_default"]


def _toolchain() -> None:
    """Raise the ImportError of a missing onnx or onnxruntime (only a recipe needs them)."""
    if _MISSING is not None:
        raise _MISSING


def has_vnni() -> bool:
    """True on x86 CPUs with VNNI int8 dot products (or when the flags cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "vnni" in flags or "avx2" not in flags


def quantize_int8(src: Path, dst: Path, reduce_range: bool) -> None:
    """The encoder's int8 recipe (its key's ``quantizer``): dynamic quantization of the
    linear layers' weights, per output channel."""
    _toolchain()
    # Linear weights (Gemm/MatMul with a weight) per output channel; the embedding table and
    # the attention products stay float32. Per channel matters for e5-small, whose weights
    # carry 4-bit block scales: median per-subword cosine to float32 0.983 vs 0.942 per
    # tensor on Europarl. reduce_range (7-bit weights) only where u8*s8 products would
    # saturate: AVX2 without VNNI.
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"],
                     weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range)


def quantize_int8_default(src: Path, dst: Path) -> None:
    """The tagger's int8 recipe: ONNX Runtime's dynamic quantization with its defaults (every
    operator type it quantizes, per tensor)."""
    _toolchain()
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def convert_float16(src: Path, dst: Path) -> None:
    """``src`` with its matrix products in float16: every MatMul and Gemm takes float16
    weights (converted once) and float16 activations (a Cast before it, shared by the products
    that read the same tensor), and its result is cast back to float32. Everything else (layer
    norms, softmax, GELU, residual sums, the attention mask's large negative bias) stays
    float32, so that half precision only touches what tensor cores accelerate. Inputs and the
    output keep their types (int64 ids in, float32 states out)."""
    _toolchain()
    model = onnx.load(str(src))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    halves: dict[str, str] = {}  # float32 initializer or tensor -> its float16 twin
    nodes = []

    def half(name: str, owner: str) -> str:
        if name not in halves:
            if name in inits and inits[name].data_type == TensorProto.FLOAT:
                arr = numpy_helper.to_array(inits[name]).astype(np.float16)
                g.initializer.append(numpy_helper.from_array(arr, f"{name}::fp16"))
            else:
                nodes.append(helper.make_node("Cast", [name], [f"{name}::fp16"], to=TensorProto.FLOAT16,
                                              name=f"{owner}::cast16::{len(halves)}"))
            halves[name] = f"{name}::fp16"
        return halves[name]

    for node in g.node:
        if node.op_type not in ("MatMul", "Gemm"):
            nodes.append(node)
            continue
        node.input[:] = [half(i, node.name) if i else i for i in node.input]
        out = node.output[0]
        node.output[0] = f"{out}::fp16"
        nodes.append(node)
        nodes.append(helper.make_node("Cast", [node.output[0]], [out], to=TensorProto.FLOAT,
                                      name=f"{node.name}::cast32"))
    used = {i for n in nodes for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # types changed; the runtime infers them again
    onnx.save(model, str(dst))
