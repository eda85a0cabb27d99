"""A stand-in for the encoder's model forward, for benchmarks and tests (never a default).

What the host work around the encoder costs per sentence pair is what decides throughput on a
GPU, and it is measured with the model made free: :class:`StandInModel` returns float32
states of the real shape (the real hidden size, one row per real subword) by looking each
token id up in a fixed random table, so equal subwords get equal states and alignments keep
a realistic structure, optionally after a fixed ``delay_s`` per call (an artificial model
time, to show how the engine overlaps the two). It takes the batch a real backend takes
(:class:`~xfast.models.backends.Backend`), and :func:`stand_in` puts one into an
:class:`~xfast.models.encoder.Encoder` in its backend's place (its tokenizer, windows and
batching stay real).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["StandInModel", "stand_in"]


class StandInModel:
    """``(ids (N,), lengths (B,)) -> states (N, hidden)`` at (almost) no cost."""

    def __init__(self, hidden: int = 384, *, rows: int = 8192, delay_s: float = 0.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.table = rng.standard_normal((rows, hidden)).astype(np.float32)
        self.delay_s = float(delay_s)
        self.calls = 0
        self.seconds = 0.0  # time spent in calls: the "model forward" to subtract

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._states(ids)

    def padded(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The same states for a padded ``(batch, seq)`` call, ``(batch, seq, hidden)``."""
        return self._states(ids)

    def _states(self, ids: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        out = self.table[ids % len(self.table)]
        self.seconds += time.perf_counter() - t
        return out


def stand_in(encoder, *, hidden: int | None = None, delay_s: float = 0.0) -> StandInModel:
    """Replace ``encoder``'s model forward with a :class:`StandInModel`; returns it."""
    model = StandInModel(hidden or encoder.hidden_size, delay_s=delay_s)
    encoder._run = model
    return model
