"""The aligner's encoder: words in, layer-L subword states out (docs/alignment.md).

Two pieces:

* :func:`export_encoder` writes an ONNX model cut after layer ``L`` (only layers 1..L are
  computed; its output equals transformers' ``hidden_states[L]``), optionally int8
  dynamically quantized, into a cache directory keyed by the source files' hashes and the
  package versions.
* :class:`Encoder` runs it batch-first: each sentence is tokenized once with the fast
  tokenizer (``tokenizers`` on ``tokenizer.json``, words pre-split, ``word_ids()`` giving the
  subword-to-word map), windows of at most the model's limit are cut from over-long
  sentences (overlapping by half, each subword taken from the window where it sits most
  centrally, so every word gets states), windows are sorted by length and packed into
  batches under a token budget, and the states come back per sentence with special
  tokens dropped. A transformers backend behind the same object is the parity reference.

The encoder of an NLLB-200 (M2M100) translation checkpoint aligns too (docs/alignment.md, "The
translator's encoder"): it is exported the same way, and each sentence is fed as the translator
feeds it, ``[language code] subwords </s>``, with the code of the sentence's own language.

For BERT and XLM-R layouts the exported graph is *packed*: the token-wise work (embeddings,
projections, FFN, layer norms; about 85% of the time) runs on the real tokens only and only
attention sees the padded ``(batch, seq)`` layout, so padding costs attention, not matmuls.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xfast._native import load
from xfast.errors import ModelError, ParameterError, check_choice, msg
from xfast.models.cache import atomic_dir, cache_dir, content_hash, quiet
from xfast.models.modeldir import ENCODER_META as _META
from xfast.models.modeldir import ENCODER_QUANTIZE as _QUANTIZE
from xfast.models.modeldir import TRANSLATORS as _TRANSLATORS
from xfast.models.modeldir import (check_layer, encoder_source, load_tokenizer, max_length, position_offset,
                                   read_config)
from xfast.models.registry import resolve
from xfast.models.types import Encoded, States, Subwords

__all__ = ["Encoded", "Encoder", "States", "Subwords", "export_encoder", "load_tokenizer", "providers_for",
           "takes_language", "DEVICES"]

_EXPORTER = 2  # bump when the exported graph changes
_QUANTIZER = 2  # bump when the int8 recipe changes
_FLOAT16 = 1  # bump when the float16 recipe changes
DEVICES = ("cpu", "cuda", "auto")
_BACKENDS = ("onnx", "torch")
# files that define a model; anything else in a hub snapshot (README, .gitattributes,
# other formats) must not change the export's key
_MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model",
                "spiece.model", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json")


_pack = load("xfast.models", "_packing")
_wordcache = load("xfast.models", "_wordcache")


def _word_cache(max_words: int):
    return _wordcache.WordCache(max_words)


# ----------------------------------------------------------------------------- model files
def _load_cut_model(hf_dir: Path, layer: int, attn: str | None = None):
    """transformers base model with ``encoder.layer`` cut after ``layer``, in eval mode."""
    import torch  # noqa: F401 - transformers needs it; imported here to fail clearly
    from transformers import AutoModel

    kw = {"attn_implementation": attn} if attn else {}
    if read_config(hf_dir).get("model_type") in _TRANSLATORS:
        return _load_cut_translator(hf_dir, layer, kw)
    try:
        try:
            model = AutoModel.from_pretrained(str(hf_dir), add_pooling_layer=False, **kw)
        except TypeError:
            model = AutoModel.from_pretrained(str(hf_dir), **kw)
    except Exception as e:  # noqa: BLE001
        raise ModelError(msg("E411", path=hf_dir, reason=f"transformers cannot load it ({e})")) from e
    enc = getattr(model, "encoder", None)
    if enc is None or not hasattr(enc, "layer"):
        raise ModelError(msg("E414", what=f"encoder from {hf_dir}",
                             reason=f"{type(model).__name__} has no encoder.layer stack (BERT-like models only)"))
    enc.layer = enc.layer[:layer]
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model.eval()


def _load_cut_translator(hf_dir: Path, layer: int, kw: dict):
    """The encoder of a translation checkpoint cut after ``layer`` (its final layer norm kept
    only when every layer is), in eval mode: its output equals ``hidden_states[layer]`` of
    transformers' encoder, the last one being its ``last_hidden_state``."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(str(hf_dir), **kw)
    except Exception as e:  # noqa: BLE001
        raise ModelError(msg("E411", path=hf_dir, reason=f"transformers cannot load it ({e})")) from e
    enc = model.get_encoder()
    del model  # the decoder goes; the encoder keeps what it shares (the embedding table)
    if layer < len(enc.layers):
        enc.layer_norm = torch.nn.Identity()
    enc.layers = enc.layers[:layer]
    return enc.eval()


