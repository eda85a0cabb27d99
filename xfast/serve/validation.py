"""The checks of a projection's input, shared by :class:`~xfast.serve.projector.Projector` and
``xfast serve`` (which runs them before a request is queued, with its size :class:`Limits`).

Every refusal is a :class:`~xfast.errors.FieldError` naming the field (``loc``), the value and
the rule: [E305] a malformed pair, [E320] a size over a limit, [E321] an option out of range.
What is refused, beyond the shape of the input:

- a word that is empty or only whitespace (it has nothing to align);
- text holding a lone surrogate (``"\\ud800"``: not Unicode text, no encoder can read it);
- an entity type that is empty, longer than :data:`TYPE_MAX_CHARS`, holds whitespace or a
  control character, or starts with ``B-``/``I-`` (the type goes into IOB2 labels as
  ``B-TYPE``: give ``PER``, not ``B-PER``);
- entities that overlap (IOB2 labels hold one entity per word);
- options outside their ranges: ``length_ratio`` in (0, 1], ``merge_distance`` and
  ``max_words`` from 0, ``min_words`` from 1, the integers up to :data:`INT_OPTION_MAX`, and
  ``min_words`` at most ``max_words`` unless ``max_words`` is 0 (the sentence length).

This module imports neither FastAPI nor pydantic: the Python API uses it without the server.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xfast.errors import FieldError
from xfast.io.labels import Entity

__all__ = ["Limits", "TYPE_MAX_CHARS", "TYPE_PATTERN", "WORD_PATTERN", "INT_OPTION_MAX", "check_pair",
           "check_align_pair", "check_pairs", "check_method", "check_config"]

#: longest entity type, in characters
TYPE_MAX_CHARS = 64
#: whitespace as both Python and JavaScript (JSON Schema) regular expressions read ``\s``
_BLANK = r"\s\x1c-\x1f\x85\ufeff"
#: an entity type: no IOB prefix, no whitespace or control characters (JSON Schema form too)
TYPE_PATTERN = rf"^(?![BI]-)[^{_BLANK}\x00-\x1f\x7f-\x9f]+$"
#: a word: at least one character that is not whitespace (JSON Schema form too)
WORD_PATTERN = rf"[^{_BLANK}]"
#: the largest integer option (merge_distance, min_words, max_words): kernels add them to
#: word positions in 64-bit integers, which this keeps far from overflow
INT_OPTION_MAX = 2**31 - 1

_TYPE = re.compile(TYPE_PATTERN)
_VISIBLE = re.compile(WORD_PATTERN)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    """Size bounds of one request (``xfast serve``'s ``--max-pairs``, ``--max-sentence-words``,
    ``--max-word-chars``): each keeps one request's cost bounded, so it cannot hold others up."""

    max_pairs: int = 256
    max_sentence_words: int = 500
    max_word_chars: int = 200


def check_method(method: object, methods: Sequence[str], loc: tuple = ("method",)) -> str:
    """``method`` if it is one of ``methods``, else [E305] at ``loc``."""
    if not isinstance(method, str) or method not in methods:
        raise FieldError(loc, "E305", problem=f"unknown method {method!r}; the methods offered are {list(methods)}")
    return method


def check_pairs(pairs: Sequence, limits: Limits | None = None) -> None:
    """[E320] when a request holds more pairs than ``limits.max_pairs``."""
    if limits is not None and len(pairs) > limits.max_pairs:
        raise FieldError(("pairs",), "E320", count=len(pairs), what="pairs", limit=limits.max_pairs,
                         option="--max-pairs")


def check_pair(i: int, pair: object, limits: Limits | None = None) -> tuple[list[str], list[Entity], list[str]]:
    """Pair ``i`` as ``(labeled words, entities, receiving words)``, checked."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 3:
        raise FieldError(("pairs", i), "E305", problem="expected (labeled words, entities, receiving words)")
    labeled = check_words(pair[0], ("pairs", i, "labeled"), limits)
    receiving = check_words(pair[2], ("pairs", i, "receiving"), limits)
    return labeled, check_entities(pair[1], ("pairs", i, "entities"), len(labeled)), receiving


def check_align_pair(i: int, pair: object, limits: Limits | None = None) -> tuple[list[str], list[str]]:
    """Pair ``i`` as ``(labeled words, receiving words)``, checked."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise FieldError(("pairs", i), "E305", problem="expected (labeled, receiving) words")
    return check_words(pair[0], ("pairs", i, "labeled"), limits), check_words(pair[1], ("pairs", i, "receiving"),
                                                                              limits)


