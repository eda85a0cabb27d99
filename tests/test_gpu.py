"""The ONNX Runtime side of the GPU path, as far as it can be checked without a GPU: the float16
encoder export (its graph, and states close to float32's), output binding, device and provider
selection, the token budget, and what the manifest records. Tests marked ``cuda`` run only where
ONNX Runtime has its CUDA provider (``pip install "xfast[gpu]"`` on a machine with a GPU);
elsewhere they skip. The torch side: tests/test_torch_backend.py and tests/test_device_align.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests._pipeline_helpers import europarl_path, head_conll
from xfast.errors import ParameterError
from xfast.io import read_conll

onnx = pytest.importorskip("onnx")


def _cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def cuda(test):
    """Marked ``cuda`` (``pytest -m cuda`` selects them) and skipped without a GPU runtime."""
    return pytest.mark.cuda(pytest.mark.skipif(not _cuda(), reason="needs ONNX Runtime's CUDA provider and a GPU")(test))

SENTS = [s.tokens for _, s in zip(range(24), read_conll(europarl_path("en")))]
DE = [s.tokens for _, s in zip(range(24), read_conll(europarl_path("de")))]


@pytest.fixture(scope="module")
def fp16_export(tiny_models):
    from xfast.models.encoder import export_encoder

    return export_encoder(tiny_models["xlmr"], 2, quantize="float16")


def test_float16_graph_keeps_norms_and_softmax_in_float32(fp16_export):
    """Matrix products in float16 (weights stored so), everything else in float32."""
    from onnx import TensorProto, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(fp16_export / "model.onnx")))
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    products = [n for n in g.node if n.op_type in ("MatMul", "Gemm")]
    assert products
    for node in products:
        assert all(types[i] == TensorProto.FLOAT16 for i in node.input if i), node.name
    weights = [i for n in products for i in n.input if i in {t.name for t in g.initializer}]
    assert weights  # the linear layers' weights are float16 initializers
    kept = [n for n in g.node if n.op_type in ("LayerNormalization", "Softmax", "Erf")]
    assert kept
    for node in kept:
        assert all(types.get(i, TensorProto.FLOAT) == TensorProto.FLOAT for i in node.input if i), node.name
    assert [i.type.tensor_type.elem_type for i in g.output] == [TensorProto.FLOAT]  # the caller sees float32
    meta = json.loads((fp16_export / "xfast-encoder.json").read_text())
    assert meta["quantize"] == "float16"


def test_float16_states_and_pairs_close_to_float32(tiny_models, fp16_export):
    from xfast.aligner import Aligner

    fp32 = Aligner(tiny_models["xlmr"], layer=2, backend="onnx")
    fp16 = Aligner(tiny_models["xlmr"], layer=2, backend="onnx", quantize="float16")
    a, b = fp32.encode(SENTS), fp16.encode(SENTS)
    for x, y in zip(a, b):
        cos = (x.states * y.states).sum(1) / np.linalg.norm(x.states, axis=1) / np.linalg.norm(y.states, axis=1)
        assert cos.min() > 0.995
    pa, pb = fp32.align_batch(SENTS, DE), fp16.align_batch(SENTS, DE)
    same = sum(len({tuple(p) for p in x} & {tuple(p) for p in y}) for x, y in zip(pa, pb))
    total = sum(len(x) for x in pa)
    assert same >= 0.95 * total


def test_output_binding_gives_the_same_states(tiny_models):
    """The path a GPU takes (inputs and the output bound to buffers of their own) equals
    ``session.run`` bit for bit; on the CPU provider both run here."""
    from xfast.models.encoder import Encoder

    plain = Encoder(tiny_models["xlmr"], layer=2, backend="onnx", io_binding=False)
    bound = Encoder(tiny_models["xlmr"], layer=2, backend="onnx", io_binding=True)
    for x, y in zip(plain.encode(SENTS), bound.encode(SENTS)):
        assert np.array_equal(x.states, y.states) and np.array_equal(x.word_ids, y.word_ids)


def test_device_chooses_the_providers(monkeypatch):
    import onnxruntime as ort

    from xfast.models import backends
    from xfast.models.encoder import providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(backends, "torch_cuda", lambda probe=True: "torch sees no CUDA device (test)")
    assert providers_for("auto") == ["CPUExecutionProvider"]
    # no runtime can use a GPU: the message names both ways to get one
    with pytest.raises(ParameterError, match=r"E230.*torch sees no CUDA device.*onnxruntime has no CUDA provider"):
        providers_for("cuda")
    # torch can: the GPU is asked for; the ONNX backend refuses it ([E207], tests/test_torch_backend.py)
    monkeypatch.setattr(backends, "torch_cuda", lambda probe=True: None)
    assert providers_for("cuda") == providers_for("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert providers_for("auto") == providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ParameterError, match="E201"):
        providers_for("tpu")


def test_token_budget_is_larger_on_a_gpu():
    from xfast.models.encoder import _default_max_tokens

    class Session:
        def __init__(self, first):
            self.first = first

        def get_providers(self):
            return [self.first, "CPUExecutionProvider"]

    class Run:
        def __init__(self, first):
            self.session = Session(first)

    cfg = {"hidden_size": 384, "intermediate_size": 1536}
    cpu, gpu = _default_max_tokens(cfg, Run("CPUExecutionProvider")), _default_max_tokens(cfg, Run("CUDAExecutionProvider"))
    assert cpu <= 1024 < gpu


def test_manifest_and_run_record_device_provider_and_dtype(tmp_path, tiny_models):
    from xfast.aligner import Aligner
    from xfast.pipelines.parallel import project_parallel

    en = head_conll(europarl_path("en"), 8, tmp_path / "en.conll")
    de = head_conll(europarl_path("de"), 8, tmp_path / "de.conll")
    res = project_parallel(en, {"de": de}, tmp_path / "out",
                           aligner=Aligner(tiny_models["xlmr"], layer=2, backend="onnx"),
                           progress=False)
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["aligner"]["provider"] == "CPUExecutionProvider" and man["aligner"]["dtype"] == "float32"
    run = res["run"]
    assert 0 < run["model_busy_share"] <= 1


@cuda
def test_cuda_encoder_matches_cpu(tiny_models):
    from xfast.aligner import Aligner

    cpu = Aligner(tiny_models["xlmr"], layer=2, backend="onnx", providers=["CPUExecutionProvider"])
    gpu = Aligner(tiny_models["xlmr"], layer=2, backend="onnx",
                  providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu.encoder.provider == "CUDAExecutionProvider"
    for x, y in zip(cpu.encode(SENTS), gpu.encode(SENTS)):
        assert np.allclose(x.states, y.states, atol=1e-3)


@cuda
def test_cuda_float16_pairs_close_to_float32(tiny_models):
    from xfast.aligner import Aligner

    gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    a = Aligner(tiny_models["xlmr"], layer=2, backend="onnx", providers=gpu).align_batch(SENTS, DE)
    b = Aligner(tiny_models["xlmr"], layer=2, backend="onnx", providers=gpu,
                quantize="float16").align_batch(SENTS, DE)
    same = sum(len({tuple(p) for p in x} & {tuple(p) for p in y}) for x, y in zip(a, b))
    assert same >= 0.95 * sum(len(x) for x in a)


@cuda
def test_cuda_translator(tiny_models):
    ct2 = pytest.importorskip("ctranslate2")
    if ct2.get_cuda_device_count() < 1:
        pytest.skip("CTranslate2 sees no CUDA device")
    from xfast.models.translator import Translator

    cpu = Translator(tiny_models["nllb_ct2"], device="cpu", compute_type="float32")
    gpu = Translator(tiny_models["nllb_ct2"], device="cuda", compute_type="float16")
    texts = [" ".join(s) for s in SENTS[:4]]
    assert len(gpu.translate(texts, "en", "de")) == len(cpu.translate(texts, "en", "de")) == 4
