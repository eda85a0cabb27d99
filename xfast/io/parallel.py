"""Parallel corpora: two or more files read in lockstep, one sentence of each at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from xfast.errors import DataError, msg
from xfast.io.conll import Sentence, read_conll, read_text
from xfast.io.jsonl import read_jsonl

__all__ = ["read_any", "read_parallel"]


def read_any(path: str | Path, *, labels: bool | None = None) -> Iterator[Sentence]:
    """Stream sentences of ``path`` by its form: ``.jsonl``, ``.txt``/``.tok`` plain text, else CoNLL.

    ``labels=None`` means: labels where the form has them (CoNLL and JSONL), none for plain text.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path, labels=labels is not False)
    if suffix in (".tok", ".text") or (suffix == ".txt" and labels is False):
        return read_text(path)
    return read_conll(path, labels=labels is not False)


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
