"""Columnar token batches: sentences as flat arrays, read and written in compiled code.

A :class:`TokenColumns` holds a batch of word-split sentences as one UTF-8 byte string of
tokens, int64 token offsets into it, int64 sentence offsets into the tokens, optional int32
IOB2 label codes and each sentence's first line in its file. Pipelines move these between
stages; Python strings are made only where a person reads them.

Label codes: ``0`` is ``O``, ``2*t+1`` is ``B-`` and ``2*t+2`` is ``I-`` of type ``t`` in a
:class:`LabelTypes` vocabulary shared by every file of a run (the layout
:func:`xfast.project.decode_labels` reads).

:func:`read_columns` streams a CoNLL or plain-text file in blocks of about 1 MiB through the
parser kernel (``csrc/_text.pyx``, twin ``_text_py.py``), so reading costs a few microseconds
per sentence; errors still name the file and the line, exactly as :func:`read_conll` does.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xfast.errors import DataError, msg, short
from xfast.io.files import open_input

from . import _text_py

if os.environ.get("XFAST_PURE_PYTHON") == "1":
    _K = _text_py
else:
    try:
        from . import _text as _K
    except ImportError:  # extension not built: the twin reads the same
        _K = _text_py

__all__ = ["LabelTypes", "TokenColumns", "read_columns", "read_parallel_columns", "from_sentences",
           "conll_bytes", "file_form", "count_sentences", "check_parallel", "ragged_range"]

_BOM = b"\xef\xbb\xbf"
_BLOCK = 1 << 20


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

    def to_sentences(self, types: LabelTypes) -> list:
        """Every sentence as an :class:`xfast.io.Sentence` (labels as IOB2 strings)."""
        from xfast.io.conll import Sentence

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


def file_form(path: str | Path) -> str:
    """How :func:`read_columns` reads ``path``: ``"jsonl"``, ``"parquet"``, ``"text"`` or
    ``"conll"`` (``.txt`` is CoNLL when its first lines end in labels, as MasakhaNER ships it)."""
    from xfast.io.parallel import _looks_like_conll

    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".parquet"):
        return suffix[1:]
    if suffix in (".tok", ".text") or (suffix == ".txt" and not _looks_like_conll(path)):
        return "text"
    return "conll"


def _bad_line(path: str | Path, kind: int, line: int, raw: bytes, ncols: int) -> DataError:
    text = raw.decode("utf-8")
    cols = text.split("\t") if "\t" in text else text.split()
    if kind == _text_py.ERR_COLUMNS:
        return DataError(path, line, msg("E102", line=short(text)))
    if kind == _text_py.ERR_NCOLS:
        return DataError(path, line, msg("E109", expected=ncols, got=len(cols)))
    return DataError(path, line, msg("E103", label=short(cols[-1].strip())))


def _start(fh) -> bytes:
    """The file's first bytes, a leading UTF-8 BOM removed (a file that is only a BOM holds
    one empty line)."""
    head = fh.read(3)
    if head != _BOM:
        return head
    return b"" if fh.peek(1) else b"\n"


def _parse_stream(path: str | Path, mode: int, labels: bool, types: LabelTypes,
                  block: int) -> Iterator[TokenColumns]:
    """Parsed pieces of the file, each holding the complete sentences of one block."""
    name = str(path)
    with open_input(path) as fh:
        buf = _start(fh)
        pos, line, after_doc, ncols = 0, 1, False, -1
        eof = False
        while not eof:
            more = fh.read(block)
            eof = not more
            buf = buf[pos:] + more
            # whole lines only: a block may end inside a character
            data, bad = (buf if eof else buf[:buf.rfind(b"\n") + 1]), None
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as err:
                start = buf.rfind(b"\n", 0, err.start) + 1
                bad = (line + buf.count(b"\n", 0, start), err.reason)
                data = buf[:start]
            res = _K.parse(data, 0, line, mode, labels, eof and bad is None, after_doc, ncols,
                           types.ids)
            text, tok_off, sent_off, codes, lines, pos, line, after_doc, ncols = res[:9]
            if res[9]:
                kind, at, a, b = res[9:]
                raise _bad_line(path, kind, at, buf[a:b], ncols)
            if len(sent_off) > 1:
                yield TokenColumns(text, tok_off, sent_off, codes, lines, name)
            if bad is not None:
                raise DataError(path, bad[0], msg("E101", encoding="UTF-8", reason=bad[1]))


def read_columns(path: str | Path, *, labels: bool | None = None, chunk_size: int = 512,
                 types: LabelTypes | None = None, form: str | None = None,
                 block_size: int = _BLOCK) -> Iterator[TokenColumns]:
    """Stream ``path`` as batches of ``chunk_size`` sentences (the last may be shorter).

    ``form``: ``"conll"``, ``"text"``, ``"jsonl"`` or ``"parquet"``; None follows :func:`file_form`.
    ``labels``: ``None`` reads labels where the form has them, ``True`` requires them,
    ``False`` ignores them. ``types`` collects label types (shared by every file of a run).
    Errors are :class:`DataError` naming the file and the line.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    types = types if types is not None else LabelTypes()
    form = form or file_form(path)
    if form == "text" and labels:
        from xfast.io.parallel import plain_text_error

        raise plain_text_error(path)
    if form == "jsonl":
        pieces = _jsonl_pieces(path, labels is not False, types, chunk_size)
    elif form == "parquet":
        from xfast.io.parquet import read_parquet_pieces

        pieces = read_parquet_pieces(path, labels, types, chunk_size)
    else:
        pieces = _parse_stream(path, 1 if form == "text" else 0, form == "conll" and labels is not False,
                               types, block_size)
    return _rechunk(pieces, chunk_size)


