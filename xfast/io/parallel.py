"""Parallel corpora: two or more files read in lockstep, one sentence of each at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from xfast.errors import DataError, msg
from xfast.errors import short as shortened
from xfast.io.conll import Sentence, read_conll, read_text
from xfast.io.files import lines
from xfast.io.jsonl import read_jsonl

__all__ = ["read_any", "read_parallel", "plain_text_error", "plain_text_reason"]


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
    if suffix in (".tok", ".text") or (suffix == ".txt" and not _looks_like_conll(path)):
        if labels:
            raise plain_text_error(path)
        return read_text(path)
    return read_conll(path, labels=labels is not False)


def _looks_like_conll(path: str | Path, lines_to_check: int = 20) -> bool:
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