def _model_files(hf_dir: Path) -> list[Path]:
    files = [hf_dir / f for f in _MODEL_FILES if (hf_dir / f).is_file()]
    files += sorted(hf_dir.glob("model-*.safetensors")) + sorted(hf_dir.glob("pytorch_model-*.bin"))
    return files


# ----------------------------------------------------------------------------- export
_PACKABLE = ("bert", "roberta", "xlm-roberta", "camembert")
_PACKED_INPUTS = ["input_ids", "position_ids", "gather_idx", "unpad_idx", "attention_mask"]


def _packable(model) -> bool:
    """A BERT-layout model (absolute positions, post-LN layers) that the packed graph can run."""
    cfg = model.config
    if cfg.model_type not in _PACKABLE or getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        return False
    emb = model.embeddings
    if not all(hasattr(emb, n) for n in ("word_embeddings", "position_embeddings", "LayerNorm")):
        return False
    return all(hasattr(lay, "attention") and hasattr(lay.attention, "self") and hasattr(lay, "intermediate")
               for lay in model.encoder.layer)


def _packed_module(model):
    """The cut encoder over packed tokens: token-wise ops (embeddings, Q/K/V, output and
    FFN projections, layer norms) run on the ``(n_tokens, hidden)`` matrix of real tokens
    only; attention alone is laid out ``(batch, heads, seq, head_dim)`` with a key mask.
    Same arithmetic as transformers' eager BERT/XLM-R layers, minus the padding rows.
    """
    import torch
    from transformers.activations import ACT2FN

    cfg, emb = model.config, model.embeddings
    hidden, heads = cfg.hidden_size, cfg.num_attention_heads
    head_dim = hidden // heads
    act = ACT2FN[cfg.hidden_act]
    scaling = head_dim**-0.5

    class _Packed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.layers = emb, model.encoder.layer

        def forward(self, input_ids, position_ids, gather_idx, unpad_idx, attention_mask):
            b, t = attention_mask.shape[0], attention_mask.shape[1]
            x = self.emb.word_embeddings(input_ids) + self.emb.position_embeddings(position_ids)
            if hasattr(self.emb, "token_type_embeddings"):
                x = x + self.emb.token_type_embeddings.weight[0]
            x = self.emb.LayerNorm(x)
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            zero = x.new_zeros(1, hidden)

            def pad(y):  # (n, hidden) -> (b, heads, t, head_dim); padding slots read the zero row
                return torch.cat([y, zero])[gather_idx].view(b, t, heads, head_dim).transpose(1, 2)

            for layer in self.layers:
                att = layer.attention
                q, k, v = pad(att.self.query(x)), pad(att.self.key(x)), pad(att.self.value(x))
                probs = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * scaling + bias, dim=-1)
                ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b * t, hidden)[unpad_idx]
                x = att.output.LayerNorm(att.output.dense(ctx) + x)
                x = layer.output.LayerNorm(layer.output.dense(act(layer.intermediate.dense(x))) + x)
            return x

    return _Packed().eval()


