"""Detokenization: words back to a sentence for translation (docs/translation.md).

Treebank rules (NLTK's ``TreebankWordDetokenizer``) for languages written with spaces;
plain concatenation for Chinese, Japanese and Thai.
"""

from __future__ import annotations

from xfast.errors import ParameterError, msg
from xfast.text.split import splitter_lang

__all__ = ["detokenize", "treebank_detokenize"]

_state: dict[str, object] = {}


def treebank_detokenize(words: list[str]) -> str:
    """NLTK Treebank detokenization (``[ X ]`` becomes ``[X]``, ````` ``/``''`` become ``"``)."""
    detok = _state.get("treebank")
    if detok is None:
        from nltk.tokenize.treebank import TreebankWordDetokenizer

        detok = _state.setdefault("treebank", TreebankWordDetokenizer())
    return detok.detokenize(list(words))


def detokenize(words: list[str], lang: str) -> str:
    """Join ``words`` of a sentence in ``lang``: ``"".join`` for zh/ja/th, Treebank otherwise."""
    if isinstance(words, str) or not all(isinstance(w, str) for w in words):
        raise ParameterError(msg("E202", name="words", expected="a list of str", value=words))
    if splitter_lang(lang) in ("zh", "ja", "th"):
        return "".join(words)
    return treebank_detokenize(words)
