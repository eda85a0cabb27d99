"""The encoder's runtime contract, and one module per runtime behind it.

A backend runs the model cut after layer L on a batch and nothing else: the
:class:`~xfast.models.encoder.Encoder` tokenizes, windows, sorts and packs, and hands each batch
over flat, as text-embeddings-inference does (sequences back to back, no padding):

- ``ids``: int64 ``(N,)``, the token ids of B sequences one after another (special tokens
  included);
- ``lengths``: int64 ``(B,)``, each sequence's length (they sum to N);
- the result: float32 ``(N, hidden)``, the layer-L state of every id, in the same order.

A runtime lays the batch out as it needs (the packed ONNX graph and the torch backend run the
token-wise work on the N real tokens; a padded graph or transformers get ``(B, max(lengths))``
from :func:`pad`). ``provider`` names where it runs (ONNX Runtime's first provider, or
``"torch:cuda"`` / ``"torch:cpu"``).

- :mod:`xfast.models.backends.onnx`: ONNX Runtime on an export (the default on CPUs);
- :mod:`xfast.models.backends.torch`: torch on the checkpoint itself, packed batches, float16
  by default on CUDA (the default there), float32 on CPU (where it is the parity reference).

A runtime may offer more than the call: ``submit(ids, lengths, on_device=False)`` starts a batch
and returns a handle whose ``result()`` gives the states (so the next batch's inputs are copied
while this one computes), and with ``on_device=True`` the states stay on the device as a torch
tensor (the aligner then extracts pairs there, :mod:`xfast.align.device`).

Choosing a runtime, before any model loads: :func:`providers_for` maps a device
(:data:`DEVICES`) to ONNX Runtime's providers (``CUDAExecutionProvider`` first asks for the GPU,
which the torch backend honours too), :func:`resolve_backend` picks the backend of a device
(torch on CUDA when torch sees a GPU, ONNX Runtime elsewhere) and :func:`resolve_precision` the
number format (:data:`PRECISIONS`). They import onnxruntime and torch only when called, and torch
only where a GPU could be (a CUDA device node exists), so a CPU machine never pays its import
for ``auto``.

Each runtime module imports its runtime (onnxruntime, torch) at its top, so it is imported only
when an encoder asks for that backend (:func:`xfast.models.encoder.Encoder` does), never by
``import xfast``. A new runtime is a module here with one class that takes the batch above.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from xfast.errors import ParameterError, check_choice, msg

__all__ = ["DEVICES", "NAMES", "PRECISIONS", "Backend", "device_of", "onnx_providers", "pad", "providers_for",
           "resolve_backend", "resolve_precision", "torch_cuda"]

#: the backends an :class:`~xfast.models.encoder.Encoder` can run on
NAMES = ("onnx", "torch")
#: the devices a backend is asked for (``auto``: a GPU when a runtime has one)
DEVICES = ("cpu", "cuda", "auto")
#: ``quantize`` values per backend: ONNX Runtime's exports (None: float32) and torch's number
#: formats (None: float16 on CUDA, float32 on CPU)
PRECISIONS = {"onnx": (None, "float32", "int8", "float16"), "torch": (None, "float32", "float16", "bfloat16")}
#: files that exist where an NVIDIA driver is loaded (Linux, WSL): without one, ``auto`` does
#: not import torch to ask
_NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/dxg")


class Backend(Protocol):
    """What the encoder calls for each batch (see the module's docstring for the layout)."""

    #: where the model runs (``"CPUExecutionProvider"``, ``"CUDAExecutionProvider"``, ``"torch:cuda"``)
    provider: str

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sequences back to back (``ids`` int64 (N,), ``lengths`` int64 (B,)) -> states
        float32 (N, hidden)."""
        ...


def torch_cuda(*, probe: bool = True) -> str | None:
    """Why torch cannot run on a CUDA GPU here, or None when it can. ``probe=False`` (for
    ``auto``) answers "no NVIDIA driver" without importing torch where no driver's device node
    exists."""
    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed"
        if not probe and not any(os.path.exists(p) for p in _NVIDIA_NODES):
            return "no NVIDIA driver is loaded"
    import torch  # only when asked, and only where a GPU could be

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a build without CUDA"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return None


def _ort_cuda() -> tuple[bool, list[str]]:
    import onnxruntime as ort  # only when a device is mapped: importing this module stays light

    available = ort.get_available_providers()
    return "CUDAExecutionProvider" in available, available


def providers_for(device: str) -> list[str]:
    """ONNX Runtime providers for a device: ``cpu`` keeps to the CPU even where a GPU is;
    ``cuda`` asks for the GPU (``["CUDAExecutionProvider", "CPUExecutionProvider"]``) when ONNX
    Runtime's CUDA provider or torch can use one, else [E230]; ``auto`` asks for it when either
    can. The torch backend reads ``CUDAExecutionProvider`` first as "on the GPU"; the ONNX backend
    refuses it with [E207] when this onnxruntime has no CUDA provider (torch's GPU is not
    ONNX Runtime's)."""
    check_choice("device", device, DEVICES)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    has_cuda, available = _ort_cuda()
    if not has_cuda:
        why = torch_cuda(probe=device == "cuda")
        if why is not None:
            if device == "cuda":
                raise ParameterError(msg("E230", torch=why, ort=f", and this onnxruntime has no CUDA provider "
                                         f"either (it has {available})"))
            return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def onnx_providers(device: str, providers: Sequence[str] | None) -> list[str] | None:
    """ONNX Runtime's providers for the ONNX backend: ``providers`` as given, else those of
    ``device``; for ``auto`` CUDA only where ONNX Runtime has it, for ``cuda`` a CUDA provider
    this onnxruntime lacks is [E207]."""
    _, available = _ort_cuda()
    if providers is None:
        if device == "cpu":
            return ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "cuda":
            raise ParameterError(msg("E207", available=available))
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in providers and "CUDAExecutionProvider" not in available:
        if device == "auto":  # the GPU was torch's (providers_for): ONNX Runtime stays on the CPU
            return [p for p in providers if p != "CUDAExecutionProvider"] or ["CPUExecutionProvider"]
        raise ParameterError(msg("E207", available=available))
    return list(providers)


def device_of(providers: Sequence[str] | None) -> str:
    """The device a providers list asks for: ``cuda`` when CUDA comes first, ``auto`` for None."""
    if providers is None:
        return "auto"
    return "cuda" if list(providers)[:1] == ["CUDAExecutionProvider"] else "cpu"


def resolve_backend(backend: str | None, device: str, *, export: bool = False, quantize: str | None = None) -> str:
    """The backend an encoder runs on: ``backend`` itself when named; else (None) ``torch``
    where the device is (or, for ``auto``, may be) a GPU that torch can use, and ``onnx``
    elsewhere: on CPUs, for an ONNX export (``export``: it runs on ONNX Runtime only), for
    ``quantize="int8"`` (an ONNX form), and where only ONNX Runtime sees the GPU."""
    if backend is not None:
        check_choice("backend", backend, NAMES)
        return backend
    check_choice("device", device, DEVICES)
    if export or device == "cpu" or quantize == "int8":
        return "onnx"
    if quantize == "bfloat16":  # a torch form: torch decides where it runs
        return "torch"
    return "torch" if torch_cuda(probe=device == "cuda") is None else "onnx"


def resolve_precision(backend: str, quantize: str | None, on_gpu: bool) -> str:
    """The number format of an encoder: ``quantize`` checked against the backend's
    (:data:`PRECISIONS`; a wrong pair is [E202] naming ``quantize``), None taking the default:
    ``float16`` for torch on a GPU, else ``float32``."""
    options = PRECISIONS[backend]
    if quantize not in options:
        raise ParameterError(msg("E202", name="quantize", expected=f"one of {list(options)} with backend="
                                 f"{backend!r}", value=quantize))
    if quantize is None:
        return "float16" if backend == "torch" and on_gpu else "float32"
    return quantize


def pad(ids: np.ndarray, lengths: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-to-back sequences as a padded ``(batch, seq)`` id matrix and its mask."""
    t = int(lengths.max())
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    batch = np.full(mask.shape, pad_id, dtype=np.int64)
    batch[mask.astype(bool)] = ids
    return batch, mask
