"""Every read, count and check of an input file, by its form: the one dispatch of :mod:`xfast.io`.

The form of a file is its suffix (:func:`file_form`): ``.jsonl`` is JSON Lines, ``.parquet``
Parquet, ``.tok`` and ``.text`` plain text (one sentence per line), ``.txt`` CoNLL when its
first lines end in labels (as MasakhaNER ships it) and plain text otherwise, anything else
CoNLL. Each form is read by its own module (:mod:`~xfast.io.conll`, :mod:`~xfast.io.jsonl`,
:mod:`~xfast.io.parquet`); this module picks one and streams:

- sentences: :func:`read_any`, and line-aligned files in lockstep with :func:`read_parallel`;
- columnar batches (:class:`~xfast.io.tokens.TokenColumns`): :func:`read_columns` and
  :func:`read_parallel_columns`;
- checks before any work: :func:`count_sentences`, :func:`check_parallel`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from xfast.errors import DataError, msg
from xfast.errors import short as shortened
from xfast.io.conll import BLOCK, count_conll, read_conll, read_conll_pieces, read_text
from xfast.io.files import lines
from xfast.io.jsonl import count_jsonl, read_jsonl, read_jsonl_pieces
from xfast.io.labels import Sentence
from xfast.io.parquet import count_parquet, read_parquet_pieces
from xfast.io.tokens import LabelTypes, TokenColumns, head, rechunk

__all__ = ["file_form", "looks_like_conll", "plain_text_error", "plain_text_reason",
           "read_any", "read_parallel", "read_columns", "read_parallel_columns",
           "count_sentences", "check_parallel"]


def file_form(path: str | Path) -> str:
    """How :func:`read_columns` reads ``path``: ``"jsonl"``, ``"parquet"``, ``"text"`` or
    ``"conll"`` (``.txt`` is CoNLL when its first lines end in labels, as MasakhaNER ships it)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".parquet"):
        return suffix[1:]
    if suffix in (".tok", ".text") or (suffix == ".txt" and not looks_like_conll(path)):
        return "text"
    return "conll"


def read_any(path: str | Path, *, labels: bool | None = None) -> Iterator[Sentence]:
    """Stream sentences of ``path`` by its form.

    ``.jsonl``: JSON Lines. ``.tok``: plain tokenized text, one sentence per line. ``.txt``:
    CoNLL when its first lines end in labels (MasakhaNER ships CoNLL as ``.txt``), else plain
    text. Anything else: CoNLL. ``labels=None`` means labels where the form has them;
    ``labels=True`` requires them.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path, labels=labels is not False)
    if suffix in (".tok", ".text") or (suffix == ".txt" and not looks_like_conll(path)):
        if labels:
            raise plain_text_error(path)
        return read_text(path)
    return read_conll(path, labels=labels is not False)


def looks_like_conll(path: str | Path, lines_to_check: int = 20) -> bool:
    """True when the first non-blank lines all have two or more columns ending in a label."""
    return _first_unlabeled(path, lines_to_check) is None


def _first_unlabeled(path: str | Path, lines_to_check: int = 20) -> tuple[int, str] | None:
    """``(line number, text)`` of the first of the first non-blank lines that does not end in
    a label, ``(0, "")`` for a file with no such line at all; None when they all do."""
    seen = 0
    for no, text in lines(path):
        if not text.strip() or text.startswith("-DOCSTART-"):
            continue
        cols = text.split("\t") if "\t" in text else text.split()
        last = cols[-1].strip()
        if len(cols) < 2 or not (last == "O" or (len(last) > 2 and last[0] in "BI" and last[1] == "-")):
            return no, text
        seen += 1
        if seen == lines_to_check:
            break
    return None if seen else (0, "")


def plain_text_error(path: str | Path) -> DataError:
    """[E118] for a file that must hold labels but is read as plain text, saying why it is."""
    return DataError(path, None, msg("E118", path=path, why=plain_text_reason(path)))


def plain_text_reason(path: str | Path) -> str:
    """Why ``path`` is read as plain text (one sentence per line), and what to give instead."""
    suffix = Path(path).suffix.lower()
    if suffix != ".txt":
        return f"a {suffix} file holds one sentence per line and no labels; give CoNLL, JSONL or Parquet"
    no, text = _first_unlabeled(path) or (0, "")
    first = f"line {no} does not ({shortened(text)!r})" if no else "it has no such line"
    return (f"a .txt file is read as CoNLL only when its first lines each end in a label (O, B-TYPE or I-TYPE, "
            f"e.g. B-ORG); {first}")


def read_columns(path: str | Path, *, labels: bool | None = None, chunk_size: int = 512,
                 types: LabelTypes | None = None, form: str | None = None,
                 block_size: int = BLOCK) -> Iterator[TokenColumns]:
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
        raise plain_text_error(path)
    if form == "jsonl":
        pieces = read_jsonl_pieces(path, labels is not False, types, chunk_size)
    elif form == "parquet":
        pieces = read_parquet_pieces(path, labels, types, chunk_size)
    else:
        pieces = read_conll_pieces(path, text=form == "text", labels=form == "conll" and labels is not False,
                                   types=types, block_size=block_size)
    return rechunk(pieces, chunk_size)


def count_sentences(path: str | Path, *, form: str | None = None, block_size: int = 4 * BLOCK) -> int:
    """How many sentences :func:`read_columns` will give for ``path``, counted without
    reading tokens (about a tenth of the cost of reading; for totals and early checks)."""
    form = form or file_form(path)
    if form == "parquet":
        return count_parquet(path)
    if form == "jsonl":
        return count_jsonl(path)
    return count_conll(path, text=form == "text", block_size=block_size)


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
    readers = [head(read_columns(p, labels=lab, chunk_size=chunk_size, types=types), limit)
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


def read_parallel(paths: Sequence[str | Path], *,
                  labels: Sequence[bool | None] | None = None) -> Iterator[tuple[Sentence, ...]]:
    """Yield one tuple of sentences per line-aligned position of ``paths``.

    A sentence-count mismatch is a :class:`DataError` [E104] naming both files and both counts
    (the longer file is counted to its end for the message).
    """
    labels = labels or [None] * len(paths)
    readers = [read_any(p, labels=lab) for p, lab in zip(paths, labels, strict=True)]
    n = 0
    while True:
        row = [next(r, None) for r in readers]
        if all(s is None for s in row):
            return
        if any(s is None for s in row):
            short = row.index(None)
            long = next(i for i, s in enumerate(row) if s is not None)
            extra = 1 + sum(1 for _ in readers[long])
            raise DataError(paths[short], None, msg(
                "E104", a=paths[short], na=n, b=paths[long], nb=n + extra))
        n += 1
        yield tuple(row)
