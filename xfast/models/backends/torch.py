"""transformers behind the encoder's contract (:mod:`xfast.models.backends`): the checkpoint
itself, cut after layer L, on padded batches; the parity reference for the ONNX export.

torch is imported here, at the top; this module is imported only when an encoder runs with
``backend="torch"``, never by ``import xfast``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xfast.models.backends import pad
from xfast.models.export.encoder import load_cut_model

__all__ = ["TorchBackend"]


class TorchBackend:
    """transformers' model of ``hf_dir`` cut after ``layer`` (float32, eval mode); ``threads``
    sets torch's intra-op threads."""

    provider = "torch"

    def __init__(self, hf_dir: Path, layer: int, threads: int | None, pad_id: int) -> None:
        if threads:
            torch.set_num_threads(int(threads))
        self.model = load_cut_model(hf_dir, layer)
        self.pad_id = pad_id

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sequences back to back (``ids`` int64 (N,), ``lengths`` int64 (B,)) -> states (N, hidden)."""
        batch, mask = pad(ids, lengths, self.pad_id)
        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(batch), attention_mask=torch.from_numpy(mask))
        return out.last_hidden_state.float().numpy()[mask.astype(bool)]
