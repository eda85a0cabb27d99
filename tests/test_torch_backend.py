"""The encoder on torch (xfast/models/backends/torch.py), as far as a CPU checks it.

The packed layers (only real tokens through the linear layers, fused query/key/value, attention
over a key mask) against three references: transformers' full model one sentence at a time with
``hidden_states[L]`` (the oracle, sharing no code with xfast), the same backend on padded
batches through transformers' own layers, and the ONNX export. On the tiny XLM-R and mBERT and
on e5-small (layer 8), float32 on a CPU: within 1e-5. Then the reduced-precision path (bfloat16
stands in for a GPU's float16), batching and the queued call, running out of GPU memory (the
batch is split), the choice of backend, device and precision, the tagger on the same backend and
the command-line options. Tests marked ``cuda`` need torch with a CUDA GPU and skip elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests._pipeline_helpers import europarl_path, head_conll
from xfast.errors import ModelError, ParameterError
from xfast.io import read_conll

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from xfast.models import backends  # noqa: E402
from xfast.models.encoder import Encoder, load_tokenizer  # noqa: E402

SENTS = [s.tokens for _, s in zip(range(40), read_conll(europarl_path("en")))]
DE = [s.tokens for _, s in zip(range(40), read_conll(europarl_path("de")))]
CUDA = torch.cuda.is_available()


def cuda(test):
    """Marked ``cuda`` (``pytest -m cuda`` selects them) and skipped where torch sees no GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not CUDA, reason="needs torch with a CUDA GPU")(test))


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """A tiny XLM-R and mBERT built here, for the GPU tests: the session's ``tiny_models`` also
    export an NLLB to CTranslate2, which a GPU machine may lack (docs/gpu.md)."""
    from xfast.testing._tinybuild import _build_mbert, _build_xlmr
    from xfast.testing.tiny import tiny_corpus

    out, lines = tmp_path_factory.mktemp("small"), tiny_corpus()
    return {"xlmr": _build_xlmr(out / "xlmr", lines, layers=4, labels=None, seed=0),
            "mbert": _build_mbert(out / "mbert", lines, seed=0)}


