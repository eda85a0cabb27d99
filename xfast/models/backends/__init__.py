"""The encoder's runtime contract, and one module per runtime behind it.

A backend runs the model cut after layer L on a batch and nothing else: the
:class:`~xfast.models.encoder.Encoder` tokenizes, windows, sorts and packs, and hands each batch
over flat, as text-embeddings-inference does (sequences back to back, no padding):

- ``ids``: int64 ``(N,)``, the token ids of B sequences one after another (special tokens
  included);
- ``lengths``: int64 ``(B,)``, each sequence's length (they sum to N);
- the result: float32 ``(N, hidden)``, the layer-L state of every id, in the same order.

A runtime lays the batch out as it needs (the packed ONNX graph runs the token-wise work on
the N real tokens; a padded graph or transformers get ``(B, max(lengths))`` from :func:`pad`).
``provider`` names where it runs (ONNX Runtime's first provider, or ``"torch"``).
:func:`providers_for` maps a device (:data:`DEVICES`) to ONNX Runtime's providers before any
model loads; it imports onnxruntime only when called.

- :mod:`xfast.models.backends.onnx`: ONNX Runtime on an export (the default);
- :mod:`xfast.models.backends.torch`: transformers' model, the parity reference.

Each runtime module imports its runtime (onnxruntime, torch) at its top, so it is imported only
when an encoder asks for that backend (:func:`xfast.models.encoder.Encoder` does), never by
``import xfast``. A new runtime is a module here with one class that takes the batch above.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from xfast.errors import ParameterError, check_choice, msg

__all__ = ["DEVICES", "NAMES", "Backend", "pad", "providers_for"]

#: the backends an :class:`~xfast.models.encoder.Encoder` can run on
NAMES = ("onnx", "torch")
#: the devices a backend is asked for (``auto``: a GPU when the runtime has one)
DEVICES = ("cpu", "cuda", "auto")


class Backend(Protocol):
    """What the encoder calls for each batch (see the module's docstring for the layout)."""

    #: where the model runs (``"CPUExecutionProvider"``, ``"CUDAExecutionProvider"``, ``"torch"``)
    provider: str

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sequences back to back (``ids`` int64 (N,), ``lengths`` int64 (B,)) -> states
        float32 (N, hidden)."""
        ...


def providers_for(device: str) -> list[str]:
    """ONNX Runtime providers for a device: ``cpu`` keeps to the CPU even where a GPU is,
    ``cuda`` needs ONNX Runtime's CUDA provider ([E207] when this onnxruntime lacks it),
    ``auto`` takes CUDA when present."""
    import onnxruntime as ort  # only when a device is mapped: importing this module stays light

    check_choice("device", device, DEVICES)
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise ParameterError(msg("E207", available=ort.get_available_providers()))
    if device == "cpu" or not has_cuda:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def pad(ids: np.ndarray, lengths: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-to-back sequences as a padded ``(batch, seq)`` id matrix and its mask."""
    t = int(lengths.max())
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    batch = np.full(mask.shape, pad_id, dtype=np.int64)
    batch[mask.astype(bool)] = ids
    return batch, mask
