"""Columnar token batches: sentences as flat arrays (the leaf data type of :mod:`xfast.io`).

A :class:`TokenColumns` holds a batch of word-split sentences as one UTF-8 byte string of
tokens, int64 token offsets into it, int64 sentence offsets into the tokens, optional int32
IOB2 label codes and each sentence's first line in its file. Pipelines move these between
stages; Python strings are made only where a person reads them.

Label codes: ``0`` is ``O``, ``2*t+1`` is ``B-`` and ``2*t+2`` is ``I-`` of type ``t`` in a
:class:`LabelTypes` vocabulary shared by every file of a run (the layout
:func:`xfast.project.decode_labels` reads).

The readers (:mod:`xfast.io.readers`) make these batches; :func:`rechunk` and :func:`head`
cut a stream of them into batches of a fixed size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from xfast.io.labels import Sentence

__all__ = ["LabelTypes", "TokenColumns", "from_sentences", "ragged_range", "rechunk", "head"]


class LabelTypes:
    """Entity types of a run, each with a stable id in order of first appearance."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.ids: dict[bytes, int] = {}
        for n in names:
            self.add(n)

    def add(self, name: str) -> int:
        """The id of ``name``, added if new."""
        return self.ids.setdefault(name.encode("utf-8"), len(self.ids))

    @property
    def names(self) -> list[str]:
        """Type names by id."""
        return [k.decode("utf-8") for k in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def table(self) -> list[str]:
        """Label string of every code: ``O``, then ``B-``/``I-`` of each type."""
        out = ["O"]
        for n in self.names:
            out += ["B-" + n, "I-" + n]
        return out

    def __repr__(self) -> str:
        return f"LabelTypes({self.names!r})"


@dataclass(frozen=True, eq=False)
class TokenColumns:
    """A batch of S sentences, T tokens.

    ``text``: the tokens' UTF-8 bytes back to back; ``tok_off``: int64 (T+1,), token k is
    ``text[tok_off[k]:tok_off[k+1]]``; ``sent_off``: int64 (S+1,), sentence i owns tokens
    ``sent_off[i]:sent_off[i+1]``; ``codes``: int32 (T,) label codes or None; ``lines``: int64
    (S,), the line each sentence starts on in ``path`` (0 where unknown).
    """

    text: bytes
    tok_off: np.ndarray
    sent_off: np.ndarray
    codes: np.ndarray | None
    lines: np.ndarray
    path: str = ""

    def __len__(self) -> int:
        return len(self.sent_off) - 1

    @property
    def n_tokens(self) -> int:
        return len(self.tok_off) - 1

    def lengths(self) -> np.ndarray:
        """int64 (S,): words per sentence."""
        return np.diff(self.sent_off)

    def words(self, i: int) -> list[str]:
        """Sentence ``i`` as a list of str."""
        a, b = int(self.sent_off[i]), int(self.sent_off[i + 1])
        to = self.tok_off[a:b + 1].tolist()
        return [self.text[to[k]:to[k + 1]].decode("utf-8") for k in range(b - a)]

    def sentences(self) -> list[list[str]]:
        """Every sentence as a list of str."""
        toks = self.tokens()
        so = self.sent_off.tolist()
        return [toks[so[i]:so[i + 1]] for i in range(len(so) - 1)]

    def tokens(self) -> list[str]:
        """Every token as a str."""
        to = self.tok_off.tolist()
        t = self.text
        return [t[to[k]:to[k + 1]].decode("utf-8") for k in range(len(to) - 1)]

    def to_sentences(self, types: LabelTypes) -> list[Sentence]:
        """Every sentence as an :class:`xfast.io.Sentence` (labels as IOB2 strings)."""
        words = self.sentences()
        lines = self.lines.tolist()
        if self.codes is None:
            return [Sentence(w, None, ln) for w, ln in zip(words, lines)]
        table = types.table()
        labs = [table[c] for c in self.codes.tolist()]
        so = self.sent_off.tolist()
        return [Sentence(w, labs[so[i]:so[i + 1]], lines[i]) for i, w in enumerate(words)]

    def take(self, rows: Sequence[int]) -> TokenColumns:
        """The sentences ``rows``, in that order, as their own batch (gathered with array
        indexing, no loop over the sentences)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        lengths = np.diff(self.sent_off)[rows]
        tok = ragged_range(self.sent_off[rows], lengths)
        tok_len = np.diff(self.tok_off)[tok]
        text = np.frombuffer(self.text, np.uint8)[ragged_range(self.tok_off[tok], tok_len)].tobytes()
        return TokenColumns(text, np.concatenate([[0], np.cumsum(tok_len)]).astype(np.int64),
                            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                            None if self.codes is None else self.codes[tok], self.lines[rows], self.path)

    def slice(self, a: int, b: int) -> TokenColumns:
        """Sentences ``a..b`` as their own batch."""
        ta, tb = int(self.sent_off[a]), int(self.sent_off[b])
        ba, bb = int(self.tok_off[ta]), int(self.tok_off[tb])
        return TokenColumns(self.text[ba:bb], self.tok_off[ta:tb + 1] - ba,
                            self.sent_off[a:b + 1] - ta,
                            None if self.codes is None else self.codes[ta:tb],
                            self.lines[a:b], self.path)

    @staticmethod
    def concat(parts: Sequence[TokenColumns]) -> TokenColumns:
        """One batch of the sentences of ``parts``, in order."""
        if len(parts) == 1:
            return parts[0]
        tok_off = [np.zeros(1, np.int64)]
        sent_off = [np.zeros(1, np.int64)]
        nb = nt = 0
        for p in parts:
            tok_off.append(p.tok_off[1:] + nb)
            sent_off.append(p.sent_off[1:] + nt)
            nb += int(p.tok_off[-1])
            nt += p.n_tokens
        codes = None if parts[0].codes is None else np.concatenate([p.codes for p in parts])
        return TokenColumns(b"".join(p.text for p in parts), np.concatenate(tok_off),
                            np.concatenate(sent_off), codes,
                            np.concatenate([p.lines for p in parts]), parts[0].path)


def ragged_range(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concat(arange(s, s + n) for s, n in zip(starts, lengths))`` as int64, without a loop."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    first = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, np.int64) - first, lengths) + np.arange(total, dtype=np.int64)


def from_sentences(sentences: Sequence[Sequence[str]], types: LabelTypes | None = None,
                   labels: Sequence[Sequence[str]] | None = None, path: str = "",
                   lines: Sequence[int] | None = None) -> TokenColumns:
    """A batch from Python word lists (and IOB2 label lists, coded with ``types``)."""
    enc = [w.encode("utf-8") for s in sentences for w in s]
    tok_off = np.zeros(len(enc) + 1, np.int64)
    np.cumsum([len(w) for w in enc], out=tok_off[1:])
    sent_off = np.zeros(len(sentences) + 1, np.int64)
    np.cumsum([len(s) for s in sentences], out=sent_off[1:])
    codes = None
    if labels is not None:
        types = types if types is not None else LabelTypes()
        flat = []
        for labs in labels:
            for lab in labs:
                flat.append(0 if lab == "O" else 2 * types.add(lab[2:]) + (1 if lab[0] == "B" else 2))
        codes = np.array(flat, np.int32)
    ln = np.zeros(len(sentences), np.int64) if lines is None else np.asarray(lines, np.int64)
    return TokenColumns(b"".join(enc), tok_off, sent_off, codes, ln, path)


def rechunk(pieces: Iterator[TokenColumns], size: int) -> Iterator[TokenColumns]:
    """The sentences of ``pieces`` (batches of any sizes), in order, in batches of ``size``
    (the last may be shorter)."""
    queue: deque[TokenColumns] = deque()
    held = 0
    for p in pieces:
        queue.append(p)
        held += len(p)
        while held >= size:
            yield _take(queue, size)
            held -= size
    if held:
        yield _take(queue, held)


def _take(queue: deque, n: int) -> TokenColumns:
    parts = []
    while n:
        p = queue[0]
        if len(p) <= n:
            parts.append(queue.popleft())
            n -= len(p)
        else:
            parts.append(p.slice(0, n))
            queue[0] = p.slice(n, len(p))
            n = 0
    return TokenColumns.concat(parts)


def head(chunks: Iterator[TokenColumns], limit: int | None) -> Iterator[TokenColumns]:
    """The batches of ``chunks`` up to ``limit`` sentences in all (all of them for None)."""
    if limit is None:
        yield from chunks
        return
    for cols in chunks:
        if len(cols) >= limit:
            yield cols.slice(0, limit)
            return
        limit -= len(cols)
        yield cols
