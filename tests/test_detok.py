"""SPEC §6 detokenization: Treebank rules, ``"".join`` for zh/ja/th."""

from __future__ import annotations

import pytest

from xfast.errors import ParameterError
from xfast.text.detok import detokenize


def test_treebank_rules():
    words = ["``", "Hello", "[", "New", "York", "]", "''", ",", "he", "said", "(", "twice", ")", "."]
    assert detokenize(words, "en") == '"Hello [New York]", he said (twice).'
    assert detokenize(["I", "do", "n't", "know", "--", "it", "'s", "3", "%", "!"], "en") == (
        "I don't know--it's 3%!"
    )


def test_brackets_close_up():
    # SPEC §5: "[ X ]" becomes "[X]", also around punctuation and next to other brackets.
    assert detokenize(["[", "X", "]"], "en") == "[X]"
    assert detokenize(["(", "[", "A", "]", ")"], "de") == "([A])"
    assert detokenize(["[", "U.S.", "]", "'s", "army"], "en") == "[U.S.]'s army"


def test_equals_nltk_detokenizer():
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    words = ["He", "said", ":", "``", "no", "''", ";", "she", "left", "...", "[", "a", "]", "?"]
    assert detokenize(words, "it") == TreebankWordDetokenizer().detokenize(words)


@pytest.mark.parametrize("lang", ["zh", "ja", "th", "zho_Hans", "jpn", "tha"])
def test_join_without_spaces(lang):
    assert detokenize(["東", "京", " ", "タワー", "abc", "1"], lang) == "東京 タワーabc1"


def test_empty_and_bad_input():
    assert detokenize([], "en") == ""
    assert detokenize([], "zh") == ""
    with pytest.raises(ParameterError, match=r"\[E202\].*'words'"):
        detokenize("a b", "en")
    with pytest.raises(ParameterError, match=r"\[E202\].*'lang'"):
        detokenize(["a"], "")
