"""What the encoder hands around: subword ids in, states out (numpy only, no runtime).

:class:`Subwords` is a batch's subwords back to back, :class:`States` the model's states left in
the arrays it wrote, :class:`Encoded` one sentence's states with its subword-to-word map. The
encoder, its backends and the aligner pass these; nothing here loads a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Encoded", "States", "Subwords"]


@dataclass(frozen=True, eq=False)
class Encoded:
    """One sentence's encoder output.

    ``states``: float32 ``(n_subwords, hidden)``, layer-L states with special tokens dropped.
    ``word_ids``: int32 ``(n_subwords,)``, the word index of each subword.
    """

    states: np.ndarray
    word_ids: np.ndarray

    def __repr__(self) -> str:
        n_words = int(self.word_ids.max()) + 1 if len(self.word_ids) else 0
        return f"Encoded(subwords={self.states.shape[0]}, hidden={self.states.shape[1]}, words>={n_words})"


@dataclass(frozen=True, eq=False)
class Subwords:
    """The subwords of a batch of S sentences, back to back.

    ``ids``: int64 ``(U,)`` token ids (special tokens not included); ``word_ids``: int32
    ``(U,)``, each subword's word index in its sentence; ``offsets``: int64 ``(S+1,)``,
    sentence i owns ``ids[offsets[i]:offsets[i+1]]``. ``truncated``: how many sentences
    were cut to the model's first pass (a compat encoder), so that callers in several threads
    count them without reading a shared counter.
    """

    ids: np.ndarray
    word_ids: np.ndarray
    offsets: np.ndarray
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.offsets) - 1


class States:
    """Subword states of S sentences, left in the arrays the model wrote (no copy).

    ``blocks``: float32 ``(rows, hidden)`` arrays; sentence i's states are the
    ``offsets[i+1] - offsets[i]`` rows of ``blocks[where[i, 0]]`` from row ``where[i, 1]``.
    """

    def __init__(self, blocks: list[np.ndarray], where: np.ndarray, offsets: np.ndarray,
                 transform=None) -> None:
        self.blocks, self.where, self.offsets = blocks, where, offsets
        self.transform = transform  # applied to the model's states already (None: raw states)
        self._mapped: dict = {}

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sentence(self, i: int) -> np.ndarray:
        """Sentence ``i``'s states, a view."""
        b, r = self.where[i]
        return self.blocks[b][r:r + self.offsets[i + 1] - self.offsets[i]]

    def sentences(self) -> list[np.ndarray]:
        """Every sentence's states, views."""
        w, off = self.where.tolist(), self.offsets.tolist()
        return [self.blocks[b][r:r + off[i + 1] - off[i]] for i, (b, r) in enumerate(w)]

    def map(self, fn) -> States:
        """New states with ``fn`` (a row-wise function that leaves its input as it is)
        applied to every block, computed once per ``fn`` and kept."""
        if fn not in self._mapped:
            self._mapped[fn] = States([fn(b) for b in self.blocks], self.where, self.offsets, fn)
        return self._mapped[fn]
