"""Streaming readers and atomic writers: CoNLL, plain text, JSONL, Parquet, Pharaoh, parallel corpora.

Layers, each importing only those below it: :mod:`~xfast.io.labels` (sentences, entities, IOB2)
and :mod:`~xfast.io.tokens` (columnar batches); :mod:`~xfast.io.files` (decoding, atomic
writes); one module per format (:mod:`~xfast.io.conll`, :mod:`~xfast.io.jsonl`,
:mod:`~xfast.io.parquet`, :mod:`~xfast.io.pharaoh`); :mod:`~xfast.io.readers`, which picks
the format of a file and holds every read, count and check entry.
"""

from xfast.io.conll import read_conll, read_text, write_conll
from xfast.io.jsonl import read_jsonl, write_jsonl
from xfast.io.labels import Entity, Sentence, entities_of, labels_of, to_iob2
from xfast.io.pharaoh import format_pharaoh, parse_pharaoh, read_pharaoh, write_pharaoh
from xfast.io.readers import read_any, read_parallel

__all__ = [
    "Sentence", "Entity", "read_conll", "read_text", "write_conll", "to_iob2", "entities_of", "labels_of",
    "read_jsonl", "write_jsonl", "read_any", "read_parallel",
    "parse_pharaoh", "format_pharaoh", "read_pharaoh", "write_pharaoh",
]
