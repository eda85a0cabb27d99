"""ONNX Runtime behind the encoder's contract (:mod:`xfast.models.backends`), on an export
written by :func:`xfast.models.export.encoder.export_encoder`.

Imported only when an encoder runs on ONNX Runtime: onnxruntime is imported here, at the top
(:func:`xfast.models.backends.providers_for`, which the command line calls before any model
loads, imports it only when called).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from xfast.errors import ParameterError, msg
from xfast.models.backends import pad
from xfast.models.modeldir import ENCODER_META

__all__ = ["OnnxBackend"]


class OnnxBackend:
    """ONNX Runtime on an export. ``io_binding``: feed the inputs and take the output through
    an I/O binding (None: where the first provider is not the CPU), so that on a GPU each
    input is copied to the device once and the output lands straight in a host array."""

    def __init__(self, export: Path, threads: int | None, providers: Sequence[str] | None,
                 io_binding: bool | None = None) -> None:
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
        meta = json.loads((export / ENCODER_META).read_text())
        self.packed, self.offset = bool(meta.get("packed")), int(meta.get("position_offset", 0))
        self.pad_id = int(meta.get("pad_token_id") or 0)
        self.hidden = int(meta["hidden_size"])
        # layer 0 (embeddings only) reads no mask, and the exporter drops unused inputs
        self._inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sequences back to back (``ids`` int64 (N,), ``lengths`` int64 (B,)) -> states (N, hidden)."""
        if not self.packed:
            batch, mask = pad(ids, lengths, self.pad_id)
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