def _oracle(hf_dir, sents, layer):
    """transformers' full model, one sentence at a time, no padding: ``hidden_states[layer]``."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(hf_dir), attn_implementation="eager").eval()
    tok = load_tokenizer(hf_dir)
    out = []
    for ws in sents:
        e = tok.encode(ws, is_pretokenized=True)
        keep = [k for k, w in enumerate(e.word_ids) if w is not None]
        with torch.inference_mode():
            hs = model(torch.tensor([e.ids]), output_hidden_states=True).hidden_states[layer][0]
        out.append(hs[keep].numpy())
    return out


def _max_diff(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", ["xlmr", "mbert"])
@pytest.mark.parametrize("layer", [0, 2, 8])
def test_packed_states_equal_transformers_padded_and_onnx(tiny_models, kind, layer):
    enc = Encoder(tiny_models[kind], layer=layer, backend="torch", device="cpu")
    assert enc._run.packed and enc._run.attention == "sdpa" and enc.provider == "torch:cpu"
    assert enc.precision == "float32" and enc.device == "cpu"
    got = [e.states for e in enc.encode(SENTS)]
    assert _max_diff(got, _oracle(tiny_models[kind], SENTS, layer)) < 1e-5
    padded = Encoder(tiny_models[kind], layer=layer, backend="torch", device="cpu")
    padded._run = type(enc._run)(tiny_models[kind], layer, None, padded.pad_id, position_offset=enc._position_offset,
                                 packed=False)
    assert not padded._run.packed
    assert _max_diff(got, [e.states for e in padded.encode(SENTS)]) < 1e-5
    onnx = Encoder(tiny_models[kind], layer=layer, backend="onnx")
    assert _max_diff(got, [e.states for e in onnx.encode(SENTS)]) < 1e-5


def test_e5_small_packed_states_equal_transformers():
    enc = Encoder("e5-small", backend="torch", device="cpu")
    assert enc.layer == 8 and enc._run.packed
    got = [e.states for e in enc.encode(SENTS[:24])]
    assert _max_diff(got, _oracle(enc.model_dir, SENTS[:24], 8)) < 1e-5


def test_batches_and_the_queued_call_give_the_same_states(tiny_models):
    enc = Encoder(tiny_models["xlmr"], layer=2, backend="torch", device="cpu")
    one_each = Encoder(tiny_models["xlmr"], layer=2, backend="torch", device="cpu", max_tokens=1)
    for x, y in zip(enc.encode(SENTS), one_each.encode(SENTS)):
        np.testing.assert_allclose(x.states, y.states, atol=1e-5, rtol=0)
    ids = np.array([0, 5, 6, 7, 2, 0, 8, 2], np.int64)
    lengths = np.array([5, 3], np.int64)
    call = enc._run(ids, lengths)
    queued = enc._run.submit(ids, lengths).result()
    kept = enc._run.submit(ids, lengths, on_device=True).result()
    assert isinstance(kept, torch.Tensor) and kept.dtype == torch.float32
    np.testing.assert_array_equal(call, queued)
    np.testing.assert_array_equal(call, kept.numpy())


def test_bfloat16_runs_the_reduced_precision_path(tiny_models):
    fp32 = Encoder(tiny_models["xlmr"], layer=2, backend="torch", device="cpu")
    bf16 = Encoder(tiny_models["xlmr"], layer=2, backend="torch", device="cpu", quantize="bfloat16")
    assert bf16.precision == "bfloat16" and bf16.quantize == "bfloat16"
    assert next(bf16._run.module.parameters()).dtype == torch.bfloat16
    for x, y in zip(fp32.encode(SENTS), bf16.encode(SENTS)):
        assert y.states.dtype == np.float32
        cos = (x.states * y.states).sum(1) / np.linalg.norm(x.states, axis=1) / np.linalg.norm(y.states, axis=1)
        assert cos.min() > 0.98


def test_out_of_memory_splits_the_batch(tiny_models, monkeypatch):
    enc = Encoder(tiny_models["mbert"], layer=2, backend="torch", device="cpu")
    want = [e.states for e in enc.encode(SENTS)]
    run = enc._run
    real = run._forward
    calls = []

    def tight(ids, lengths):
        calls.append(len(lengths))
        if len(lengths) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(ids, lengths)

    monkeypatch.setattr(run, "_forward", tight)
    assert _max_diff(want, [e.states for e in enc.encode(SENTS)]) < 1e-5
    assert max(calls) > 3 and any(c <= 3 for c in calls)
    monkeypatch.setattr(run, "_forward", lambda ids, lengths: (_ for _ in ()).throw(
        torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")))
    with pytest.raises(ModelError, match=r"\[E442\].*one sequence of 4 tokens"):
        run(np.array([0, 5, 6, 2], np.int64), np.array([4], np.int64))


def test_backend_device_and_precision_are_chosen_before_a_model_loads(monkeypatch):
    assert backends.resolve_backend(None, "cpu") == "onnx"
    assert backends.resolve_backend("torch", "cpu") == "torch"
    assert backends.resolve_backend(None, "cuda", export=True) == "onnx"
    assert backends.resolve_backend(None, "auto", quantize="int8") == "onnx"
    assert backends.resolve_precision("torch", None, True) == "float16"
    assert backends.resolve_precision("torch", None, False) == "float32"
    assert backends.resolve_precision("onnx", None, True) == "float32"
    with pytest.raises(ParameterError, match=r"\[E202\].*quantize.*backend='torch'.*'int8'"):
        backends.resolve_precision("torch", "int8", False)
    with pytest.raises(ParameterError, match=r"\[E202\].*quantize.*backend='onnx'.*'bfloat16'"):
        backends.resolve_precision("onnx", "bfloat16", False)
    assert backends.device_of(None) == "auto"
    assert backends.device_of(["CUDAExecutionProvider", "CPUExecutionProvider"]) == "cuda"
    if not CUDA:
        assert backends.resolve_backend(None, "cuda") == "onnx"  # torch sees no GPU here
        assert backends.torch_cuda() is not None
        with pytest.raises(ParameterError, match=r"\[E230\] --device cuda: torch cannot use a CUDA GPU"):
            backends.providers_for("cuda")
    # where torch sees a GPU, auto and cuda run the encoder there (its device is not touched here)
    monkeypatch.setattr(backends, "torch_cuda", lambda probe=True: None)
    assert backends.resolve_backend(None, "cuda") == "torch"
    assert backends.resolve_backend(None, "auto") == "torch"
    assert backends.providers_for("cuda")[0] == "CUDAExecutionProvider"


def test_onnx_backend_refuses_a_gpu_only_torch_can_use(tiny_models, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ParameterError, match=r"\[E207\].*onnxruntime-gpu.*--backend torch"):
        Encoder(tiny_models["xlmr"], layer=2, backend="onnx", device="cuda")
    with pytest.raises(ParameterError, match=r"\[E207\]"):
        Encoder(tiny_models["xlmr"], layer=2, backend="onnx", providers=["CUDAExecutionProvider",
                                                                           "CPUExecutionProvider"])
    auto = Encoder(tiny_models["xlmr"], layer=2, backend="onnx", device="auto",
                   providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert auto.provider == "CPUExecutionProvider"  # auto: the GPU was torch's, ONNX Runtime stays on the CPU
    if not CUDA:
        with pytest.raises(ParameterError, match=r"\[E230\]"):
            Encoder(tiny_models["xlmr"], layer=2, backend="torch", device="cuda")


def test_attention_kernel_is_detected():
    from xfast.models.backends._packed import varlen_reason

    assert varlen_reason(torch.device("cpu"), torch.float16, 32) in (
        "not on CUDA", f"torch {torch.__version__} has no torch.nn.attention.varlen")
    if not CUDA:
        return
    assert "float32" in varlen_reason(torch.device("cuda"), torch.float32, 32)


def test_tagger_on_torch_labels_as_the_onnx_tagger(tiny_models):
    from xfast.models.tagger import Tagger

    onnx = Tagger(tiny_models["ner_onnx"]).tag(SENTS + DE)
    pt = Tagger(tiny_models["ner"], backend="torch", device="cpu")
    assert pt.backend == "torch" and pt.precision == "float32" and pt.device == "cpu"
    assert pt.tag(SENTS + DE) == onnx
    assert Tagger(tiny_models["ner"], backend=None, device="cpu").backend == "onnx"


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "xfast", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.parametrize("args, code", [
    (["--backend", "torch", "--quantize", "int8"], "E202"),
    (["--backend", "onnx", "--quantize", "bfloat16"], "E202"),
    (["--backend", "tf"], None),
])
def test_bad_backend_options_exit_2_without_a_traceback(tmp_path, tiny_models, args, code):
    en = head_conll(europarl_path("en"), 3, tmp_path / "en.conll")
    de = head_conll(europarl_path("de"), 3, tmp_path / "de.conll")
    got = _cli("project", "--labeled", str(en), "--receiving", f"de={de}", "--out", str(tmp_path / "o"),
               "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--device", "cpu", "--quiet", *args)
    assert got.returncode == 2 and got.stderr.startswith("xfast: error:") and "Traceback" not in got.stderr
    if code:
        assert f"[{code}]" in got.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_project_on_torch_records_its_runtime(tmp_path, tiny_models):
    en = head_conll(europarl_path("en"), 12, tmp_path / "en.conll")
    de = head_conll(europarl_path("de"), 12, tmp_path / "de.conll")
    outs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend
        got = _cli("project", "--labeled", str(en), "--receiving", f"de={de}", "--out", str(out), "--aligner",
                   str(tiny_models["xlmr"]), "--layer", "2", "--device", "cpu", "--backend", backend, "--quiet")
        assert got.returncode == 0, got.stderr[-2000:]
        outs[backend] = (out / "de.heuristic.conll").read_text()
        man = json.loads((out / "manifest.json").read_text())
        if backend == "torch":
            assert man["aligner"]["provider"] == "torch:cpu" and man["aligner"]["dtype"] == "float32"
            assert man["aligner"]["backend"] == "torch" and man["aligner"]["extraction"] == "host"
        else:
            assert "backend" not in man["aligner"]  # ONNX runs keep their settings (and run keys)
    assert outs["torch"] == outs["onnx"]


@cuda
def test_cuda_float16_states_close_to_cpu_float32(small_models):
    cpu = Encoder(small_models["xlmr"], layer=2, backend="torch", device="cpu")
    gpu = Encoder(small_models["xlmr"], layer=2, backend="torch", device="cuda")
    assert gpu.precision == "float16" and gpu.provider == "torch:cuda"
    assert Encoder(small_models["xlmr"], layer=2).backend == "torch"  # the default where torch sees a GPU
    for x, y in zip(cpu.encode(SENTS), gpu.encode(SENTS)):
        cos = (x.states * y.states).sum(1) / np.linalg.norm(x.states, axis=1) / np.linalg.norm(y.states, axis=1)
        assert cos.min() > 0.99
    fp32 = Encoder(small_models["xlmr"], layer=2, backend="torch", device="cuda", quantize="float32")
    assert _max_diff([e.states for e in cpu.encode(SENTS)], [e.states for e in fp32.encode(SENTS)]) < 1e-4


@cuda
def test_cuda_packed_kernels_and_compile(small_models):
    """On the GPU: the variable-length kernel where this torch and GPU have it, the SDPA path
    otherwise, and torch.compile, all close to float32 on the CPU; the queued copy back to the
    host gives the states the call gives."""
    cpu = [e.states for e in Encoder(small_models["mbert"], layer=2, backend="torch", device="cpu").encode(SENTS)]
    for kw in ({}, {"compile": True}):
        gpu = Encoder(small_models["mbert"], layer=2, backend="torch", device="cuda", quantize="bfloat16", **kw)
        assert gpu._run.attention in ("varlen", "sdpa")
        assert gpu._run.attention == "varlen" or gpu._run.attention_note
        for x, y in zip(cpu, gpu.encode(SENTS)):
            cos = (x * y.states).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y.states, axis=1)
            assert cos.min() > 0.98
    run = Encoder(small_models["mbert"], layer=2, backend="torch", device="cuda")._run
    ids, lengths = np.array([101, 5, 6, 7, 102, 101, 8, 102], np.int64), np.array([5, 3], np.int64)
    handles = [run.submit(ids, lengths) for _ in range(3)]
    np.testing.assert_array_equal(handles[0].result(), run(ids, lengths))
    assert all(np.array_equal(h.result(), handles[0].result()) for h in handles)


@cuda
def test_cuda_tagger_on_torch(small_models, tmp_path):
    from transformers import AutoModelForTokenClassification

    from xfast.models.tagger import Tagger

    d = tmp_path / "ner"
    model = AutoModelForTokenClassification.from_pretrained(str(small_models["xlmr"]), num_labels=3,
                                                            id2label={0: "O", 1: "B-PER", 2: "I-PER"})
    model.save_pretrained(str(d))
    for f in small_models["xlmr"].iterdir():  # the tokenizer's files
        if f.is_file() and not (d / f.name).exists():
            (d / f.name).write_bytes(f.read_bytes())
    cpu = Tagger(d, backend="torch", device="cpu").tag(SENTS)
    gpu = Tagger(d, backend="torch", device="cuda", precision="float32")
    assert gpu.device == "cuda"
    assert sum(a == b for a, b in zip(cpu, gpu.tag(SENTS))) >= len(SENTS) - 1


@pytest.mark.parametrize("asked", [{}, {"quantize": "bfloat16", "extraction": "host"}])
def test_ray_actors_resolve_the_number_format_on_their_own_device(tiny_models, asked):
    """Under Ray the driver loads the aligner on the CPU (float32, host extraction); the actors
    get what the user asked for (None: their own device decides, float16 and device extraction
    on a GPU), never the driver's CPU choices."""
    from xfast.pipelines.parallel import _aligner
    from xfast.pipelines.qa import RunReport

    kwargs = {"model": str(tiny_models["xlmr"]), "layer": 2, "backend": "torch", **asked}
    driver, _, actors = _aligner(kwargs, "ray", "auto", "en", ["de"], RunReport())
    assert driver.settings["quantize"] == asked.get("quantize", "float32")
    assert driver.settings["extraction"] == "host"
    assert actors == {**driver.settings, "quantize": asked.get("quantize"), "extraction": asked.get("extraction")}
    _, _, local = _aligner(kwargs, "local", "cpu", "en", ["de"], RunReport())
    assert local == {**driver.settings, "quantize": asked.get("quantize"), "extraction": asked.get("extraction")}
