"""Export an encoder to ONNX: a Hugging Face checkpoint cut after layer ``L``, as the runtime runs it.

:func:`export_encoder` writes an ONNX graph cut after layer ``L`` (only layers 1..L are computed;
its output equals transformers' ``hidden_states[L]``), optionally int8 or float16
(:mod:`xfast.models.export.quantize`), into a cache directory keyed by the model files' hashes and
the package versions; :class:`~xfast.models.encoder.Encoder` runs it through
:class:`~xfast.models.backends.onnx.OnnxBackend`. An NLLB-200 (M2M100) checkpoint gives its
encoder, cut the same way.

For BERT and XLM-R layouts the exported graph is *packed*: the token-wise work (embeddings,
projections, FFN, layer norms; about 85% of the time) runs on the real tokens only and only
attention sees the padded ``(batch, seq)`` layout, so padding costs attention, not matmuls.

torch and transformers are imported here, at the top, and nowhere else in the encoder's export;
this module is imported only when an export is built (or by the torch backend, which runs
:func:`load_cut_model`), never by ``import xfast``.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from xfast.errors import ModelError, check_choice, msg
from xfast.models._layout import packable
from xfast.models.cache import atomic_dir, cache_dir, content_hash, quiet
from xfast.models.export.quantize import convert_float16, has_vnni, quantize_int8
from xfast.models.modeldir import (ENCODER_META, ENCODER_QUANTIZE, TRANSLATORS, check_layer, load_tokenizer,
                                   max_length, position_offset, read_config)

try:  # the export toolchain; a missing package is raised when a model is loaded (load_cut_model)
    import torch
    from transformers import AutoModel, AutoModelForSeq2SeqLM
    from transformers.activations import ACT2FN
except ModuleNotFoundError as _err:
    _MISSING: ModuleNotFoundError | None = _err
else:
    _MISSING = None

__all__ = ["export_encoder", "load_cut_model"]

_EXPORTER = 2  # bump when the exported graph changes
_QUANTIZER = 2  # bump when the int8 recipe changes
_FLOAT16 = 1  # bump when the float16 recipe changes
# files that define a model; anything else in a hub snapshot (README, .gitattributes,
# other formats) must not change the export's key
_MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model",
                "spiece.model", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json")


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
    transformers' ``hidden_states[layer]``; :class:`~xfast.models.encoder.Encoder` drives both. ``quantize``:
    None (float32), ``"int8"`` (dynamic quantization of the MatMul weights) or ``"float16"``
    (for GPUs: matrix products in half precision, everything else in float32). Without
    ``out_dir`` the export is cached under :func:`~xfast.models.cache.cache_dir` by content
    hash and reused. ``name``: what the notice of a new export calls the model (default: the
    directory's name; xfast's own builds live in folders named by a hash).
    """
    check_choice("quantize", quantize, ENCODER_QUANTIZE)
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise ModelError(msg("E411", path=hf_dir, reason="not a directory"))
    cfg = read_config(hf_dir)
    layer = check_layer(layer, cfg, hf_dir)
    reduce_range = quantize == "int8" and not has_vnni()
    key = content_hash(_model_files(hf_dir), extra={
        "layer": layer, "quantize": quantize, "exporter": _EXPORTER,
        "quantizer": [_QUANTIZER, reduce_range] if quantize == "int8" else
        ([_FLOAT16] if quantize == "float16" else None)})
    final = Path(out_dir) if out_dir is not None else cache_dir() / "encoders" / key
    meta_path = final / ENCODER_META
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
            quantize_int8(fp32 / "model.onnx", tmp / "model.onnx", reduce_range)
            packed = json.loads((fp32 / ENCODER_META).read_text())["packed"]
        elif quantize == "float16":
            convert_float16(fp32 / "model.onnx", tmp / "model.onnx")
            packed = json.loads((fp32 / ENCODER_META).read_text())["packed"]
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
        (tmp / ENCODER_META).write_text(json.dumps(meta, indent=2))
    return final


def _model_files(hf_dir: Path) -> list[Path]:
    files = [hf_dir / f for f in _MODEL_FILES if (hf_dir / f).is_file()]
    files += sorted(hf_dir.glob("model-*.safetensors")) + sorted(hf_dir.glob("pytorch_model-*.bin"))
    return files


def load_cut_model(hf_dir: Path, layer: int, attn: str | None = None):
    """transformers base model with ``encoder.layer`` cut after ``layer``, in eval mode."""
    if _MISSING is not None:  # torch or transformers is not installed
        raise _MISSING
    kw = {"attn_implementation": attn} if attn else {}
    if read_config(hf_dir).get("model_type") in TRANSLATORS:
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


# ----------------------------------------------------------------------------- the graph
_PACKED_INPUTS = ["input_ids", "position_ids", "gather_idx", "unpad_idx", "attention_mask"]


def _packed_module(model):
    """The cut encoder over packed tokens: token-wise ops (embeddings, Q/K/V, output and
    FFN projections, layer norms) run on the ``(n_tokens, hidden)`` matrix of real tokens
    only; attention alone is laid out ``(batch, heads, seq, head_dim)`` with a key mask.
    Same arithmetic as transformers' eager BERT/XLM-R layers, minus the padding rows.
    """
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
    model = load_cut_model(hf_dir, layer, attn="eager")
    if packable(model):
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

