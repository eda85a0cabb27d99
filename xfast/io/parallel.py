"""Parallel corpora: two or more files read in lockstep, one sentence of each at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from xfast.errors import DataError, msg
from xfast.io.conll import Sentence, read_conll, read_text
from xfast.io.files import lines
from xfast.io.jsonl import read_jsonl

__all__ = ["read_any", "read_parallel"]


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
            raise DataError(path, None, msg("E102", line="(plain text: one sentence per line)"))
        return read_text(path)
    return read_conll(path, labels=labels is not False)


def _looks_like_conll(path: str | Path, lines_to_check: int = 20) -> bool:
    """True when the first non-blank lines all have two or more columns ending in a label."""
    seen = 0
    for _, text in lines(path):
        if not text.strip() or text.startswith("-DOCSTART-"):
            continue
        cols = text.split("\t") if "\t" in text else text.split()
        last = cols[-1].strip()
        if len(cols) < 2 or not (last == "O" or (len(last) > 2 and last[0] in "BI" and last[1] == "-")):
            return False
        seen += 1
        if seen == lines_to_check:
            break
    return seen > 0


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
