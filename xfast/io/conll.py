"""CoNLL reading and writing: one token per line, the label in the last column.

Readers stream (a block of about 1 MiB in memory at a time), name the line of every error
(an encoding error included), skip document markers (lines whose first field is exactly
``-DOCSTART-``), normalise IOB1 input to IOB2, and keep empty sentences: a blank line ends the
sentence before it, and any further blank line is an empty sentence (except blank lines
right after ``-DOCSTART-``), so ``write_conll`` round-trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from xfast.errors import DataError, msg
from xfast.io.files import atomic_open

__all__ = ["Sentence", "read_conll", "write_conll", "read_text", "to_iob2", "check_label",
           "entities_of", "labels_of"]


@dataclass
class Sentence:
    """A sentence as read from a file: ``tokens``, IOB2 ``labels`` (or None) and its first line."""

    tokens: list[str]
    labels: list[str] | None = None
    line: int = 0

    def __len__(self) -> int:
        return len(self.tokens)


def check_label(label: str, path: str | Path | None = None, line: int | None = None) -> None:
    """Raise [E103] unless ``label`` is ``O`` or ``B-X`` / ``I-X``."""
    if label == "O":
        return
    if len(label) > 2 and label[0] in "BI" and label[1] == "-":
        return
    raise DataError(path, line, msg("E103", label=label))


def to_iob2(labels: list[str]) -> list[str]:
    """Normalise IOB1 to IOB2: an ``I-X`` after ``O`` or after another type starts an entity."""
    out = list(labels)
    prev = "O"
    for i, lab in enumerate(out):
        if lab.startswith("I-") and (prev == "O" or prev[2:] != lab[2:]):
            out[i] = "B-" + lab[2:]
        prev = out[i]
    return out


def entities_of(labels: list[str]) -> list[tuple[int, int, str]]:
    """Entities ``(start, end, type)`` of an IOB2 sequence (an orphan ``I-X`` starts one)."""
    ents: list[tuple[int, int, str]] = []
    start, typ = -1, ""
    for i, lab in enumerate(labels):
        if lab.startswith("I-") and start >= 0 and lab[2:] == typ:
            continue
        if start >= 0:
            ents.append((start, i, typ))
            start = -1
        if lab != "O":
            start, typ = i, lab[2:]
    if start >= 0:
        ents.append((start, len(labels), typ))
    return ents


def labels_of(entities: Iterable[tuple[int, int, str]], n: int) -> list[str]:
    """IOB2 labels of length ``n`` for non-overlapping ``entities``."""
    out = ["O"] * n
    for s, e, t in entities:
        out[s] = "B-" + t
        for k in range(s + 1, e):
            out[k] = "I-" + t
    return out


def read_conll(path: str | Path, *, labels: bool = True) -> Iterator[Sentence]:
    """Stream sentences from a CoNLL file.

    With ``labels=True`` every line needs a token and a label (tab-separated, or
    whitespace-separated when the line has no tab); the label is the last column. With
    ``labels=False`` the first column is the token and sentences have ``labels=None``.
    Parsing runs in compiled code over blocks (:func:`xfast.io.columns.read_columns`).
    """
    from xfast.io.columns import LabelTypes, read_columns

    types = LabelTypes()
    for cols in read_columns(path, form="conll", labels=labels, chunk_size=256, types=types):
        yield from cols.to_sentences(types)


def read_text(path: str | Path) -> Iterator[Sentence]:
    """Stream pre-tokenized plain text: one sentence per line, tokens split on whitespace.

    An empty line is an empty sentence (line-aligned corpora keep their numbering).
    """
    from xfast.io.columns import LabelTypes, read_columns

    types = LabelTypes()
    for cols in read_columns(path, form="text", labels=False, chunk_size=256, types=types):
        yield from cols.to_sentences(types)


def write_conll(path: str | Path, sentences: Iterable[Sentence | tuple[list[str], list[str]]]) -> int:
    """Write ``token<TAB>label`` lines with a blank line after each sentence; return the count.

    The file is written under a temporary name and renamed, so a killed run leaves no half file.
    """
    n = 0
    with atomic_open(path) as fh:
        for sent in sentences:
            toks, labs = (sent.tokens, sent.labels) if isinstance(sent, Sentence) else sent
            if labs is None:
                labs = ["O"] * len(toks)
            for tok, lab in zip(toks, labs, strict=True):
                fh.write(f"{tok}\t{lab}\n")
            fh.write("\n")
            n += 1
    return n
