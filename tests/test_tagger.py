"""Tagger (SPEC §7): first-subword labels, IOB1-safe entity runs, windows, label maps.

Oracles, sharing no code with xfast: transformers' own tokenizer (``is_split_into_words``)
and model, a plain first-subword rule, a plain run builder, seqeval's chunker, and the
transformers ``pipeline(aggregation_strategy="first")`` where its word grouping is defined
the same way.
"""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xfast.errors import ModelError, ParameterError
from xfast.models.tagger import Tagger, entity_runs, export_tagger, iob2
from xfast.testing.tiny import tiny_corpus


def sentences(n=120, seed=0):
    rng = random.Random(seed)
    out = [line.split() for line in tiny_corpus()[:n]]
    out += [["Maria", "", "Smith", "went", "to", "Berlin"], ["x"], [""], [], ["é", "ŋ", "🙂", "Ω"]]
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def hf(tiny_models):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models["ner"]))
    model = AutoModelForTokenClassification.from_pretrained(str(tiny_models["ner"])).eval()
    return tok, model


def oracle_runs(labels):
    """Plain SPEC §7 runs over word labels; None = word without subwords."""
    ents, cur = [], None
    for i, label in enumerate(labels):
        if label is None:
            continue
        if label == "O":
            cur = None
            continue
        prefix, typ = label.split("-", 1)
        if cur is not None and prefix == "I" and cur[2] == typ:
            cur[1] = i + 1
        else:
            cur = [i, i + 1, typ]
            ents.append(cur)
    return [tuple(e) for e in ents]


def oracle_word_labels(hf, words, window=None):
    """First-subword argmax per word; with ``window``, the SPEC windowing done naively."""
    import torch

    tok, model = hf
    id2label = model.config.id2label
    if not words:
        return []
    enc = tok(words, is_split_into_words=True, add_special_tokens=False)
    subs = [[] for _ in words]
    for tid, w in zip(enc["input_ids"], enc.word_ids()):
        subs[w].append(tid)
    counts = [len(s) for s in subs]
    n = len(words)
    if window is None or sum(min(c, window) for c in counts) <= window:
        wins, owner = [(0, n)], [0] * n
    else:
        c = [min(x, window) for x in counts]
        wins, s = [], 0
        while True:
            e = s
            while e < n and sum(c[s : e + 1]) <= window:
                e += 1
            wins.append((s, e))
            if e >= n:
                break
            nxt = s + 1
            while nxt < e and sum(c[s:nxt]) < window // 2:
                nxt += 1
            s = nxt
        owner = []
        for i in range(n):
            scores = [min(sum(c[s:i]), sum(c[i + 1 : e])) if s <= i < e else -1 for s, e in wins]
            owner.append(scores.index(max(scores)))
    labels = [None] * n
    for k, (s, e) in enumerate(wins):
        ids = [tok.cls_token_id]
        first = {}
        for i in range(s, e):
            if subs[i]:
                first[i] = len(ids)
                ids.extend(subs[i][: window or len(subs[i])])
        ids.append(tok.sep_token_id)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids])).logits[0].numpy()
        for i, pos in first.items():
            if owner[i] == k:
                labels[i] = id2label[int(np.argmax(logits[pos]))]
    return labels


def test_special_tokens_frame_matches_transformers(hf):
    tok, _ = hf
    words = ["Maria", "went"]
    assert tok(words, is_split_into_words=True)["input_ids"][0] == tok.cls_token_id


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_first_subword_oracle(tiny_models, hf, backend):
    sents = sentences()
    tagger = Tagger(tiny_models["ner_onnx"] if backend == "onnx" else tiny_models["ner"], backend=backend)
    got = tagger.entities(sents)
    want = [oracle_runs(oracle_word_labels(hf, s)) for s in sents]
    assert got == want
    assert sum(map(len, want)) > 20  # the random tagger does find entities
    assert tagger.tag(sents) == [iob2(w, len(s)) for w, s in zip(want, sents)]
    assert tagger.stats.sentences == 2 * len(sents)
    assert tagger.stats.words_without_subwords >= 2


