"""Sentences and their labels, independent of any file format (the leaf of :mod:`xfast.io`).

A :class:`Sentence` is what the readers yield; an :data:`Entity` is a half-open word span
``(start, end, type)``. Labels are IOB2 strings (``O``, ``B-TYPE``, ``I-TYPE``): IOB1 input
is normalised with :func:`to_iob2`, and :func:`entities_of` / :func:`labels_of` convert
between the two forms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from xfast.errors import DataError, msg

__all__ = ["Entity", "Sentence", "check_label", "to_iob2", "entities_of", "labels_of"]

#: An entity: words ``start..end-1`` (half-open) of one sentence, and its type (``"PER"``).
Entity = tuple[int, int, str]


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


def entities_of(labels: list[str]) -> list[Entity]:
    """Entities ``(start, end, type)`` of an IOB2 sequence (an orphan ``I-X`` starts one)."""
    ents: list[Entity] = []
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


def labels_of(entities: Iterable[Entity], n: int) -> list[str]:
    """IOB2 labels of length ``n`` for non-overlapping ``entities``."""
    out = ["O"] * n
    for s, e, t in entities:
        out[s] = "B-" + t
        for k in range(s + 1, e):
            out[k] = "I-" + t
    return out
