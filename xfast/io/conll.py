"""CoNLL and plain text: reading and writing, parsed in compiled code over blocks.

CoNLL is one token per line, the label in the last column; plain text is one pre-tokenized
sentence per line, tokens split on whitespace. Readers stream (a block of about 1 MiB in memory
at a time) through the parser kernel (``csrc/_text.pyx``, twin ``_text_py.py``), so reading
costs a few microseconds per sentence. They name the line of every error (an encoding error
included), skip document markers (lines whose first field is exactly ``-DOCSTART-``), normalise
IOB1 input to IOB2, and keep empty sentences: a blank line ends the sentence before it, and any
further blank line is an empty sentence (except blank lines right after ``-DOCSTART-``), so
``write_conll`` round-trips.

Which form a file has, and every other format, is :mod:`xfast.io.readers`' business.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from xfast._native import load
from xfast.errors import DataError, msg, short
from xfast.io._text_py import ERR_COLUMNS, ERR_NCOLS
from xfast.io.files import atomic_open, open_input
# Sentence and the label functions live in xfast.io.labels; xfast.io.conll has always offered them
from xfast.io.labels import Entity, Sentence, check_label, entities_of, labels_of, to_iob2
from xfast.io.tokens import LabelTypes, TokenColumns, rechunk

#: the _text kernel (parse, count and write CoNLL; entities and stop words of label codes)
_K = load("xfast.io", "_text")

__all__ = ["Sentence", "Entity", "read_conll", "write_conll", "append_conll", "read_text", "to_iob2", "check_label",
           "entities_of", "labels_of", "read_conll_pieces", "count_conll", "conll_bytes", "BLOCK"]

_BOM = b"\xef\xbb\xbf"
#: bytes read per parser call
BLOCK = 1 << 20


def read_conll(path: str | Path, *, labels: bool = True) -> Iterator[Sentence]:
    """Stream sentences from a CoNLL file.

    With ``labels=True`` every line needs a token and a label (tab-separated, or
    whitespace-separated when the line has no tab); the label is the last column. With
    ``labels=False`` the first column is the token and sentences have ``labels=None``.
    """
    types = LabelTypes()
    for cols in rechunk(read_conll_pieces(path, text=False, labels=labels is not False, types=types), 256):
        yield from cols.to_sentences(types)


def read_text(path: str | Path) -> Iterator[Sentence]:
    """Stream pre-tokenized plain text: one sentence per line, tokens split on whitespace.

    An empty line is an empty sentence (line-aligned corpora keep their numbering).
    """
    types = LabelTypes()
    for cols in rechunk(read_conll_pieces(path, text=True, labels=False, types=types), 256):
        yield from cols.to_sentences(types)


def _bad_line(path: str | Path, kind: int, line: int, raw: bytes, ncols: int) -> DataError:
    text = raw.decode("utf-8")
    cols = text.split("\t") if "\t" in text else text.split()
    if kind == ERR_COLUMNS:
        return DataError(path, line, msg("E102", line=short(text)))
    if kind == ERR_NCOLS:
        return DataError(path, line, msg("E109", expected=ncols, got=len(cols)))
    return DataError(path, line, msg("E103", label=short(cols[-1].strip())))


def _start(fh) -> bytes:
    """The file's first bytes, a leading UTF-8 BOM removed (a file that is only a BOM holds
    one empty line)."""
    head = fh.read(3)
    if head != _BOM:
        return head
    return b"" if fh.peek(1) else b"\n"


def read_conll_pieces(path: str | Path, *, text: bool, labels: bool, types: LabelTypes,
                      block_size: int = BLOCK) -> Iterator[TokenColumns]:
    """Parsed pieces of a CoNLL file (plain text with ``text``), each holding the complete
    sentences of one block of ``block_size`` bytes; ``labels``: read the label column into
    codes (new types are added to ``types``). Errors are :class:`DataError` naming the line."""
    name, mode = str(path), 1 if text else 0
    with open_input(path) as fh:
        buf = _start(fh)
        pos, line, after_doc, ncols = 0, 1, False, -1
        eof = False
        while not eof:
            more = fh.read(block_size)
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
            toks, tok_off, sent_off, codes, lines, pos, line, after_doc, ncols = res[:9]
            if res[9]:
                kind, at, a, b = res[9:]
                raise _bad_line(path, kind, at, buf[a:b], ncols)
            if len(sent_off) > 1:
                yield TokenColumns(toks, tok_off, sent_off, codes, lines, name)
            if bad is not None:
                raise DataError(path, bad[0], msg("E101", encoding="UTF-8", reason=bad[1]))


def count_conll(path: str | Path, *, text: bool, block_size: int = 4 * BLOCK) -> int:
    """Sentences of a CoNLL file (plain text with ``text``), counted without reading tokens
    (about a tenth of the cost of reading)."""
    n, mode = 0, 1 if text else 0
    with open_input(path) as fh:
        buf, after_doc, in_sent, eof = _start(fh), False, False, False
        while not eof:
            more = fh.read(block_size)
            eof = not more
            buf += more
            got, used, after_doc, in_sent = _K.count(buf, 0, mode, eof, after_doc, in_sent)
            n += got
            buf = buf[used:]
    return n


def conll_bytes(cols: TokenColumns, codes: np.ndarray, types: LabelTypes) -> bytes:
    """CoNLL text (``token<TAB>label``, a blank line after each sentence) of ``cols`` labelled
    with ``codes`` (int, one per token)."""
    table = [lab.encode("utf-8") for lab in types.table()]
    return _K.format_conll(cols.text, cols.tok_off, cols.sent_off,
                           np.ascontiguousarray(codes, dtype=np.int64), table)


def write_conll(path: str | Path, sentences: Iterable[Sentence | tuple[list[str], list[str]]]) -> int:
    """Write ``token<TAB>label`` lines with a blank line after each sentence; return the count.

    The file is written under a temporary name and renamed, so a killed run leaves no half file.
    """
    with atomic_open(path) as fh:
        return append_conll(fh, sentences)


def append_conll(fh: TextIO, sentences: Iterable[Sentence | tuple[list[str], list[str]]]) -> int:
    """Write sentences to the open text file ``fh`` as :func:`write_conll` writes them (a file
    written in parts); return the count."""
    n = 0
    for sent in sentences:
        toks, labs = (sent.tokens, sent.labels) if isinstance(sent, Sentence) else sent
        if labs is None:
            labs = ["O"] * len(toks)
        for tok, lab in zip(toks, labs, strict=True):
            fh.write(f"{tok}\t{lab}\n")
        fh.write("\n")
        n += 1
    return n