def test_transformers_pipeline_first(tiny_models, hf):
    """Peer check against ``pipeline(aggregation_strategy="first")`` on sentences where its
    word grouping agrees with word_ids (no word starts with a lone "▁" piece)."""
    from transformers import pipeline

    tok, model = hf
    nlp = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="first")
    tagger = Tagger(tiny_models["ner_onnx"])
    vocab = sorted({w for line in tiny_corpus() for w in line.split()})
    plain = [w for w in vocab if tok.tokenize(w)[:1] not in ([], ["▁"])]
    rng = random.Random(2)
    checked = 0
    for _ in range(150):
        words = rng.sample(plain, rng.randint(1, 12))
        text = " ".join(words)
        starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
        want = []
        for ent in nlp(text):
            covered = [i for i, s in enumerate(starts) if s < ent["end"] and s + len(words[i]) > ent["start"]]
            want.append((covered[0], covered[-1] + 1, ent["entity_group"]))
        assert tagger.entities([words])[0] == want, words
        checked += len(want)
    assert checked >= 10


def test_windows_equal_one_pass_where_sentence_fits(tiny_models):
    sents = sentences()
    full = Tagger(tiny_models["ner_onnx"])
    small = Tagger(tiny_models["ner_onnx"], max_length=40)
    fits = [s for s in sents if len(full._tok.encode(s, is_pretokenized=True, add_special_tokens=False).ids) <= 38]
    assert len(fits) >= 20
    assert small.tag(fits) == full.tag(fits)
    assert small.stats.windowed_sentences == 0


@pytest.mark.parametrize("max_length", [6, 12, 31])
def test_long_sentences_windowed_like_the_oracle(tiny_models, hf, max_length):
    long = [w for s in sentences(40) for w in s]
    sents = [long[:60], long[60:200], long[:7], long]
    tagger = Tagger(tiny_models["ner_onnx"], max_length=max_length)
    got = tagger.entities(sents)
    want = [oracle_runs(oracle_word_labels(hf, s, window=max_length - 2)) for s in sents]
    assert got == want
    assert tagger.stats.windowed_sentences >= 3


def oracle_truncated_labels(hf, words, max_length):
    """The reference's compat (SPEC §7): transformers' own truncation at ``max_length``, the
    first kept subword's argmax per word; every word after the last kept one is O."""
    import torch

    tok, model = hf
    if not words:
        return []
    enc = tok(words, is_split_into_words=True, truncation=True, max_length=max_length)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([enc["input_ids"]])).logits[0].numpy()
    labels = [None] * len(words)
    for pos, w in enumerate(enc.word_ids()):
        if w is not None and labels[w] is None:
            labels[w] = model.config.id2label[int(np.argmax(logits[pos]))]
    last = max((i for i, x in enumerate(labels) if x is not None), default=-1)
    return [x if i <= last else "O" for i, x in enumerate(labels)]


@pytest.mark.parametrize("max_length", [6, 12, 31])
def test_truncate_like_transformers_truncation(tiny_models, hf, max_length):
    long = [w for s in sentences(40) for w in s]
    sents = [long[:60], long[60:200], long[:7], long, ["Maria", "", "Smith", "went", "to", "Berlin"] * 8, [], [""]]
    tagger = Tagger(tiny_models["ner_onnx"], max_length=max_length, truncate=True)
    assert tagger.entities(sents) == [oracle_runs(oracle_truncated_labels(hf, s, max_length)) for s in sents]
    n_long = sum(len(hf[0](s, is_split_into_words=True, add_special_tokens=False)["input_ids"]) > max_length - 2
                 for s in sents if s)
    assert n_long >= 3
    assert tagger.stats.truncated_sentences == n_long and tagger.stats.windowed_sentences == 0
    assert tagger.stats.windows == sum(1 for s in sents if s)


