"""Streaming readers and atomic writers: CoNLL, plain text, JSONL, Pharaoh, parallel corpora."""

from xfast.io.conll import Sentence, entities_of, labels_of, read_conll, read_text, to_iob2, write_conll
from xfast.io.jsonl import read_jsonl, write_jsonl
from xfast.io.parallel import read_any, read_parallel
from xfast.io.pharaoh import format_pharaoh, parse_pharaoh, read_pharaoh, write_pharaoh

__all__ = [
    "Sentence", "read_conll", "read_text", "write_conll", "to_iob2", "entities_of", "labels_of",
    "read_jsonl", "write_jsonl", "read_any", "read_parallel",
    "parse_pharaoh", "format_pharaoh", "read_pharaoh", "write_pharaoh",
]
