"""EasyProject marker back-translation (docs/translation.md).

The labeled English sentence gets ``[`` ``]`` around each entity and is detokenized
(:func:`mark`); it and every entity's own text (:func:`entity_texts`) are translated; then
:func:`match_brackets` pairs the translation's ``[...]`` segments with the entity
translations by ``difflib`` similarity and splits the translation into words so that
every matched segment is whole words. :func:`back_translate_batch` drives a batch with
exactly one translation call for all marked sentences and one for all entities.

``compat=True`` reproduces the reference's matching: the segment is compared with its
brackets, the *last* entity above the threshold wins, and an unmatched segment stays in
the text with its brackets (they become ``[`` and ``]`` words).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from xfast.errors import ParameterError, PipelineError, msg
from xfast.io.labels import Entity
from xfast.text.detok import treebank_detokenize
from xfast.text.split import get_splitter

__all__ = [
    "ENTITY_MAX_LENGTH",
    "SENTENCE_MAX_LENGTH",
    "EasyProjectStats",
    "back_translate_batch",
    "entity_texts",
    "mark",
    "match_brackets",
    "similarity",
]

SENTENCE_MAX_LENGTH = 400
ENTITY_MAX_LENGTH = 200

_SEGMENT = re.compile(r"\[(.*?)\]")


@dataclass
class EasyProjectStats:
    """Counts over the sentences matched so far (add to one object across batches).

    ``segments``: ``[...]`` segments found in translations; ``matched``: segments that
    became entities; ``unmatched_segments = segments - matched``; ``unmatched_entities``:
    entity translations that no segment matched (their entities are lost);
    ``empty_segments``: segments whose inner text has no word, which never match by
    default (counted among the unmatched segments too).
    """

    sentences: int = 0
    entities: int = 0
    segments: int = 0
    matched: int = 0
    unmatched_segments: int = 0
    unmatched_entities: int = 0
    empty_segments: int = 0

    def add(self, other: EasyProjectStats) -> None:
        """Add ``other``'s counts to these."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _check_entities(words: Sequence[str], entities: Sequence[Sequence], index: int) -> list[Entity]:
    """Entities as ``(start, end, label)``, sorted, non-overlapping and inside the sentence."""
    out: list[Entity] = []
    prev_end = 0
    for ent in entities:
        try:
            start, end, label = ent
        except (TypeError, ValueError):
            raise ParameterError(
                msg("E602", index=index, entity=ent, problem="expected a (start, end, label) triple")
            ) from None
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(words)):
            problem = f"need 0 <= start < end <= {len(words)} (the word count)"
            raise ParameterError(msg("E602", index=index, entity=ent, problem=problem))
        if start < prev_end:
            problem = "entities must be sorted by start and must not overlap"
            raise ParameterError(msg("E602", index=index, entity=ent, problem=problem))
        out.append((start, end, label))
        prev_end = end
    return out


def mark(words: Sequence[str], entities: Sequence[Sequence]) -> str:
    """The sentence with ``[`` before and ``]`` after each entity, Treebank-detokenized.

    ``entities`` are ``(start, end, label)`` word spans, sorted and non-overlapping.
    """
    return _mark(words, _check_entities(words, entities, 0))


def entity_texts(words: Sequence[str], entities: Sequence[Sequence]) -> list[str]:
    """Each entity's words, Treebank-detokenized, in entity order."""
    return _entity_texts(words, _check_entities(words, entities, 0))


def _mark(words: Sequence[str], entities: list[Entity]) -> str:
    marked: list[str] = []
    prev = 0
    for start, end, _ in entities:
        marked.extend(words[prev:start])
        marked.append("[")
        marked.extend(words[start:end])
        marked.append("]")
        prev = end
    marked.extend(words[prev:])
    return treebank_detokenize(marked)


def _entity_texts(words: Sequence[str], entities: list[Entity]) -> list[str]:
    return [treebank_detokenize(words[start:end]) for start, end, _ in entities]


def similarity(segment: str, entity_translation: str) -> float:
    """``difflib.SequenceMatcher(None, segment.lower(), entity_translation.lower()).ratio()``.

    Not symmetric: the segment is ``a``, the entity translation ``b``, as in the reference.
    """
    return SequenceMatcher(None, segment.lower(), entity_translation.lower()).ratio()


def _pick(segment: str, pool: list[str], threshold: float, compat: bool) -> int:
    """Index in ``pool`` of the entity translation matching ``segment``, or -1.

    Default: the highest ratio strictly above ``threshold`` (ties: lowest index).
    compat: the last index whose ratio is strictly above ``threshold``. The quick ratio
    bounds of ``SequenceMatcher`` skip pairs that cannot qualify (exact: they are upper
    bounds of ``ratio``).
    """
    a = segment.lower()
    best, best_score = -1, threshold
    for idx, candidate in enumerate(pool):
        sm = SequenceMatcher(None, a, candidate.lower())
        bar = threshold if compat else best_score
        if sm.real_quick_ratio() <= bar or sm.quick_ratio() <= bar:
            continue
        score = sm.ratio()
        if score > bar:
            best = idx
            if not compat:
                best_score = score
    return best