def test_truncate_cut_on_a_word_boundary_equals_one_pass(tiny_models):
    """compat: with the cut between two words, the kept words are tagged exactly as one pass
    over them alone, and every later word is O (no run reaches past the cut); the default
    windows the same sentences and tags their later words."""
    cut = Tagger(tiny_models["ner_onnx"], max_length=12, truncate=True)
    default = Tagger(tiny_models["ner_onnx"], max_length=12)
    one = Tagger(tiny_models["ner_onnx"])

    def n_sub(w):
        return len(cut._tok.encode([w], is_pretokenized=True, add_special_tokens=False).ids)

    single = next(w for w in (".", ",", "the", "a", "de", "la") if n_sub(w) == 1)
    vocab = sorted({w for line in tiny_corpus() for w in line.split() if n_sub(w) >= 1})
    rng = random.Random(5)
    sents, kept = [], []
    for k in range(60):
        words, room = [], cut._window
        while True:
            w = rng.choice(vocab)
            if n_sub(w) > room:
                break
            words.append(w)
            room -= n_sub(w)
        words += [single] * room  # the first window ends exactly after the last of these
        kept.append(len(words))
        sents.append(words + [""] * (k % 2) + rng.sample(vocab, 8))
    got = cut.tag(sents)
    want = one.tag([s[:k] for s, k in zip(sents, kept)])
    for g, w, k in zip(got, want, kept):
        assert g[:k] == w and g[k:] == ["O"] * (len(g) - k)
    assert any(t != "O" for w in want for t in w)
    assert cut.stats.truncated_sentences == 60 and cut.stats.windowed_sentences == 0
    full = default.tag(sents)
    assert default.stats.windowed_sentences == 60 and default.stats.truncated_sentences == 0
    assert any(t != "O" for f, k in zip(full, kept) for t in f[k:])
    # runs that the default carries across the cut end there when truncated
    assert any(f[k].startswith("I-") for f, k in zip(full, kept))
    assert not Tagger(tiny_models["ner_onnx"]).truncate


@pytest.mark.parametrize("max_tokens", [16, 100, 100000])
def test_batching_does_not_change_labels(tiny_models, max_tokens):
    sents = sentences()
    ref = Tagger(tiny_models["ner_onnx"]).tag(sents)
    tagger = Tagger(tiny_models["ner_onnx"], max_tokens=max_tokens, threads=1)
    assert tagger.tag(sents) == ref


def test_label_map(tiny_models, hf):
    sents = sentences(60)
    labels = [oracle_word_labels(hf, s) for s in sents]
    tagger = Tagger(tiny_models["ner_onnx"], label_map={"MISC": None, "LOC": "GPE"})
    mapped = []
    for ls in labels:
        out = []
        for label in ls:
            if label is not None and label.endswith("MISC"):
                label = "O"
            elif label is not None and label.endswith("LOC"):
                label = label[:2] + "GPE"
            out.append(label)
        mapped.append(out)
    assert tagger.entities(sents) == [oracle_runs(m) for m in mapped]
    assert "MISC" not in tagger.stats.by_label


def test_int8_export_and_reuse(tiny_models, tmp_path):
    out = export_tagger(tiny_models["ner"], tmp_path / "q", quantize="int8")
    stamp = (out / "model.onnx").stat().st_mtime_ns
    assert export_tagger(tiny_models["ner"], out, quantize="int8") == out
    assert (out / "model.onnx").stat().st_mtime_ns == stamp
    sents = sentences(20)
    tags = Tagger(out).tag(sents)
    assert [len(t) for t in tags] == [len(s) for s in sents]