def _export_onnx(hf_dir: Path, layer: int, out: Path) -> bool:
    """Write ``out/model.onnx``; returns whether it is the packed graph."""
    import torch

    model = _load_cut_model(hf_dir, layer, attn="eager")
    if _packable(model):
        wrapper = _packed_module(model)
        # two rows of 5 and 3 tokens: 8 packed tokens in 10 slots, the padding slots read row 8
        mask = torch.tensor([[1] * 5, [1] * 3 + [0] * 2])
        args = (torch.full((8,), 5, dtype=torch.long), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2]),
                torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 8]), torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]), mask)
        names, axes = _PACKED_INPUTS, {"input_ids": {0: "tokens"}, "position_ids": {0: "tokens"},
                                       "gather_idx": {0: "slots"}, "unpad_idx": {0: "tokens"},
                                       "attention_mask": {0: "batch", 1: "seq"}, "hidden": {0: "tokens"}}
    else:
        takes_types = "token_type_ids" in inspect.signature(model.forward).parameters

        class _Cut(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                kw = {"token_type_ids": torch.zeros_like(input_ids)} if takes_types else {}
                return self.model(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state

        wrapper = _Cut().eval()  # the wrapper itself in eval mode, or export keeps dropout
        ids = torch.full((2, 7), 5, dtype=torch.long)
        mask = torch.ones_like(ids)
        mask[1, 5:] = 0
        args = (ids, mask)
        names, axes = ["input_ids", "attention_mask"], {"input_ids": {0: "batch", 1: "seq"},
                                                        "attention_mask": {0: "batch", 1: "seq"},
                                                        "hidden": {0: "batch", 1: "seq"}}
    # the tracer's warnings are about branches fixed for any (batch, seq) with a full-length
    # mask, which is what the runtime always passes
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(out / "model.onnx"), input_names=names, output_names=["hidden"],
                          dynamic_axes=axes, opset_version=17, dynamo=False, do_constant_folding=True)
    return wrapper.__class__.__name__ == "_Packed"


def _has_vnni() -> bool:
    """True on x86 CPUs with VNNI int8 dot products (or when the flags cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "vnni" in flags or "avx2" not in flags


def _quantize_int8(src: Path, dst: Path, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Linear weights (Gemm/MatMul with a weight) per output channel; the embedding table and
    # the attention products stay float32. Per channel matters for e5-small, whose weights
    # carry 4-bit block scales: median per-subword cosine to float32 0.983 vs 0.942 per
    # tensor on Europarl. reduce_range (7-bit weights) only where u8*s8 products would
    # saturate: AVX2 without VNNI.
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"],
                     weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range)


def _convert_float16(src: Path, dst: Path) -> None:
    """``src`` with its matrix products in float16: every MatMul and Gemm takes float16
    weights (converted once) and float16 activations (a Cast before it, shared by the products
    that read the same tensor), and its result is cast back to float32. Everything else (layer
    norms, softmax, GELU, residual sums, the attention mask's large negative bias) stays
    float32, so that half precision only touches what tensor cores accelerate. Inputs and the
    output keep their types (int64 ids in, float32 states out)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

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


def providers_for(device: str) -> list[str]:
    """ONNX Runtime providers for a device: ``cpu`` keeps to the CPU even where a GPU is,
    ``cuda`` needs ONNX Runtime's CUDA provider ([E207] when this onnxruntime lacks it),
    ``auto`` takes CUDA when present."""
    import onnxruntime as ort

    check_choice("device", device, DEVICES)
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise ParameterError(msg("E207", available=ort.get_available_providers()))
    if device == "cpu" or not has_cuda:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def export_encoder(hf_dir: str | os.PathLike, layer: int, out_dir: str | os.PathLike | None = None, *,
                   quantize: str | None = None, name: str | None = None) -> Path:
    """Export the encoder of the Hugging Face directory ``hf_dir`` cut after ``layer`` to ONNX.

    Returns a directory holding ``model.onnx``, ``tokenizer.json`` and ``xfast-encoder.json``
    (layer, limits, graph form). BERT/XLM-R layouts get the *packed* graph: int64 inputs
    ``input_ids``, ``position_ids`` and ``unpad_idx`` (slot of each real token in the padded
    batch) of shape ``(n_tokens,)``, ``gather_idx`` ``(batch * seq,)`` (packed row of each
    slot, ``n_tokens`` for padding) and ``attention_mask`` ``(batch, seq)``; output ``hidden``
    float32 ``(n_tokens, hidden)``. Other architectures: ``input_ids`` and ``attention_mask``
    ``(batch, seq)`` in, ``(batch, seq, hidden)`` out. Either way the states equal
    transformers' ``hidden_states[layer]``; :class:`Encoder` drives both. ``quantize``:
    None (float32), ``"int8"`` (dynamic quantization of the MatMul weights) or ``"float16"``
    (for GPUs: matrix products in half precision, everything else in float32). Without
    ``out_dir`` the export is cached under :func:`~xfast.models.cache.cache_dir` by content
    hash and reused. ``name``: what the notice of a new export calls the model (default: the
    directory's name; xfast's own builds live in folders named by a hash).
    """
    check_choice("quantize", quantize, _QUANTIZE)
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise ModelError(msg("E411", path=hf_dir, reason="not a directory"))
    cfg = read_config(hf_dir)
    layer = check_layer(layer, cfg, hf_dir)
    reduce_range = quantize == "int8" and not _has_vnni()
    key = content_hash(_model_files(hf_dir), extra={
        "layer": layer, "quantize": quantize, "exporter": _EXPORTER,
        "quantizer": [_QUANTIZER, reduce_range] if quantize == "int8" else
        ([_FLOAT16] if quantize == "float16" else None)})
    final = Path(out_dir) if out_dir is not None else cache_dir() / "encoders" / key
    meta_path = final / _META
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("key") == key:
        return final
    if out_dir is not None and final.exists():
        if not meta_path.is_file():
            raise ModelError(msg("E414", what=f"encoder to {final}",
                                 reason="the directory exists and is not an xfast export; choose another --out"))
        shutil.rmtree(final)
    # int8 and float16 are made from the (cached) float32 export
    fp32 = export_encoder(hf_dir, layer, name=name) if quantize else None
    if not quiet():
        print(f"xfast: exporting {name or hf_dir.name} cut after layer {layer} to ONNX"
              f"{f' ({quantize})' if quantize else ''}, once; cached in {final}", file=sys.stderr)
    with atomic_dir(final) as tmp:
        if quantize == "int8":
            _quantize_int8(fp32 / "model.onnx", tmp / "model.onnx", reduce_range)
            packed = json.loads((fp32 / _META).read_text())["packed"]
        elif quantize == "float16":
            _convert_float16(fp32 / "model.onnx", tmp / "model.onnx")
            packed = json.loads((fp32 / _META).read_text())["packed"]
        else:
            packed = _export_onnx(hf_dir, layer, tmp)
        (tmp / "tokenizer.json").write_text(load_tokenizer(hf_dir).to_str(), encoding="utf-8")
        meta = {
            "key": key, "source": str(hf_dir.resolve()), "layer": layer, "quantize": quantize,
            "model_type": cfg.get("model_type"), "hidden_size": cfg.get("hidden_size"),
            "max_length": max_length(cfg), "pad_token_id": cfg.get("pad_token_id") or 0,
            "packed": packed, "position_offset": position_offset(cfg),
            "num_hidden_layers": cfg.get("num_hidden_layers"), "intermediate_size": cfg.get("intermediate_size"),
        }
        (tmp / _META).write_text(json.dumps(meta, indent=2))
    return final


def takes_language(model: object) -> bool:
    """Whether ``model`` (an :class:`Encoder` or Aligner, a registry name or a directory) is a
    translator's encoder, which reads each sentence's language; told from the registry or the
    config, without loading the model."""
    if hasattr(model, "takes_language"):
        return bool(model.takes_language)
    if not isinstance(model, (str, os.PathLike)):
        return False
    path = Path(model).expanduser()
    if not path.is_dir():
        from xfast.models.registry import get

        try:
            return get(str(model)).kind == "translator"
        except ParameterError:
            path = resolve(model)
    path = encoder_source(path)
    if (path / "config.json").is_file():
        return read_config(path).get("model_type") in _TRANSLATORS
    meta = path / _META
    return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("model_type") in _TRANSLATORS


def _default_layer(model: str | os.PathLike, model_dir: Path) -> int:
    """The layer an encoder's states come from when none is asked for: an export's own
    layer, a translator's last (after its final layer norm), the registry's for a registered
    model, else 8 (SimAlign's)."""
    meta = model_dir / _META
    if meta.is_file() and not (model_dir / "config.json").is_file():
        return int(json.loads(meta.read_text(encoding="utf-8"))["layer"])
    if (model_dir / "config.json").is_file():
        cfg = read_config(model_dir)
        if cfg.get("model_type") in _TRANSLATORS:
            return int(cfg["num_hidden_layers"])
    if isinstance(model, str) and not Path(model).expanduser().is_dir():
        from xfast.models.registry import get

        try:
            return get(model).default_layer or 8
        except ParameterError:
            pass
    return 8


def _as_export(model_dir: Path, layer: int, backend: str, quantize: str | None) -> Path | None:
    """``model_dir`` itself when it is an xfast encoder export (``xfast models export`` or
    ``xfast models tiny`` wrote it), checked against the requested settings; else None."""
    meta_path = model_dir / _META
    if (model_dir / "config.json").is_file() or not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if backend != "onnx":
        raise ParameterError(msg("E202", name="backend", expected=f"'onnx' for the ONNX export {model_dir}",
                                 value=backend))
    if layer != meta.get("layer"):
        raise ParameterError(msg("E202", name="layer", expected=f"{meta.get('layer')} (the layer {model_dir} "
                                 "was cut after; a Hugging Face directory can be cut anywhere)", value=layer))
    if quantize != meta.get("quantize"):
        raise ParameterError(msg("E202", name="quantize", expected=f"{meta.get('quantize')!r} (how {model_dir} "
                                 "was exported)", value=quantize))
    return model_dir


def _export_config(export: Path) -> dict:
    """The model settings an encoder needs, from an export's metadata."""
    meta = json.loads((export / _META).read_text(encoding="utf-8"))
    offset = int(meta.get("position_offset", 0))
    return {"hidden_size": meta["hidden_size"], "pad_token_id": meta.get("pad_token_id"),
            "num_hidden_layers": meta.get("num_hidden_layers") or meta["layer"],
            "max_position_embeddings": int(meta["max_length"]) + offset,
            "model_type": meta.get("model_type"), "intermediate_size": meta.get("intermediate_size")}


def _default_max_tokens(cfg: dict, run: object) -> int:
    """Tokens per batch: on GPU about 1 GB of feed-forward activations (float32; 65,536
    tokens for e5-small, 21,845 for mBERT), on CPU about 6 MB (what fits the cores' caches)."""
    session = getattr(run, "session", None)
    width = 4 * int(cfg.get("intermediate_size") or 4 * cfg["hidden_size"])
    if session is not None and session.get_providers()[0] != "CPUExecutionProvider":
        return max(4096, min(65536, (1 << 30) // width))
    return max(256, (6 << 20) // width)


# ----------------------------------------------------------------------------- backends
class _OnnxBackend:
    """ONNX Runtime on an export. ``io_binding``: feed the inputs and take the output through
    an I/O binding (None: where the first provider is not the CPU), so that on a GPU each
    input is copied to the device once and the output lands straight in a host array."""

    def __init__(self, export: Path, threads: int | None, providers: Sequence[str] | None,
                 io_binding: bool | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle threads sleep instead of spinning: ORT shares the cores with torch,
        # CTranslate2 and the alignment kernels of the same pipeline
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # every batch has its own shape; ONNX Runtime would keep a memory plan per shape
        # (about 100 MB more after 60k Europarl pairs, growing with the corpus)
        so.enable_mem_pattern = False
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        else:
            unknown = [p for p in providers if p not in available]
            if unknown:
                raise ParameterError(msg("E201", name="providers", options=available, value=unknown))
        self.session = ort.InferenceSession(str(export / "model.onnx"), so, providers=list(providers))
        self.provider = self.session.get_providers()[0]
        self.io_binding = self.provider != "CPUExecutionProvider" if io_binding is None else bool(io_binding)
        self._output = self.session.get_outputs()[0].name
        meta = json.loads((export / _META).read_text())
        self.packed, self.offset = bool(meta.get("packed")), int(meta.get("position_offset", 0))
        self.pad_id = int(meta.get("pad_token_id") or 0)
        self.hidden = int(meta["hidden_size"])
        # layer 0 (embeddings only) reads no mask, and the exporter drops unused inputs
        self._inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sequences back to back (``ids`` int64 (N,), ``lengths`` int64 (B,)) -> states (N, hidden)."""
        if not self.packed:
            batch, mask = _pad(ids, lengths, self.pad_id)
            feed = {"input_ids": batch, "attention_mask": mask}
            out = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            return out[mask.astype(bool)]
        b, t = len(lengths), int(lengths.max())
        mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
        unpad = np.flatnonzero(mask.reshape(-1))
        gather = np.full(b * t, len(unpad), dtype=np.int64)
        gather[unpad] = np.arange(len(unpad))
        feed = {"input_ids": ids, "position_ids": unpad % t + self.offset,
                "gather_idx": gather, "unpad_idx": unpad, "attention_mask": mask}
        feed = {k: v for k, v in feed.items() if k in self._inputs}
        if self.io_binding:
            return self._bound(feed)
        return self.session.run(None, feed)[0]

    def _bound(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """One call through an I/O binding; the output (packed: ``(n_tokens, hidden)``, its
        shape known in advance) is written by the runtime into an array allocated here."""
        binding = self.session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        out = np.empty((len(feed["input_ids"]), self.hidden), np.float32)
        binding.bind_output(self._output, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self.session.run_with_iobinding(binding)
        return out


def _pad(ids: np.ndarray, lengths: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-to-back sequences as a padded ``(batch, seq)`` id matrix and its mask."""
    t = int(lengths.max())
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    batch = np.full(mask.shape, pad_id, dtype=np.int64)
    batch[mask.astype(bool)] = ids
    return batch, mask


class _TorchBackend:
    def __init__(self, hf_dir: Path, layer: int, threads: int | None, pad_id: int) -> None:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.model = _load_cut_model(hf_dir, layer)
        self.pad_id = pad_id

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        t = self.torch
        batch, mask = _pad(ids, lengths, self.pad_id)
        with t.inference_mode():
            out = self.model(input_ids=t.from_numpy(batch), attention_mask=t.from_numpy(mask))
        return out.last_hidden_state.float().numpy()[mask.astype(bool)]


# ----------------------------------------------------------------------------- Encoder
class Encoder:
    """Multilingual encoder returning layer-``layer`` subword states per word-split sentence.

    ``model``: a registry name (default ``"e5-small"``, the embedded aligner), a hub id, a
    local Hugging Face directory or an xfast ONNX export. ``layer``: None takes the registry's
    layer for a registered model, an export's own, else 8. ``backend``: ``"onnx"`` (ONNX Runtime on the cached export)
    or ``"torch"`` (transformers, the parity reference). ``quantize``: None, ``"int8"`` or
    ``"float16"`` (ONNX only; float16 is for GPUs, on a CPU it is slow). ``threads``: intra-op
    threads (None: the runtime's default). ``providers``: ONNX Runtime providers (default CUDA
    when present, then CPU; :func:`providers_for` maps a device to them). ``io_binding``: see
    ``_OnnxBackend`` (None: on for GPUs).
    ``max_tokens``: padded tokens per batch; None picks it by device: on CPU a batch whose
    feed-forward activations fit the cores' caches (1,024 tokens for e5-small, 512 for mBERT;
    measured 24% faster than 8,192 on e5-small), on GPU about 1 GB of activations. ``window``: longest pass in subwords, special
    tokens included (None: the model's limit); longer sentences are encoded in windows
    overlapping by half and counted in ``stats["windowed"]``. ``truncate=True`` instead keeps
    only the subwords of the first pass, as the paper's code does (docs/compat.md): later
    words get no states, and such sentences are counted in ``stats["truncated"]``.
    ``word_cache``: most words whose subword ids are kept (each word is tokenized on its
    own, so a cached word's ids equal the tokenizer's; ``stats`` reports hits and misses).

    An NLLB-200 checkpoint (a registry name such as ``"nllb-600m"``, a Hugging Face
    directory, or xfast's CTranslate2 export of one) gives its encoder; ``layer`` None takes
    the last, after the final layer norm. Such an encoder reads each sentence's language
    (:attr:`takes_language`): the ``lang`` argument of :meth:`encode` and
    :meth:`encode_subwords`, an ISO 639 or FLORES-200 code.

    The columnar path: :meth:`subwords` (a :class:`~xfast.io.columns.TokenColumns` batch to
    :class:`Subwords`) then :meth:`encode_subwords` (states of every subword, back to back).
    """

    def __init__(self, model: str | os.PathLike = "e5-small", *, layer: int | None = None, backend: str = "onnx",
                 quantize: str | None = None, threads: int | None = None,
                 providers: Sequence[str] | None = None, max_tokens: int | None = None,
                 window: int | None = None, truncate: bool = False,
                 word_cache: int = 1 << 20, io_binding: bool | None = None) -> None:
        check_choice("backend", backend, _BACKENDS)
        check_choice("quantize", quantize, _QUANTIZE)
        if quantize and backend != "onnx":
            raise ParameterError(msg("E202", name="quantize", expected="None with backend='torch'", value=quantize))
        for name, value, lo in (("threads", threads, 1), ("max_tokens", max_tokens, 1), ("window", window, 1),
                                ("word_cache", word_cache, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lo):
                raise ParameterError(msg("E202", name=name, expected=f"an int >= {lo}", value=value))
        self.model_dir = encoder_source(resolve(model))
        if layer is None:
            layer = _default_layer(model, self.model_dir)
        export = _as_export(self.model_dir, layer, backend, quantize)
        cfg = read_config(self.model_dir) if export is None else _export_config(export)
        self.layer = check_layer(layer, cfg, model)
        self.backend, self.quantize, self.max_tokens = backend, quantize, max_tokens
        self.hidden_size = int(cfg["hidden_size"])
        self.pad_id = int(cfg.get("pad_token_id") or 0)
        if backend == "onnx":
            export = export or export_encoder(self.model_dir, self.layer, quantize=quantize, name=Path(model).name)
            self._run = _OnnxBackend(export, threads, providers, io_binding)
            self.tokenizer = load_tokenizer(export)
        else:
            self._run = _TorchBackend(self.model_dir, self.layer, threads, self.pad_id)
            self.tokenizer = load_tokenizer(self.model_dir)
        self.provider = getattr(self._run, "provider", "torch")  # where the model runs
        if max_tokens is None:
            self.max_tokens = _default_max_tokens(cfg, self._run)
        #: True for a translator's encoder: each sentence starts with its language's code
        self.takes_language = cfg.get("model_type") in _TRANSLATORS
        if self.takes_language:  # as the translator reads a source: [code] subwords </s>
            eos = self.tokenizer.token_to_id("</s>")
            if eos is None:
                raise ModelError(msg("E411", path=self.model_dir, reason="the tokenizer has no </s>"))
            self._prefix, self._suffix = [eos], [eos]  # the code's slot, written per sentence
            self._codes: dict[str, int] = {}
        else:
            self._prefix, self._suffix = self._specials()
        limit = max_length(cfg)
        self.max_length = limit if window is None else min(window, limit)
        self._content = self.max_length - len(self._prefix) - len(self._suffix)
        if self._content < 2:
            raise ParameterError(msg("E202", name="window",
                                     expected=f"> {len(self._prefix) + len(self._suffix) + 1}", value=window))
        self.truncate = bool(truncate)
        self.word_cache = _word_cache(word_cache)
        self.stats = {"sentences": 0, "subwords": 0, "windowed": 0, "truncated": 0, "windows": 0,
                      "batches": 0, "word_cache_hits": 0, "word_cache_misses": 0}

    def __repr__(self) -> str:
        return (f"Encoder({str(self.model_dir)!r}, layer={self.layer}, backend={self.backend!r}, "
                f"quantize={self.quantize!r}, max_length={self.max_length})")

    def _specials(self) -> tuple[list[int], list[int]]:
        """Special token ids the post-processor puts before and after a single sentence."""
        plain = self.tokenizer.encode(["a"], is_pretokenized=True, add_special_tokens=False)
        full = self.tokenizer.post_process(plain, None, True)
        inside = [i for i, w in enumerate(full.word_ids) if w is not None]
        if not inside:
            return list(full.ids), []
        return list(full.ids[: inside[0]]), list(full.ids[inside[-1] + 1 :])

    def _windows(self, n: int) -> list[tuple[int, int, int, int]]:
        """(start, end, own_start, own_end) of each pass over ``n`` content subwords."""
        size = self._content
        if n <= size:
            return [(0, n, 0, n)]
        step = size // 2
        starts = list(range(0, n - size, step)) + [n - size]
        out = []
        for k, s in enumerate(starts):
            own_a = 0 if k == 0 else (s + starts[k - 1] + size) // 2
            own_b = n if k == len(starts) - 1 else (starts[k + 1] + s + size) // 2
            out.append((s, s + size, own_a, own_b))
        return out

    def language_ids(self, lang: str | Sequence[str] | None, n: int) -> np.ndarray | None:
        """Vocabulary ids of the language codes of ``n`` sentences (``lang``: one code for all,
        or one per sentence); None for an encoder that takes no language. Raises
        :class:`~xfast.errors.ParameterError` [E415] when a translator's encoder gets no
        language and [E402] for a language NLLB-200 lacks, and
        :class:`~xfast.errors.ModelError` [E434] for a code missing from the vocabulary."""
        if not self.takes_language:
            return None
        if lang is None:
            raise ParameterError(msg("E415", model=self.model_dir,
                                     how="lang= (on the command line: each side's language)"))
        from xfast.models.flores import flores_code

        langs = [lang] if isinstance(lang, str) else list(lang)
        if not isinstance(lang, str) and len(langs) != n:
            raise ParameterError(msg("E202", name="lang", expected=f"one language or {n}",
                                     value=f"{len(langs)} languages"))
        for code in set(langs) - set(self._codes):
            flores = flores_code(code)
            i = self.tokenizer.token_to_id(flores)
            if i is None:
                raise ModelError(msg("E434", code=flores, lang=code, path=str(self.model_dir)))
            self._codes[code] = i
        if isinstance(lang, str):  # one language for the batch (the pipelines' case)
            return np.full(n, self._codes[lang], np.int64)
        return np.array([self._codes[c] for c in langs], np.int64)

    def encode(self, sentences: Sequence[Sequence[str]], *, lang: str | Sequence[str] | None = None) -> list[Encoded]:
        """Encode word-split sentences; returns one :class:`Encoded` per sentence, in order.
        ``lang``: the sentences' language (one code, or one per sentence), read only by a
        translator's encoder (:attr:`takes_language`)."""
        if isinstance(sentences, (str, bytes)) or any(isinstance(s, (str, bytes)) for s in sentences):
            raise ParameterError(msg("E202", name="sentences", expected="a list of word lists", value=type(sentences).__name__))
        sentences = [list(s) for s in sentences]
        for i, s in enumerate(sentences):
            if not all(isinstance(w, str) for w in s):
                raise ParameterError(msg("E303", index=i, problem="every word must be a str"))
        from xfast.io.columns import from_sentences

        sub = self.subwords(from_sentences(sentences))
        states = self.encode_subwords(sub, lang=lang).sentences()
        off = sub.offsets.tolist()
        return [Encoded(st, sub.word_ids[off[i]:off[i + 1]]) for i, st in enumerate(states)]

    def subwords(self, cols) -> Subwords:
        """Subword ids of a :class:`~xfast.io.columns.TokenColumns` batch, each word
        tokenized on its own through the per-word cache (the same ids as the tokenizer on
        the whole pre-split sentence). With ``truncate`` only each sentence's first pass is
        kept (counted in ``stats["truncated"]``)."""
        ids, word_ids, offsets = self.word_cache.subwords(cols.text, cols.tok_off, cols.sent_off,
                                                          self._tokenize_words)
        if self.truncate:
            lengths = np.diff(offsets)
            over = lengths > self._content
            if over.any():
                self.stats["truncated"] += int(over.sum())
                keep = np.arange(len(ids)) - np.repeat(offsets[:-1], lengths) < self._content
                ids, word_ids = ids[keep], word_ids[keep]
                offsets = np.concatenate([[0], np.cumsum(np.minimum(lengths, self._content))])
        self.stats["sentences"] += len(cols)
        self.stats["subwords"] += len(ids)
        self.stats["word_cache_hits"] = int(self.word_cache.hits)
        self.stats["word_cache_misses"] = int(self.word_cache.misses)
        return Subwords(ids, word_ids, offsets)

    def _tokenize_words(self, words: list[str]) -> list[list[int]]:
        # a word alone as plain text goes through the same normalizer and pre-tokenizer as
        # one pre-split word, for about half the cost (tests/test_wordcache.py holds the ids
        # equal to whole pre-split sentences)
        return [e.ids for e in self.tokenizer.encode_batch(words, add_special_tokens=False)]

    def encode_subwords(self, sub: Subwords, *, lang: str | Sequence[str] | None = None, transform=None,
                        on_batch=None) -> States:
        """Layer-L states of every subword of ``sub`` (special tokens dropped; over-long
        sentences through windows), left where the model wrote them (:class:`States`).

        ``transform``: a row-wise function applied to each of the model's outputs as soon as
        it is written (while it is in the CPU's caches; it may work in place), e.g.
        :func:`xfast.align.unit_rows_inplace`; the result then holds the transformed states
        (``States.transform`` names it). ``on_batch(n)`` is called after each model call with
        the number of passes it ran (about one per sentence), for progress bars. ``lang``: as
        in :meth:`encode`."""
        codes = self.language_ids(lang, len(sub))
        offsets = sub.offsets
        lengths = np.diff(offsets)
        # passes: (sentence, start, end, own_start, own_end)
        long = np.flatnonzero(lengths > self._content).tolist()
        if not long:
            nz = np.flatnonzero(lengths)
            passes = np.zeros((len(nz), 5), np.int64)
            passes[:, 0] = nz
            passes[:, 2] = passes[:, 4] = lengths[nz]
        else:
            rows = []
            for i, n in enumerate(lengths.tolist()):
                if n:
                    w = self._windows(n)
                    self.stats["windowed"] += len(w) > 1
                    rows.extend((i, *p) for p in w)
            passes = np.array(rows, np.int64).reshape(-1, 5)
        blocks, at = self._run_passes(sub.ids, offsets, passes, transform, on_batch, codes)
        where = np.zeros((len(lengths), 2), np.int64)
        single = np.ones(len(passes), bool)
        if long:  # a windowed sentence's rows, stitched from its passes' own ranges
            stitched, n_rows = [], 0
            for i in long:
                mine = np.flatnonzero(passes[:, 0] == i)
                single[mine] = False
                parts = [blocks[at[p, 0]][at[p, 1] + passes[p, 3] - passes[p, 1]:
                                          at[p, 1] + passes[p, 4] - passes[p, 1]] for p in mine]
                where[i] = (len(blocks), n_rows)
                n_rows += sum(len(x) for x in parts)
                stitched.extend(parts)
            blocks.append(np.concatenate(stitched))
        where[passes[single, 0]] = at[single]
        self.stats["windows"] += len(passes)
        if not blocks:
            empty = np.zeros((0, self.hidden_size), np.float32)
            blocks = [transform(empty) if transform else empty]
        return States(blocks, where, offsets, transform)

    def _run_passes(self, ids: np.ndarray, offsets: np.ndarray, passes: np.ndarray,
                    transform=None, on_batch=None, codes: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Run every pass; returns the model's outputs and, per pass, (output, row of its
        first subword). ``codes``: each sentence's first token (its language code), written
        over the prefix."""
        pre, suf = np.asarray(self._prefix, np.int64), np.asarray(self._suffix, np.int64)
        extra = len(pre) + len(suf)
        lengths = passes[:, 2] - passes[:, 1] + extra
        order = np.argsort(lengths, kind="stable")
        sorted_len = lengths[order].tolist()
        starts = passes[:, 1] + offsets[passes[:, 0]]
        blocks: list[np.ndarray] = []
        at = np.zeros((len(passes), 2), np.int64)
        k = 0
        while k < len(order):
            # sorted ascending: the batch's padded length is its last row's length
            j = k + 1
            while j < len(order) and (j - k + 1) * sorted_len[j] <= self.max_tokens:
                j += 1
            rows = order[k:j]
            row_len = lengths[rows]
            batch, first = _pack.pack(ids, starts[rows], row_len - extra, pre, suf)
            if codes is not None:
                batch[first - 1] = codes[passes[rows, 0]]
            at[rows, 0] = len(blocks)
            at[rows, 1] = first
            out = self._run(batch, row_len)
            blocks.append(transform(out) if transform else out)
            self.stats["batches"] += 1
            if on_batch is not None:
                on_batch(len(rows))
            k = j
        return blocks, at
