"""Text: word splitting and detokenization (docs/translation.md) and EasyProject markers (docs/translation.md)."""

from xfast.text.detok import detokenize
from xfast.text.easyproject import (
    EasyProjectStats,
    back_translate_batch,
    entity_texts,
    mark,
    match_brackets,
)
from xfast.text.split import Splitter, get_splitter, prefetch_nltk, split_words, wait_nltk

__all__ = [
    "EasyProjectStats",
    "Splitter",
    "back_translate_batch",
    "detokenize",
    "entity_texts",
    "get_splitter",
    "mark",
    "match_brackets",
    "prefetch_nltk",
    "split_words",
    "wait_nltk",
]
