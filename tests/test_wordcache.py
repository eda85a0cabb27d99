"""The per-word subword cache gives exactly the tokenizer's ids.

Each word is tokenized on its own (pre-split input), so caching a word's ids cannot change
them: checked on every shipped Europarl sentence with the embedded e5-small tokenizer
(SentencePiece, Metaspace) and on random Unicode words with a WordPiece tokenizer, through
the compiled cache and its twin, with tables small enough to be emptied many times.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xfast.io import read_conll
from xfast.io.columns import from_sentences
from xfast.models import _wordcache_py
from xfast.models.encoder import load_tokenizer

from tests._pipeline_helpers import europarl_path

try:
    from xfast.models import _wordcache
    CACHES = [_wordcache.WordCache, _wordcache_py.WordCache]
except ImportError:  # pragma: no cover - extension not built
    CACHES = [_wordcache_py.WordCache]


def _tokenize(tok):
    def run(words):  # as the encoder does it: each word alone, as plain text
        return [e.ids for e in tok.encode_batch(words, add_special_tokens=False)]
    return run


def _reference(tok, sentences):
    encs = tok.encode_batch(sentences, is_pretokenized=True, add_special_tokens=False) if sentences else []
    ids = [i for e in encs for i in e.ids]
    words = [w for e in encs for w in e.word_ids]
    return ids, words, [0, *np.cumsum([len(e.ids) for e in encs]).tolist()]


@pytest.fixture(scope="module")
def e5_tokenizer():
    from xfast.models.e5 import ensure_e5_small

    return load_tokenizer(ensure_e5_small(progress=False))


@pytest.mark.parametrize("cache_cls", CACHES)
@pytest.mark.parametrize("max_words", [50, 1 << 20])
def test_shipped_data_ids_equal_the_tokenizer(e5_tokenizer, cache_cls, max_words):
    cache = cache_cls(max_words)
    for lang in ("en", "de", "es", "it"):
        sents = [s.tokens for s in read_conll(europarl_path(lang))]
        for a in range(0, len(sents), 128):
            chunk = sents[a:a + 128]
            cols = from_sentences(chunk)
            ids, word, off = cache.subwords(cols.text, cols.tok_off, cols.sent_off, _tokenize(e5_tokenizer))
            ref_ids, ref_words, ref_off = _reference(e5_tokenizer, chunk)
            assert ids.tolist() == ref_ids and word.tolist() == ref_words and off.tolist() == ref_off
        assert len(cache) <= max_words + 128 * 120
    assert cache.hits + cache.misses == sum(
        len(s.tokens) for lang in ("en", "de", "es", "it")
        for s in read_conll(europarl_path(lang)))
    if max_words > 1000:  # Zipf: most lookups hit
        assert cache.hits / (cache.hits + cache.misses) > 0.6
    else:
        assert cache.clears > 10


words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@settings(max_examples=150, deadline=None)
@given(sents=st.lists(st.lists(words, max_size=10), max_size=8), max_words=st.sampled_from([1, 3, 1000]),
       kind=st.sampled_from(["mbert", "xlmr", "e5"]))
def test_random_words_equal_the_tokenizer(tiny_models, e5_tokenizer, sents, max_words, kind):
    tok = e5_tokenizer if kind == "e5" else load_tokenizer(tiny_models[kind])
    cols = from_sentences(sents)
    for cache_cls in CACHES:
        cache = cache_cls(max_words)
        for _ in range(2):  # the second pass reads from the table
            ids, word, off = cache.subwords(cols.text, cols.tok_off, cols.sent_off, _tokenize(tok))
            ref_ids, ref_words, ref_off = _reference(tok, sents)
            assert (ids.tolist(), word.tolist(), off.tolist()) == (ref_ids, ref_words, ref_off)


@pytest.mark.parametrize("cache_cls", CACHES)
def test_a_failing_tokenizer_leaves_the_table_usable(cache_cls):
    cache = cache_cls(100)
    cols = from_sentences([["a", "b", "a"]])

    def broken(words):
        raise RuntimeError("tokenizer down")

    with pytest.raises(RuntimeError):
        cache.subwords(cols.text, cols.tok_off, cols.sent_off, broken)
    ids, _, _ = cache.subwords(cols.text, cols.tok_off, cols.sent_off, lambda ws: [[len(w), 7] for w in ws])
    assert ids.tolist() == [1, 7, 1, 7, 1, 7]
    with pytest.raises(ValueError, match="id lists"):
        cache.subwords(from_sentences([["zz"]]).text, np.array([0, 2]), np.array([0, 1]), lambda ws: [])
