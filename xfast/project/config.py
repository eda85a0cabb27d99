"""Projection settings and method names, shared by the pipelines, the server and the API.

A :class:`ProjectionConfig` holds the options of the heuristic and of candidate matching
(docs/projection.md); :data:`PROJECTION_METHODS` names the methods a run can write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xfast.errors import ParameterError, check_choice, msg

__all__ = ["PROJECTION_METHODS", "ProjectionConfig", "methods_valid"]

PROJECTION_METHODS = ("heuristic", "ngram-greedy", "ngram-bipartite", "ner-greedy", "ner-bipartite")


@dataclass(frozen=True)
class ProjectionConfig:
    """Projection settings with docs/projection.md defaults (frozen: hashable, safe to share)."""

    length_ratio: float = 0.8
    merge_distance: int = 1
    min_words: int = 1
    max_words: int = 0
    stop_words: tuple[str, ...] = ("!", "?")
    sub_spans: bool = False
    compat: bool = False

    def check(self) -> ProjectionConfig:
        """This config, or :class:`ParameterError` [E202] for a ``length_ratio`` outside (0, 1]
        (a span is kept when it covers more than that share of its entity: 0 keeps every span,
        above 1 none)."""
        ratio = self.length_ratio
        try:
            ok = not isinstance(ratio, bool) and 0 < float(ratio) <= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(msg("E202", name="length_ratio", expected="a number in (0, 1], e.g. 0.8",
                                     value=ratio))
        return self


def methods_valid(methods: Sequence[str]) -> None:
    """Raise [E201] for a method outside :data:`PROJECTION_METHODS`."""
    for m in methods:
        check_choice("methods", m, PROJECTION_METHODS)