def check_words(words: object, loc: tuple, limits: Limits | None = None) -> list[str]:
    """A sentence: a non-empty list of words, each a string with a visible character."""
    if isinstance(words, str) or not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
        raise FieldError(loc, "E305", problem="expected a list of words (strings)")
    if not words:
        raise FieldError(loc, "E305", problem="the sentence is empty")
    if limits is not None:
        if len(words) > limits.max_sentence_words:
            raise FieldError(loc, "E320", count=len(words), what="words", limit=limits.max_sentence_words,
                             option="--max-sentence-words")
        lengths = list(map(len, words))
        if max(lengths) > limits.max_word_chars:
            k = lengths.index(max(lengths))
            raise FieldError((*loc, k), "E320", count=lengths[k], what="characters", limit=limits.max_word_chars,
                             option="--max-word-chars")
    for k, w in enumerate(words):
        if not _VISIBLE.search(w):
            raise FieldError((*loc, k), "E305", problem=f"the word {w!r} is empty or only whitespace; a word "
                                                        "needs a character that is not whitespace")
    if _SURROGATE.search("".join(words)):
        for k, w in enumerate(words):
            _check_text(w, (*loc, k))
    return list(words)


def check_entities(entities: object, loc: tuple, n_words: int) -> list[Entity]:
    """``[start, end, TYPE]`` half-open spans of ``n_words`` words, with valid types, that do
    not overlap (in any order)."""
    out = []
    for j, e in enumerate(entities if isinstance(entities, (list, tuple)) else [None]):
        if (not isinstance(e, (list, tuple)) or len(e) != 3 or not isinstance(e[2], str)
                or any(isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) for x in e[:2])):
            raise FieldError((*loc, j), "E305", problem="expected [start, end, \"TYPE\"]")
        a, b = int(e[0]), int(e[1])
        if not 0 <= a < b <= n_words:
            raise FieldError((*loc, j), "E305", problem=(
                f"span [{a}, {b}) is not a non-empty span of the {n_words} labeled words"))
        check_type(e[2], (*loc, j, 2))
        out.append((a, b, e[2]))
    order = sorted(range(len(out)), key=lambda j: out[j][:2])
    for prev, j in itertools.pairwise(order):
        if out[j][0] < out[prev][1]:
            later, other = max(prev, j), min(prev, j)
            raise FieldError((*loc, later), "E305", problem=(
                f"span [{out[later][0]}, {out[later][1]}) overlaps entity {other}, [{out[other][0]}, "
                f"{out[other][1]}); IOB2 labels hold one entity per word, so entities must not overlap"))
    return out


def check_type(label: str, loc: tuple) -> None:
    """An entity type: 1 to :data:`TYPE_MAX_CHARS` characters matching :data:`TYPE_PATTERN`."""
    _check_text(label, loc)
    if not label or len(label) > TYPE_MAX_CHARS or not _TYPE.fullmatch(label):
        if label[:2] in ("B-", "I-") and len(label) > 2:
            why = f"give the type without its IOB prefix, e.g. {label[2:]!r}: labels are written B-TYPE and I-TYPE"
        else:
            why = (f"a type is 1 to {TYPE_MAX_CHARS} characters without whitespace or control characters, "
                   "e.g. 'PER'")
        raise FieldError(loc, "E305", problem=f"invalid entity type {_short(label)}: {why}")


def check_config(config: object, loc: tuple = ()) -> None:
    """The projection options of a :class:`~xfast.project.config.ProjectionConfig`, each
    named ``loc`` + its name ([E321])."""
    ratio = config.length_ratio
    if (isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, (int, float, np.integer, np.floating))
            or not math.isfinite(ratio) or not 0 < ratio <= 1):
        raise FieldError((*loc, "length_ratio"), "E321", expected="a number in (0, 1]: a kept span is longer "
                                                                  "than this share of its entity", value=ratio)
    for name, low in (("merge_distance", 0), ("min_words", 1), ("max_words", 0)):
        value = getattr(config, name)
        if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
                or not low <= value <= INT_OPTION_MAX):
            raise FieldError((*loc, name), "E321", expected=f"an integer from {low} to {INT_OPTION_MAX:,}",
                             value=value)
    if config.max_words and config.min_words > config.max_words:
        raise FieldError((*loc, "min_words"), "E321", value=config.min_words, expected=(
            f"at most max_words ({config.max_words}), or max_words 0 (up to the sentence length)"))


def _check_text(text: str, loc: tuple) -> None:
    """[E305] for a lone surrogate in ``text``."""
    hit = _SURROGATE.search(text)
    if hit is not None:
        raise FieldError(loc, "E305", problem=(
            f"holds a lone surrogate {hit.group()!r} at character {hit.start()}; text must be valid Unicode "
            "(a \\ud800-\\udfff escape in JSON must be one half of a pair)"))


def _short(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"
