"""Moved to :mod:`xfast.testing.tiny`: test tools live outside the runtime package.

Kept only so that code written against the old path keeps working while the CLI moves
(``xfast models tiny`` imports :mod:`xfast.testing.tiny`); nothing in xfast imports it. To be
removed with the other re-export shims.
"""

from xfast.testing.tiny import NER_LABELS, TINY_LAYER, TINY_VERSION, build_tiny, ensure_tiny, tiny_corpus, tiny_key

__all__ = ["NER_LABELS", "TINY_LAYER", "TINY_VERSION", "build_tiny", "ensure_tiny", "tiny_corpus", "tiny_key"]