def test_onnx_logits_match_torch(tiny_models):
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(str(tiny_models["ner"])).eval()
    sess = ort.InferenceSession(str(tiny_models["ner_onnx"] / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = torch.tensor([[0, 50, 60, 70, 80, 2], [0, 90, 2, 1, 1, 1]])
    mask = (ids != 1).long()
    with torch.inference_mode():
        want = model(input_ids=ids, attention_mask=mask).logits.numpy()
    got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    np.testing.assert_allclose(got[mask.numpy() == 1], want[mask.numpy() == 1], atol=1e-4)


def test_errors(tiny_models, tmp_path):
    d = tiny_models["ner_onnx"]
    for kw in ({"backend": "tf"}, {"threads": 0}, {"max_tokens": 1}, {"max_length": 3}, {"max_length": 10000}):
        with pytest.raises(ParameterError):
            Tagger(d, **kw)
    tagger = Tagger(d)
    with pytest.raises(ParameterError, match=r"\[E202\]"):
        tagger.tag("a sentence")
    with pytest.raises(ParameterError, match=r"\[E303\]"):
        tagger.tag([["ok"], "not words"])
    with pytest.raises(ModelError, match=r"\[E401\]"):
        export_tagger(tmp_path)
    with pytest.raises(ParameterError, match=r"\[E201\]"):
        export_tagger(tiny_models["ner"], quantize="int4")
    assert tagger.tag([]) == [] and tagger.tag([[]]) == [[]]
    assert Tagger(d, backend="torch").model_dir == tiny_models["ner"]


LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LABELS), max_size=30))
def test_runs_equal_seqeval_chunks(labels):
    from seqeval.metrics.sequence_labeling import get_entities

    prefixes = [label[0] for label in labels]
    types = [label[2:] for label in labels]
    got = entity_runs(prefixes, types, [True] * len(labels))
    want = sorted((s, e + 1, t) for t, s, e in get_entities(list(labels)))
    assert got == want
    assert got == oracle_runs(labels)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(LABELS)), max_size=30))
def test_runs_cover_words_without_subwords(labels):
    prefixes = ["O" if x is None else x[0] for x in labels]
    types = ["" if x is None else x[2:] for x in labels]
    got = entity_runs(prefixes, types, [x is not None for x in labels])
    assert got == oracle_runs(labels)
    tags = iob2(got, len(labels))
    assert all(t == "O" or t[0] in "BI" for t in tags)



def test_pipeline_ner_stage_truncates_only_in_compat(tiny_models, tmp_path):
    """The pipelines' NER stage (``receiving_ner``) truncates at the model's limit when asked
    (compat), under its own cache key; the default stage windows, and its key has no
    ``truncate`` field (unchanged), so neither mode reuses the other's shards."""
    from xfast.pipelines.stagecache import CacheStats, StageContext
    from xfast.pipelines.loaders import Models
    from xfast.pipelines.stages.corpus import receiving_ner
    from xfast.pipelines.qa import RunReport

    spec = tiny_models["ner_onnx"]
    words = [[w for s in sentences(120) for w in s][:900], ["Maria", "went", "to", "Berlin"]]
    full, cut = Tagger(spec), Tagger(spec, truncate=True)
    runs = {}
    for truncate in (False, True, False, True):
        stats = CacheStats()
        models = Models()
        ctx = StageContext(tmp_path, 8, stats, RunReport(), progress=False)
        ents, key = receiving_ner(ctx, models, spec, words, truncate=truncate)
        if truncate in runs:  # the second run of a mode loads its own shard
            assert stats.loaded == {"ner-receiving": 1} and not stats.computed
            assert (ents, key) == runs[truncate]
        else:
            assert stats.computed == {"ner-receiving": 1} and not stats.loaded
            runs[truncate] = ents, key
            assert models.tagger(spec, truncate=truncate).truncate is truncate
    (d_ents, d_key), (c_ents, c_key) = runs[False], runs[True]
    assert d_key != c_key
    assert d_ents == full.entities(words) and c_ents == cut.entities(words) and c_ents != d_ents
    assert cut.stats.truncated_sentences == 1 and full.stats.windowed_sentences == 1
    assert "truncate" not in Models().tagger_fields(spec)
    assert Models().tagger_fields(spec, truncate=True)["truncate"] is True
    # a loaded tagger carries its own setting into the key
    assert Models().tagger_fields(cut)["truncate"] is True and "truncate" not in Models().tagger_fields(full)