def count_sentences(path: str | Path, *, form: str | None = None, block_size: int = 4 * _BLOCK) -> int:
    """How many sentences :func:`read_columns` will give for ``path``, counted without
    reading tokens (about a tenth of the cost of reading; for totals and early checks)."""
    form = form or file_form(path)
    if form == "parquet":
        from xfast.io.parquet import count_parquet

        return count_parquet(path)
    n = 0
    with open_input(path) as fh:
        if form == "jsonl":
            return sum(1 for raw in fh if raw.strip())
        mode = 1 if form == "text" else 0
        buf, after_doc, in_sent, eof = _start(fh), False, False, False
        while not eof:
            more = fh.read(block_size)
            eof = not more
            buf += more
            got, used, after_doc, in_sent = _K.count(buf, 0, mode, eof, after_doc, in_sent)
            n += got
            buf = buf[used:]
    return n


def check_parallel(paths: Sequence[str | Path], *, labels: Sequence[bool | None] | None = None,
                   limit: int | None = None) -> int:
    """The sentence count shared by line-aligned ``paths``, checked before any work:
    [E512] when the first holds none, [E104] when counts differ.

    With ``labels`` (one per path, as :func:`read_columns` takes it) each file is read through
    first, so a decoding error, a bad label or a labeled side read as plain text is reported,
    with its line, before any count is compared (reading runs at about 150 MB/s per core).
    ``limit``: only each file's first ``limit`` sentences count, and only they are read.
    """
    if labels is None:
        counts = [count_sentences(p) for p in paths]
    else:
        counts = [_read_through(p, lab, limit) for p, lab in zip(paths, labels, strict=True)]
    if limit is not None:
        counts = [min(n, limit) for n in counts]
    if counts[0] == 0:
        raise DataError(paths[0], None, msg("E512", path=paths[0]))
    for p, n in zip(paths[1:], counts[1:]):
        if n != counts[0]:
            raise DataError(p, None, msg("E104", a=paths[0], na=counts[0], b=p, nb=n))
    return counts[0]


def _read_through(path: str | Path, labels: bool | None, limit: int | None) -> int:
    """Sentences of ``path`` (at most about ``limit``), every one parsed and checked."""
    n = 0
    for chunk in read_columns(path, labels=labels, chunk_size=4096):
        n += len(chunk)
        if limit is not None and n >= limit:
            break
    return n


def _jsonl_pieces(path, labels: bool, types: LabelTypes, size: int) -> Iterator[TokenColumns]:
    from xfast.io.jsonl import read_jsonl

    buf = []
    for s in read_jsonl(path, labels=labels):
        buf.append(s)
        if len(buf) == size:
            yield _from_read(buf, types, labels, str(path))
            buf = []
    if buf:
        yield _from_read(buf, types, labels, str(path))


def _from_read(sents, types, labels, path) -> TokenColumns:
    return from_sentences([s.tokens for s in sents], types,
                          [s.labels for s in sents] if labels else None, path,
                          [s.line for s in sents])


def _rechunk(pieces: Iterator[TokenColumns], size: int) -> Iterator[TokenColumns]:
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


def read_parallel_columns(paths: Sequence[str | Path], *, labels: Sequence[bool | None] | None = None,
                          chunk_size: int = 512, types: LabelTypes | None = None, limit: int | None = None,
                          ) -> Iterator[tuple[TokenColumns, ...]]:
    """Batches of the same ``chunk_size`` sentence positions of every file, in lockstep;
    ``limit``: only the first ``limit`` sentences of each file.

    A sentence-count mismatch is a :class:`DataError` [E104] naming both files and both
    counts, as :func:`xfast.io.read_parallel` raises it.
    """
    labels = labels or [None] * len(paths)
    types = types if types is not None else LabelTypes()
    readers = [_head(read_columns(p, labels=lab, chunk_size=chunk_size, types=types), limit)
               for p, lab in zip(paths, labels, strict=True)]
    n = 0
    while True:
        row = [next(r, None) for r in readers]
        if all(c is None for c in row):
            return
        sizes = [0 if c is None else len(c) for c in row]
        if len(set(sizes)) > 1:
            short = sizes.index(min(sizes))
            long = sizes.index(max(sizes))
            nb = n + sizes[long] + sum(len(c) for c in readers[long])
            raise DataError(paths[short], None, msg("E104", a=paths[short], na=n + sizes[short],
                                                    b=paths[long], nb=nb))
        n += sizes[0]
        yield tuple(row)


def _head(chunks: Iterator[TokenColumns], limit: int | None) -> Iterator[TokenColumns]:
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


def conll_bytes(cols: TokenColumns, codes: np.ndarray, types: LabelTypes) -> bytes:
    """CoNLL text (``token<TAB>label``, a blank line after each sentence) of ``cols`` labelled
    with ``codes`` (int, one per token)."""
    table = [lab.encode("utf-8") for lab in types.table()]
    return _K.format_conll(cols.text, cols.tok_off, cols.sent_off,
                           np.ascontiguousarray(codes, dtype=np.int64), table)