def match_brackets(
    translation: str,
    entity_translations: Sequence[str],
    labels: Sequence[str],
    *,
    threshold: float = 0.5,
    compat: bool = False,
    lang: str = "en",
    stats: EasyProjectStats | None = None,
) -> tuple[list[str], list[Entity]]:
    """Words and entities of a marked back-translation (docs/translation.md).

    ``translation`` is the translated marked sentence; ``entity_translations[k]`` is the
    translation of the entity labeled ``labels[k]``. Segments ``[...]`` are taken left to
    right; each is scored against the entity translations not yet used and takes the
    label of the one that matches. The text before a matched segment, its inner text and
    the tail are split separately with the back-translation splitter of ``lang``.
    Returns ``(words, entities)`` with entities ``(start, end, label)`` in segment order.
    If ``stats`` is given, this sentence's counts are added to it.
    """
    if len(entity_translations) != len(labels):
        sizes = dict(a=len(entity_translations), b=len(labels))
        raise ParameterError(msg("E604", a_name="entity_translations", b_name="labels", **sizes))
    _check_threshold(threshold)
    split = get_splitter(lang, side="back", compat=compat)
    pool = list(entity_translations)
    pool_labels = list(labels)
    words: list[str] = []
    entities: list[Entity] = []
    pending: list[str] = []  # default mode: text before the next split, unmatched brackets removed
    cursor = 0
    counts = EasyProjectStats(sentences=1, entities=len(pool))
    for seg in _SEGMENT.finditer(translation):
        counts.segments += 1
        inner = seg.group(1)
        if compat:
            idx = _pick(seg.group(0), pool, threshold, compat=True) if pool else -1
        elif not inner.strip():
            counts.empty_segments += 1
            idx = -1
        else:
            idx = _pick(inner, pool, threshold, compat=False) if pool else -1
        if idx < 0:
            counts.unmatched_segments += 1
            if not compat:
                pending.append(translation[cursor : seg.start()])
                pending.append(inner)
                cursor = seg.end()
            continue
        pending.append(translation[cursor : seg.start()])
        words.extend(split("".join(pending)))
        pending.clear()
        start = len(words)
        words.extend(split(inner))
        entities.append((start, len(words), pool_labels.pop(idx)))
        del pool[idx]
        counts.matched += 1
        cursor = seg.end()
    pending.append(translation[cursor:])
    words.extend(split("".join(pending)))
    counts.unmatched_entities = len(pool)
    if stats is not None:
        stats.add(counts)
    return words, entities


def _check_threshold(threshold: float) -> None:
    number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not number or not 0.0 <= threshold <= 1.0:
        raise ParameterError(msg("E202", name="threshold", expected="a number in [0, 1]", value=threshold))


def back_translate_batch(
    sentences: Sequence[Sequence[str]],
    entities: Sequence[Sequence[Sequence]],
    translate: Callable[[list[str], int], list[str]],
    *,
    lang: str,
    threshold: float = 0.5,
    compat: bool = False,
    stats: EasyProjectStats | None = None,
) -> list[tuple[list[str], list[Entity]]]:
    """EasyProject back-translation of a batch of labeled sentences into ``lang``.

    ``translate(texts, max_length)`` is called once with every marked sentence
    (``max_length`` 400) and once with the entity texts of the whole batch
    (``max_length`` 200); a call with nothing to translate is skipped. Returns one
    ``(words, entities)`` per sentence (see :func:`match_brackets`); counts of unmatched
    segments and entities are added to ``stats`` when given.
    """
    if len(sentences) != len(entities):
        sizes = dict(a=len(sentences), b=len(entities))
        raise ParameterError(msg("E604", a_name="sentences", b_name="entities", **sizes))
    _check_threshold(threshold)
    get_splitter(lang, side="back", compat=compat)  # validate lang before translating
    checked = [_check_entities(words, ents, i) for i, (words, ents) in enumerate(zip(sentences, entities))]
    if not sentences:
        return []
    marked = [_mark(words, ents) for words, ents in zip(sentences, checked)]
    texts = [text for words, ents in zip(sentences, checked) for text in _entity_texts(words, ents)]
    sent_out = _call(translate, marked, SENTENCE_MAX_LENGTH, "marked sentences")
    ent_out = _call(translate, texts, ENTITY_MAX_LENGTH, "entity texts") if texts else []
    results = []
    offset = 0
    for translation, ents in zip(sent_out, checked):
        n = len(ents)
        results.append(
            match_brackets(
                translation,
                ent_out[offset : offset + n],
                [label for _, _, label in ents],
                threshold=threshold,
                compat=compat,
                lang=lang,
                stats=stats,
            )
        )
        offset += n
    return results


def _call(
    translate: Callable[[list[str], int], list[str]], texts: list[str], max_length: int, what: str
) -> list[str]:
    out = list(translate(texts, max_length))
    if len(out) != len(texts) or not all(isinstance(t, str) for t in out):
        got = len(out) if len(out) != len(texts) else f"{len(out)} (not all str)"
        raise PipelineError(msg("E603", got=got, expected=len(texts), what=what))
    return out
