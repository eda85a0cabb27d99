"""torch behind the encoder's contract (:mod:`xfast.models.backends`): the checkpoint itself, cut
after layer L, on packed batches; float16 by default on CUDA, float32 on CPU (the parity reference).

- BERT and XLM-R layouts run :class:`~xfast.models.backends._packed.PackedEncoder`: only the real
  tokens go through the linear layers (query, key and value fused in one product) and attention
  is FlashAttention's variable-length kernel where torch has it and the GPU takes it, else
  scaled-dot-product attention with a key mask. Other models (an NLLB encoder) run transformers'
  own cut model on padded batches.
- On CUDA a batch's inputs are packed into pinned host memory and copied on an upload stream, so
  the copy of the next batch overlaps this one's compute; a result that goes back to the host is
  copied on a download stream into pinned memory (:meth:`TorchBackend.submit`). With
  ``on_device=True`` the states stay on the GPU (the aligner extracts pairs there and only word
  pairs come back). On a CPU none of this applies: the call is plain and synchronous.
- ``compile=True`` (or ``XFAST_TORCH_COMPILE=1``) runs the model through ``torch.compile``
  (dynamic shapes); off by default: the first batches of each new shape then take seconds.
- A batch that runs out of GPU memory is split in halves and run again; one sequence that does
  not fit is [E442].

Any torch from 2.4 on: features are detected, never assumed (the variable-length kernel needs
2.9). torch is imported here, at the top; this module is imported only when an encoder runs on
torch, never by ``import xfast``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from xfast.errors import ModelError, msg
from xfast.models.backends import pad
from xfast.models.backends._packed import Attention, PackedEncoder, packable, varlen_reason
from xfast.models.export.encoder import load_cut_model

__all__ = ["DTYPES", "TorchBackend"]

#: the number formats the backend runs in (``quantize`` of the encoder)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class _Done:
    """A finished batch (CPU, or states kept on the device)."""

    def __init__(self, value) -> None:
        self.value = value

    def result(self):
        return self.value


class _Copying:
    """A batch whose states are being copied to pinned host memory on the copy stream."""

    def __init__(self, host: torch.Tensor, event) -> None:
        self.host, self.event = host, event

    def result(self) -> np.ndarray:
        self.event.synchronize()
        return self.host.numpy()


class TorchBackend:
    """The model of ``hf_dir`` cut after ``layer`` on torch.

    ``device``: ``"cpu"`` or ``"cuda"`` (``"cuda:1"`` too); ``precision``: a key of
    :data:`DTYPES`; ``threads``: torch's intra-op threads; ``pad_id``: the padding id of the
    padded fallback; ``position_offset``: the first position id (XLM-R counts from
    ``pad + 1``); ``compile``: run the model through ``torch.compile``. ``model``: a loaded
    transformers base model to run instead of loading ``hf_dir`` cut after ``layer`` (a
    token classifier's, for the tagger), and ``head``: a module applied to its states (the
    classifier), whose output then comes back instead. ``packed=False`` runs transformers' own
    model on padded batches even for a BERT layout (the packed path's reference in tests).

    ``provider`` is ``"torch:cuda"`` or ``"torch:cpu"``; ``attention`` says which attention runs
    (``varlen``, ``sdpa`` or ``transformers``) and ``attention_note`` why not ``varlen`` where
    it is not.
    """

    def __init__(self, hf_dir: Path, layer: int | None, threads: int | None, pad_id: int, *, device: str = "cpu",
                 precision: str = "float32", position_offset: int = 0, compile: bool | None = None,
                 model=None, head=None, packed: bool | None = None) -> None:
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.dtype = DTYPES[precision]
        self.precision = precision
        self.pad_id, self.offset = pad_id, int(position_offset)
        on_gpu = self.device.type == "cuda"
        self.provider = f"torch:{self.device.type}"
        # copy streams, one each way, made before the first batch (the probe): a batch's inputs go
        # up while the batch before computes, its states come down while the next one computes
        self._up = torch.cuda.Stream(self.device) if on_gpu else None
        self._down = torch.cuda.Stream(self.device) if on_gpu else None
        # transformers' sdpa attention on GPUs; its eager attention (the reference) on CPUs
        if model is None:
            model = load_cut_model(hf_dir, layer, attn="sdpa" if on_gpu else "eager")
        self.packed = packable(model) if packed is None else bool(packed) and packable(model)
        if self.packed:
            module = PackedEncoder(model, head)
            note = varlen_reason(self.device, self.dtype, module.head_dim)
            self.attention, self.attention_note = ("sdpa", note) if note else ("varlen", None)
        else:
            module = _Padded(model, head)
            self.attention, self.attention_note = "transformers", "not a BERT or XLM-R layout"
        try:
            self.module = module.to(device=self.device, dtype=self.dtype).eval()
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
            raise ModelError(msg("E411", path=hf_dir, reason=f"cannot move it to {device} in {precision} "
                                 f"({str(e).splitlines()[0]})")) from e
        if self.attention == "varlen" and not self._varlen_runs():
            self.attention = "sdpa"
        if compile is None:
            compile = os.environ.get("XFAST_TORCH_COMPILE", "") == "1"
        if compile and hasattr(torch, "compile"):
            self.module = torch.compile(self.module, dynamic=True)
        self.compiled = bool(compile)

    def __repr__(self) -> str:
        return (f"TorchBackend({self.provider}, {self.precision}, attention={self.attention!r}"
                f"{', compiled' if self.compiled else ''})")

    def _varlen_runs(self) -> bool:
        """One small call of the variable-length kernel: some builds lack it for this GPU."""
        try:
            with torch.no_grad():
                self._forward(np.array([5, 6, 7, 5, 6], np.int64), np.array([3, 2], np.int64))
            return True
        except Exception as e:  # noqa: BLE001 - any failure means: not on this build or GPU
            self.attention_note = f"varlen failed here: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            return False

    # -------------------------------------------------------------------- the contract
    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sequences back to back (``ids`` int64 (N,), ``lengths`` int64 (B,)) -> states float32 (N, hidden)."""
        return self.submit(ids, lengths).result()

    def submit(self, ids: np.ndarray, lengths: np.ndarray, *, on_device: bool = False):
        """Start a batch; ``.result()`` of the returned handle gives its states: float32
        ``(N, hidden)``, a numpy array, or with ``on_device`` a torch tensor on the device.
        On CUDA the work is queued and the copy back runs on the download stream; on a CPU it
        is done when this returns."""
        out = self.forward(ids, lengths)
        if on_device:
            return _Done(out)
        if self._down is None:
            return _Done(out.numpy())
        self._down.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._down):
            host = torch.empty(out.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(out, non_blocking=True)
            out.record_stream(self._down)  # the allocator keeps it until the copy is done
            event = torch.cuda.Event()
            event.record(self._down)
        return _Copying(host, event)

    def forward(self, ids: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        """The states of a batch as a float32 tensor on the device (a batch out of GPU memory
        is run in halves)."""
        with torch.no_grad():
            try:
                return self._forward(ids, lengths)
            except torch.cuda.OutOfMemoryError as e:
                torch.cuda.empty_cache()
                if len(lengths) == 1:
                    raise ModelError(msg("E442", tokens=int(lengths[0]), reason=str(e).splitlines()[0])) from e
            half = len(lengths) // 2
            cut = int(lengths[:half].sum())
            return torch.cat([self.forward(ids[:cut], lengths[:half]), self.forward(ids[cut:], lengths[half:])])

    # -------------------------------------------------------------------- inside
    def _to_device(self, host: np.ndarray) -> torch.Tensor:
        """An int64 host array on the device: on CUDA through pinned memory on the upload stream
        (the compute stream waits for this copy only), so it overlaps the batch before."""
        if self._up is None:
            return torch.from_numpy(host)
        pinned = torch.empty(len(host), dtype=torch.int64, pin_memory=True)
        pinned.numpy()[:] = host
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._up):
            dev = pinned.to(self.device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(self._up)
        compute.wait_event(ready)
        dev.record_stream(compute)  # allocated on the upload stream, used on the compute stream
        return dev

    def _forward(self, ids: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        b, n = len(lengths), len(ids)
        if not self.packed:
            batch, mask = pad(ids, lengths, self.pad_id)
            t = batch.shape[1]
            dev = self._to_device(np.concatenate([batch.reshape(-1), mask.reshape(-1)]))
            ids_d, mask_d = dev[: b * t].view(b, t), dev[b * t:].view(b, t)
            return self.module(ids_d, mask_d).float()
        cu = np.zeros(b + 1, np.int64)
        np.cumsum(lengths, out=cu[1:])
        t = int(lengths.max())
        positions = np.arange(n, dtype=np.int64) - np.repeat(cu[:-1], lengths) + self.offset
        if self.attention == "varlen":
            dev = self._to_device(np.concatenate([ids, positions, cu]))
            attend = Attention("varlen", b, t, cu=dev[2 * n:].to(torch.int32))
        else:
            unpad = np.flatnonzero((np.arange(t)[None, :] < lengths[:, None]).reshape(-1))
            gather = np.full(b * t, n, np.int64)
            gather[unpad] = np.arange(n)
            dev = self._to_device(np.concatenate([ids, positions, gather, unpad]))
            slots = dev[2 * n: 2 * n + b * t]
            attend = Attention("sdpa", b, t, gather=slots, unpad=dev[2 * n + b * t:],
                               mask=(slots != n).view(b, 1, 1, t))
        return self.module(dev[:n], dev[n: 2 * n], attend).float()


class _Padded(torch.nn.Module):
    """transformers' own model on a padded batch: the states (or ``head``'s output) of the
    real tokens, ``(N, width)``."""

    def __init__(self, model, head=None) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=mask).last_hidden_state[mask.bool()]
        return out if self.head is None else self.head(out)
