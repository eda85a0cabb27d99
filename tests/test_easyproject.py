"""SPEC §5 EasyProject: markers, bracket matching (default and compat) and the batch driver.

Hand-written translations cover each quirk; a plain oracle written from SPEC §5 (sharing no
code with xfast, splitting with NLTK itself) checks random translations.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_split import nltk_punkt_tab  # noqa: F401  (fixture)
from xfast.errors import ParameterError, PipelineError
from xfast.text.easyproject import (
    ENTITY_MAX_LENGTH,
    SENTENCE_MAX_LENGTH,
    EasyProjectStats,
    back_translate_batch,
    entity_texts,
    mark,
    match_brackets,
    similarity,
)

# --- markers -----------------------------------------------------------------------------


def test_mark_and_entity_texts():
    words = ["``", "John", "Smith", "''", "visited", "New", "York", "'s", "U.N.", "office", "."]
    ents = [(1, 3, "PER"), (5, 7, "LOC"), (8, 9, "ORG")]
    assert mark(words, ents) == '"[John Smith]" visited [New York]\'s [U.N.] office.'
    assert entity_texts(words, ents) == ["John Smith", "New York", "U.N."]
    assert mark(words, []) == '"John Smith" visited New York\'s U.N. office.'
    assert entity_texts(words, []) == []
    # an entity at both ends and adjacent entities
    assert mark(["A", "B", "C"], [(0, 1, "X"), (1, 2, "Y"), (2, 3, "Z")]) == "[A] [B] [C]"


@pytest.mark.parametrize(
    "ents",
    [
        [(0, 0, "PER")],  # empty
        [(1, 4, "PER")],  # past the end
        [(-1, 1, "PER")],
        [(1, 2, "PER"), (0, 1, "LOC")],  # unsorted
        [(0, 2, "PER"), (1, 3, "LOC")],  # overlapping
        [(0, 1)],  # not a triple
        [(0.0, 1, "PER")],
    ],
)
def test_mark_rejects_invalid_entities(ents):
    with pytest.raises(ParameterError, match=r"\[E602\] sentence 0: invalid entity"):
        mark(["a", "b", "c"], ents)


# --- matching quirks ---------------------------------------------------------------------


def test_similarity_argument_order():
    # difflib's ratio is not symmetric: the segment is a, the entity translation b.
    assert similarity("Bcca", "Cabca") > 0.5 >= similarity("Cabca", "Bcca")
    words, ents = match_brackets("x [Bcca] y", ["Cabca"], ["PER"])
    assert ents == [(1, 2, "PER")]
    words, ents = match_brackets("x [Cabca] y", ["Bcca"], ["PER"])
    assert ents == [] and words == ["x", "Cabca", "y"]


def test_case_insensitive():
    assert match_brackets("[NEW YORK] ist groß", ["new york"], ["LOC"], lang="de")[1] == [(0, 2, "LOC")]


def test_best_wins_by_default_last_above_threshold_in_compat():
    # Both entity translations are above 0.5 for the segment; the first is the better one.
    seg, e1, e2 = "Berliner Mauer", "Berliner Mauer", "Berliner Mau"
    assert similarity(seg, e1) > similarity(seg, e2) > 0.5
    assert similarity("[" + seg + "]", e2) > 0.5
    text = f"Die [{seg}] fiel."
    assert match_brackets(text, [e1, e2], ["LOC", "MISC"], lang="de")[1] == [(1, 3, "LOC")]
    assert match_brackets(text, [e1, e2], ["LOC", "MISC"], lang="de", compat=True)[1] == [(1, 3, "MISC")]


def test_ties_go_to_the_first_entity_by_default():
    assert match_brackets("[Anna]", ["Anna", "anna"], ["PER", "ORG"])[1] == [(0, 1, "PER")]
    assert match_brackets("[Anna]", ["Anna", "anna"], ["PER", "ORG"], compat=True)[1] == [(0, 1, "ORG")]


def test_compat_compares_with_brackets_so_one_character_entities_never_match():
    # "[x]" vs "x": 2*1/4 = 0.5, not above the threshold.
    words, ents = match_brackets("Plan [B] und [C] .", ["B", "C"], ["MISC", "MISC"], lang="de", compat=True)
    assert ents == []
    assert words == ["Plan", "[", "B", "]", "und", "[", "C", "]", "."]
    words, ents = match_brackets("Plan [B] und [C] .", ["B", "C"], ["MISC", "ORG"], lang="de")
    assert ents == [(1, 2, "MISC"), (3, 4, "ORG")]
    assert words == ["Plan", "B", "und", "C", "."]


def test_threshold_is_strict():
    assert similarity("ab", "ax") == 0.5
    assert match_brackets("[ab]", ["ax"], ["PER"])[1] == []
    assert match_brackets("[ab]", ["ax"], ["PER"], threshold=0.49)[1] == [(0, 1, "PER")]
    assert match_brackets("[ab]", ["ab"], ["PER"], threshold=1.0)[1] == []


def test_unmatched_segments_become_plain_text_by_default_and_keep_brackets_in_compat():
    text = "Er traf [Zzz] in [Paris] ."
    stats = EasyProjectStats()
    words, ents = match_brackets(text, ["Paris", "Anna"], ["LOC", "PER"], lang="de", stats=stats)
    assert words == ["Er", "traf", "Zzz", "in", "Paris", "."]
    assert ents == [(4, 5, "LOC")]
    assert stats == EasyProjectStats(
        sentences=1, entities=2, segments=2, matched=1, unmatched_segments=1, unmatched_entities=1
    )
    words, ents = match_brackets(text, ["Paris", "Anna"], ["LOC", "PER"], lang="de", compat=True)
    assert words == ["Er", "traf", "[", "Zzz", "]", "in", "Paris", "."]
    assert ents == [(6, 7, "LOC")]


def test_an_entity_translation_is_used_once():
    # Both segments look like "Paris"; only one entity translation exists.
    words, ents = match_brackets("[Paris] und [Paris]", ["Paris"], ["LOC"], lang="de")
    assert ents == [(0, 1, "LOC")] and words == ["Paris", "und", "Paris"]
    # Labels follow the entity translation that matched, whatever the order of segments.
    _, ents = match_brackets("[Berlin] nach [Anna]", ["Anna", "Berlin"], ["PER", "LOC"], lang="de")
    assert ents == [(0, 1, "LOC"), (2, 3, "PER")]


def test_matched_segments_always_end_words():
    # Pieces are split separately, so "foo[Bar]baz" still gives the entity its own word.
    words, ents = match_brackets("foo[Bar]baz", ["bar"], ["ORG"], lang="de")
    assert words == ["foo", "Bar", "baz"] and ents == [(1, 2, "ORG")]
    # Quotes around a matched segment are their own words (and become '"').
    words, ents = match_brackets('Sie sagte "[Anna Maria]" .', ["Anna Maria"], ["PER"], lang="de")
    assert words == ["Sie", "sagte", '"', "Anna", "Maria", '"', "."]
    assert ents == [(3, 5, "PER")]


def test_empty_segment_never_matches_by_default():
    stats = EasyProjectStats()
    words, ents = match_brackets("a [] b [ ] c", ["", " "], ["PER", "LOC"], stats=stats)
    assert ents == [] and words == ["a", "b", "c"]
    assert stats.empty_segments == 2 and stats.unmatched_segments == 2 and stats.unmatched_entities == 2


def test_odd_brackets():
    # The segment regex is non-greedy and does not nest: "[[Anna] x]" holds the segment "[Anna".
    words, ents = match_brackets("[[Anna] x] y", ["[anna"], ["PER"], lang="de")
    assert ents == [(0, 2, "PER")] and words == ["[", "Anna", "x", "]", "y"]
    words, ents = match_brackets("Anna] [x", ["Anna"], ["PER"], lang="de")
    assert ents == [] and words == ["Anna", "]", "[", "x"]


def test_languages_without_spaces():
    words, ents = match_brackets("我在[北京]工作", ["北京"], ["LOC"], lang="zh")
    assert ents == [(2, 3, "LOC")] and words[2] == "北京"
    words, ents = match_brackets("[東京]へ行く", ["東京"], ["LOC"], lang="ja")
    assert words == ["東", "京", "へ", "行", "く"] and ents == [(0, 2, "LOC")]
    # compat: the Japanese/Thai splitter's stray "a" also applies to back-translations
    words, _ = match_brackets("[Sanaa]へ", ["Sanaa"], ["LOC"], lang="ja", compat=True)
    assert words == ["S", "a", "n", "a", "a", "へ"]


def test_match_brackets_validation():
    with pytest.raises(ParameterError, match=r"\[E604\] entity_translations has 2 items but labels has 1"):
        match_brackets("[a]", ["a", "b"], ["PER"])
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ParameterError, match=r"\[E202\].*'threshold'"):
            match_brackets("[a]", ["a"], ["PER"], threshold=bad)


# --- oracle ------------------------------------------------------------------------------


def _oracle(translation, ent_trs, labels, threshold, compat, word_tokenize):
    """SPEC §5 written out plainly: choose matches first, then cut the text at them."""

    def split(text):
        return ['"' if w in ("``", "''") else w for w in word_tokenize(text)]

    segments = list(re.finditer(r"\[(.*?)\]", translation))
    left = list(range(len(ent_trs)))
    match_of = {}
    for k, seg in enumerate(segments):
        a = seg.group(0) if compat else seg.group(1)
        if not compat and not seg.group(1).strip():
            continue
        above = [i for i in left if SequenceMatcher(None, a.lower(), ent_trs[i].lower()).ratio() > threshold]
        if not above:
            continue
        if compat:
            pick = above[-1]
        else:
            ratios = {i: SequenceMatcher(None, a.lower(), ent_trs[i].lower()).ratio() for i in above}
            pick = max(above, key=lambda i: (ratios[i], -i))
        match_of[k] = pick
        left.remove(pick)
    words, ents, chunk, pos = [], [], "", 0
    for k, seg in enumerate(segments):
        chunk += translation[pos : seg.start()]
        pos = seg.end()
        if k not in match_of:
            chunk += seg.group(0) if compat else seg.group(1)
            continue
        words += split(chunk)
        chunk = ""
        inner = split(seg.group(1))
        ents.append((len(words), len(words) + len(inner), labels[match_of[k]]))
        words += inner
    words += split(chunk + translation[pos:])
    return words, ents


_PIECES = ["Anna", "Berlin", "Bern", "New", "York", "x", ",", ".", '"', "[", "]", "[", "]", " ", "  "]
_ENTS = ["Anna", "anna", "Berlin", "Berl", "New York", "York", "x", "", "[x]", "B"]


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.sampled_from(_PIECES), max_size=16),
    spaces=st.lists(st.booleans(), min_size=16, max_size=16),
    ent_trs=st.lists(st.sampled_from(_ENTS), max_size=4),
    threshold=st.sampled_from([0.0, 0.3, 0.5, 0.7]),
    compat=st.booleans(),
)
def test_matches_oracle(nltk_punkt_tab, parts, spaces, ent_trs, threshold, compat):  # noqa: F811
    text = "".join(p + (" " if s else "") for p, s in zip(parts, spaces))
    labels = [f"L{i}" for i in range(len(ent_trs))]
    got = match_brackets(text, list(ent_trs), labels, threshold=threshold, compat=compat, lang="de")
    assert got == _oracle(text, ent_trs, labels, threshold, compat, nltk_punkt_tab)


# --- batch driver ------------------------------------------------------------------------


class FakeTranslator:
    """Word-by-word dictionary 'translation' that records its calls."""

    TABLE = {"visited": "besuchte", "met": "traf", "in": "in", "and": "und"}

    def __init__(self):
        self.calls = []

    def __call__(self, texts, max_length):
        self.calls.append((list(texts), max_length))
        return [" ".join(self.TABLE.get(w, w) for w in t.split(" ")) for t in texts]


SENTS = [
    ["John", "Smith", "visited", "New", "York", "."],
    ["Nothing", "here", "."],
    ["Anna", "met", "Bob", "in", "Paris", "and", "Rome", "."],
    ["[", "odd", "]", "Bern", "."],
]
ENTS = [
    [(0, 2, "PER"), (3, 5, "LOC")],
    [],
    [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "LOC"), (6, 7, "LOC")],
    [(3, 4, "LOC")],
]


def test_batch_translates_twice_and_matches_per_sentence():
    fake = FakeTranslator()
    stats = EasyProjectStats()
    out = back_translate_batch(SENTS, ENTS, fake, lang="de", stats=stats)
    assert [m for _, m in fake.calls] == [SENTENCE_MAX_LENGTH, ENTITY_MAX_LENGTH] == [400, 200]
    assert fake.calls[0][0] == [mark(w, e) for w, e in zip(SENTS, ENTS)]
    assert fake.calls[1][0] == ["John Smith", "New York", "Anna", "Bob", "Paris", "Rome", "Bern"]
    assert out[0] == (["John", "Smith", "besuchte", "New", "York", "."], [(0, 2, "PER"), (3, 5, "LOC")])
    assert out[1] == (["Nothing", "here", "."], [])
    assert out[2][1] == [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "LOC"), (6, 7, "LOC")]
    assert out[2][0][1] == "traf" and out[2][0][5] == "und"
    # the source's own "[ odd ]" becomes a segment that matches nothing
    assert out[3] == (["odd", "Bern", "."], [(1, 2, "LOC")])
    assert stats.sentences == 4 and stats.entities == 7 and stats.matched == 7
    assert stats.unmatched_segments == 1 and stats.unmatched_entities == 0


def test_batch_equals_sentence_by_sentence_for_any_batch_size():
    whole = back_translate_batch(SENTS, ENTS, FakeTranslator(), lang="de", compat=True)
    for size in (1, 2, 3):
        parts = []
        for i in range(0, len(SENTS), size):
            chunk = SENTS[i : i + size], ENTS[i : i + size]
            parts += back_translate_batch(*chunk, FakeTranslator(), lang="de", compat=True)
        assert parts == whole
    fake = FakeTranslator()
    single = []
    for w, e in zip(SENTS, ENTS):
        translation = fake([mark(w, e)], 400)[0]
        ent_trs = fake(entity_texts(w, e), 200)
        single.append(match_brackets(translation, ent_trs, [x[2] for x in e], lang="de", compat=True))
    assert single == whole


def test_batch_skips_empty_calls():
    fake = FakeTranslator()
    assert back_translate_batch([], [], fake, lang="de") == []
    assert fake.calls == []
    out = back_translate_batch([["a", "b"]], [[]], fake, lang="de")
    assert out == [(["a", "b"], [])] and len(fake.calls) == 1


def test_batch_validation_happens_before_translation():
    fake = FakeTranslator()
    with pytest.raises(ParameterError, match=r"\[E604\] sentences has 1 items but entities has 2"):
        back_translate_batch([["a"]], [[], []], fake, lang="de")
    with pytest.raises(ParameterError, match=r"\[E602\] sentence 1: invalid entity"):
        back_translate_batch([["a"], ["b"]], [[], [(0, 2, "PER")]], fake, lang="de")
    with pytest.raises(ParameterError, match=r"\[E202\].*'lang'"):
        back_translate_batch([["a"]], [[]], fake, lang="")
    assert fake.calls == []


def test_bad_translate_output():
    with pytest.raises(PipelineError, match=r"\[E603\] translate returned 0 texts for 1 marked sentences"):
        back_translate_batch([["a"]], [[]], lambda texts, n: [], lang="de")
    with pytest.raises(PipelineError, match=r"\[E603\].*entity texts"):
        def bad_entities(texts, n):
            return [None] * len(texts) if n == ENTITY_MAX_LENGTH else texts

        back_translate_batch([["a"]], [[(0, 1, "PER")]], bad_entities, lang="de")
