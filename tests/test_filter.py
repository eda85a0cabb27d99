"""``--filter`` (docs/projection.md, *Filtering*): the vectorised filter equals a plain-Python
oracle on random batches; ``xfast project`` and ``translate-train`` keep + reject every sentence,
count every reason, and ``none`` changes nothing; bad policies are one-line errors, exit code 2."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._pipeline_helpers import europarl_path, head_conll
from xfast.errors import ParameterError
from xfast.io import entities_of, read_conll
from xfast.project.filtering import FilterPolicy, filter_batch, keep_rows, span_scores



# --------------------------------------------------------------------------- the oracle


def oracle_spans(codes: list[int]) -> list[tuple[int, int, int]]:
    """``(start, end, type)``: a B- code and the I- codes of its type that follow it."""
    out, k = [], 0
    while k < len(codes):
        if codes[k] % 2 == 1:
            end = k + 1
            while end < len(codes) and codes[end] == codes[k] + 1:
                end += 1
            out.append((k, end, (codes[k] - 1) // 2))
            k = end
        else:
            k += 1
    return out


def oracle_sentence(codes, entities, pairs, policy, counted):
    """One sentence through the filter, by the definitions: ``(codes, spans with scores,
    removed flags, projected flags per entity, state, dropped)``."""
    spans = []
    for a, b, t in oracle_spans(codes):
        best = 0.0
        for ea, eb, et in entities:
            if et == t:
                links = sum(1 for i, j in pairs if ea <= i < eb and a <= j < b)
                best = max(best, 2 * links / ((eb - ea) + (b - a)))
        spans.append((a, b, t, min(best, 1.0)))
    removed = [policy.min_score is not None and s < policy.min_score for *_, s in spans]
    out = list(codes)
    for (a, b, _, _), r in zip(spans, removed):
        if r:
            out[a:b] = [0] * (b - a)
    projected = [any(not r and t == et and any(ea <= i < eb and a <= j < b for i, j in pairs)
                     for (a, b, t, _), r in zip(spans, removed)) for ea, eb, et in entities]
    use = [counted is None or counted[et] for _, _, et in entities]
    n = sum(use)
    p = sum(1 for u, pr in zip(use, projected) if u and pr)
    state = 2 if n and not p else 1 if 0 < p < n else 0
    dropped = (policy.drop_partial and state > 0) or (policy.drop_unprojected and state == 2)
    return out, spans, removed, projected, state, dropped


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@st.composite
def batches(draw):
    n_types = draw(st.integers(1, 3))
    sents = []
    for _ in range(draw(st.integers(0, 6))):
        n_lab, n_rec = draw(st.integers(0, 7)), draw(st.integers(0, 7))
        codes = draw(st.lists(st.integers(0, 2 * n_types), min_size=n_rec, max_size=n_rec))
        ents = []
        if n_lab:
            for _ in range(draw(st.integers(0, 3))):
                a = draw(st.integers(0, n_lab - 1))
                ents.append((a, draw(st.integers(a + 1, n_lab)), draw(st.integers(0, n_types - 1))))
        pairs = sorted(set(draw(st.lists(st.tuples(st.integers(0, n_lab - 1), st.integers(0, n_rec - 1)),
                                         max_size=12)))) if n_lab and n_rec else []
        sents.append((codes, ents, pairs))
    min_score = draw(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 0.5, 2 / 3]), st.floats(0, 1)))
    policy = FilterPolicy(draw(st.booleans()), draw(st.booleans()), min_score)
    counted = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=n_types, max_size=n_types)))
    return sents, policy, counted


def _arrays(sents):
    codes = np.array([c for s in sents for c in s[0]], np.int64)
    ents = [e for s in sents for e in s[1]]
    pairs = np.array([p for s in sents for p in s[2]], np.int32).reshape(-1, 2)
    return (codes, _offsets([len(s[0]) for s in sents]), _offsets([len(s[1]) for s in sents]),
            np.array([e[:2] for e in ents], np.int64).reshape(-1, 2), np.array([e[2] for e in ents], np.int64),
            _offsets([len(s[2]) for s in sents]), pairs)


@settings(max_examples=400, deadline=None)
@given(batches())
def test_filter_equals_the_oracle(batch):
    sents, policy, counted = batch
    arrays = _arrays(sents)
    got = filter_batch(*arrays, policy, counted=None if counted is None else np.array(counted))
    sc = span_scores(*arrays)
    want = [oracle_sentence(*s, policy, counted) for s in sents]
    assert got.codes.tolist() == [c for w in want for c in w[0]]
    assert got.states.tolist() == [w[4] for w in want]
    assert got.dropped.tolist() == [w[5] for w in want]
    assert got.entity_projected.tolist() == [p for w in want for p in w[3]]
    assert got.removed.tolist() == [r for w in want for r in w[2]]
    assert got.spans.offsets.tolist() == _offsets([len(w[1]) for w in want]).tolist()
    for res in (got.spans, sc):
        assert [(int(a), int(b), int(t)) for (a, b), t in zip(res.spans, res.types)] == \
            [s[:3] for w in want for s in w[1]]
        assert res.scores == pytest.approx([s[3] for w in want for s in w[1]], abs=1e-12)


def test_edge_cases():
    # an empty batch; a sentence with no entities (kept by every policy); an empty sentence
    empty = _arrays([])
    f = filter_batch(*empty, FilterPolicy(True, True, 0.5))
    assert f.codes.size == 0 and f.dropped.size == 0
    # B-PER I-PER linked word for word scores 1; the LOC span has no link and scores 0
    sents = [([1, 2, 0, 3], [(0, 2, 0), (3, 4, 1)], [(0, 0), (1, 1)]), ([], [], []), ([1], [], [])]
    arrays = _arrays(sents)
    assert span_scores(*arrays).scores.tolist() == [1.0, 0.0, 0.0]
    f = filter_batch(*arrays, FilterPolicy(min_score=1.0))
    assert f.codes.tolist() == [1, 2, 0, 0, 0] and not f.dropped.any()
    f = filter_batch(*arrays, FilterPolicy(drop_partial=True, min_score=0.0))  # X=0 removes nothing
    assert f.codes.tolist() == [1, 2, 0, 3, 1] and f.states.tolist() == [1, 0, 0]
    assert f.dropped.tolist() == [True, False, False]
    f = filter_batch(*arrays, FilterPolicy(drop_unprojected=True, min_score=1.0))  # all removed
    f2 = filter_batch(*arrays, FilterPolicy(drop_unprojected=True, min_score=1.0), counted=np.array([False, True]))
    assert f.dropped.tolist() == [False, False, False] and f2.dropped.tolist() == [True, False, False]


def test_keep_rows_and_take_equal_sentence_by_sentence_slices():
    """``keep_rows`` and the vectorised ``TokenColumns.take`` under it against the plain
    twin: each chosen sentence sliced on its own and the slices concatenated."""
    from xfast.io.columns import LabelTypes, TokenColumns, from_sentences

    types = LabelTypes()
    cols = from_sentences([["a", "bé"], [], ["ç"], ["d", "e", "f"]], types,
                          [["B-X", "O"], [], ["O"], ["O", "B-Y", "I-Y"]])

    def sliced(rows):
        return TokenColumns.concat([cols.slice(i, i + 1) for i in rows]) if rows else cols.slice(0, 0)

    for mask in ([True, False, True, True], [False] * 4, [True] * 4, [False, True, False, True]):
        got, tok = keep_rows(cols, np.array(mask))
        want = sliced([i for i, m in enumerate(mask) if m])
        assert got.sentences() == want.sentences() and got.codes.tolist() == want.codes.tolist()
        assert got.lines.tolist() == want.lines.tolist() and tok.sum() == want.n_tokens
    for rows in ([3, 0, 2], [1], [2, 2], []):  # any order, repeats, nothing
        got, want = cols.take(rows), sliced(rows)
        assert got.text == want.text and got.tok_off.tolist() == want.tok_off.tolist()
        assert got.sent_off.tolist() == want.sent_off.tolist() and got.codes.tolist() == want.codes.tolist()
        assert got.lines.tolist() == want.lines.tolist()


@pytest.mark.parametrize("value,code", [
    (["bogus"], "E208"), (["none", "drop-partial"], "E208"), ([], "E208"), (["drop-partial", "drop-partial"], "E208"),
    (["min-score"], "E208"), (["drop-partial=1"], "E208"), (["min-score=abc"], "E209"), (["min-score=1.5"], "E209"),
    (["min-score=-0.1"], "E209"), (["min-score=nan"], "E209"), (["min-score=0.2", "min-score=0.3"], "E208")])
def test_bad_policies(value, code):
    with pytest.raises(ParameterError, match=rf"\[{code}\]"):
        FilterPolicy.parse(value)


def test_policy_parse():
    assert FilterPolicy.parse("none") == FilterPolicy.parse(["none"]) == FilterPolicy()
    assert not FilterPolicy().active
    p = FilterPolicy.parse(["drop-partial", "min-score=0.50"])
    assert p == FilterPolicy(drop_partial=True, min_score=0.5) == FilterPolicy.parse("min-score=0.5 drop-partial")
    assert p.names() == ["min-score=0.5", "drop-partial"] and str(p) == "min-score=0.5 drop-partial"
    assert FilterPolicy.parse(p) is p
    assert FilterPolicy.parse(("min-score=0.5 drop-partial",)) == p  # one quoted argument on the command line
    assert FilterPolicy.parse(["min-score=0.12345671"]) != FilterPolicy.parse(["min-score=0.12345674"])
    assert FilterPolicy.parse(["min-score=0.12345671"]).names() != FilterPolicy.parse(["min-score=0.12345674"]).names()
    with pytest.raises(ParameterError, match="E208"):
        FilterPolicy.parse(None)


# --------------------------------------------------------------------------- xfast project

N = 40
POLICIES = [(("drop-partial",), None), (("drop-unprojected",), None), (("min-score=0.9",), None),
            (("min-score=0.8", "drop-partial"), None), (("drop-partial", "drop-unprojected"), {"PER", "LOC"})]


@pytest.fixture(scope="module")
def aligner(tiny_models):
    """The tiny XLM-R at layer 2."""
    from xfast.aligner import Aligner

    return Aligner(tiny_models["xlmr"], layer=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    return (head_conll(europarl_path("en"), N, d / "en.conll"),
            head_conll(europarl_path("de"), N, d / "de.conll"))


@pytest.fixture(scope="module")
def unfiltered(tmp_path_factory, corpus, aligner):
    """A run without a filter: its labels and alignments are what the filter starts from."""
    from xfast.pipelines.parallel import project_parallel

    out = tmp_path_factory.mktemp("none")
    project_parallel(*corpus[:1], {"de": corpus[1]}, out, aligner=aligner, methods=("heuristic", "ngram-greedy"),
                     write_alignments=True, progress=False)
    return out


def _files(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != "run.json"}


def _pharaoh(path):
    return [[tuple(int(x) for x in link.split(":")[0].split("-")) for link in line.split()]
            for line in path.read_text().splitlines()]


def test_none_is_byte_identical(tmp_path, corpus, aligner, unfiltered):
    from xfast.pipelines.parallel import project_parallel

    for value in ("none", ("none",), FilterPolicy()):
        out = tmp_path / str(len(str(value)))
        project_parallel(corpus[0], {"de": corpus[1]}, out, aligner=aligner, methods=("heuristic", "ngram-greedy"),
                         write_alignments=True, progress=False, filters=value)
        assert _files(out) == _files(unfiltered)  # manifest (run key) and qa.json included


@pytest.mark.parametrize("policy,label_set", POLICIES, ids=lambda v: " ".join(sorted(v)) if v else "all")
def test_project_keeps_and_rejects_by_the_definitions(tmp_path, corpus, aligner, unfiltered, policy, label_set):
    """Each output's kept sentences and rejects equal the oracle applied to the unfiltered run's
    labels and alignments; QA and metrics count them."""
    from collections import Counter

    from xfast.evaluate import proj_ratio, scores
    from xfast.pipelines.parallel import project_parallel

    out = tmp_path / "out"
    res = project_parallel(corpus[0], {"de": corpus[1]}, out, aligner=aligner, methods=("heuristic", "ngram-greedy"),
                           write_alignments=True, progress=False, filters=policy, shard_size=16, batch_size=8,
                           label_set=label_set)
    p = FilterPolicy.parse(policy)
    en, de = list(read_conll(corpus[0])), list(read_conll(corpus[1]))
    pairs = _pharaoh(unfiltered / "de.align.txt")
    types = sorted({e[2] for s in en for e in entities_of(s.labels)})
    tid = {t: i for i, t in enumerate(types)}
    code = {"O": 0, **{f"{b}-{t}": 2 * i + 1 + (b == "I") for t, i in tid.items() for b in "BI"}}
    counted = None if label_set is None else [t in label_set for t in types]
    qa = json.loads((out / "qa.json").read_text())
    for m in ("heuristic", "ngram-greedy"):
        before = [[x if x == "O" or label_set is None or x[2:] in label_set else "O" for x in s.labels]
                  for s in read_conll(unfiltered / f"de.{m}.conll")]
        want_kept, want_rejects = [], []
        for i, (s, labels) in enumerate(zip(en, before)):
            ents = [(a, b, tid[t]) for a, b, t in entities_of(s.labels)]
            codes, _, _, _, state, dropped = oracle_sentence([code[x] for x in labels], ents, pairs[i], p, counted)
            after = [([x for x in code if code[x] == c] or ["O"])[0] for c in codes]
            (want_rejects if dropped else want_kept).append((i, after, ("", "partial", "unprojected")[state]))
        kept = [(s.tokens, s.labels) for s in read_conll(out / f"de.{m}.conll")]
        assert kept == [(de[i].tokens, labels) for i, labels, _ in want_kept]
        rejects_path = out / f"de.{m}.rejects.jsonl"
        assert rejects_path.is_file() == p.drops
        rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()] if p.drops else []
        assert [(r["sentence"], r["labels"], r["reason"]) for r in rejects] == want_rejects
        for r in rejects:
            i = r["sentence"]
            assert r["tokens"] == de[i].tokens and r["labeled_line"] == en[i].line
            assert r["entities"] == [list(e) for e in entities_of(en[i].labels) if counted is None or e[2] in label_set]
            assert r["projected"] + len(r["unprojected"]) == len(r["entities"])
            assert all(s < p.min_score for *_, s in r["removed_spans"])
        assert len(kept) + len(rejects) == N
        counts = qa["filter"][f"de/{m}"]
        assert counts["kept"] == len(kept) and counts["dropped"] == len(rejects)
        assert counts["dropped_by_reason"] == {"partial": 0, "unprojected": 0, **Counter(r["reason"] for r in rejects)}
        if not p.drop_partial:
            assert counts["dropped_by_reason"]["partial"] == 0
        # metrics score the kept sentences
        row = next(r for r in res["results"] if r["method"] == m)
        gold = [de[i].labels for i, _, _ in want_kept]
        pred = [labels for _, labels, _ in want_kept]
        want = scores(gold, pred)
        assert {k: row[k] for k in want} == want and row["proj_ratio"] == proj_ratio(gold, pred)
        assert row["sentences_kept"] == len(kept) and row["filter"] == str(p)
    assert qa["sentences"]["in"] == N
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filter"] == p.names()
    if p.min_score is not None:  # the tiny model aligns poorly: some spans go
        assert sum(c["spans_removed_by_min_score"] for c in qa["filter"].values()) > 0


def test_resume_and_parquet(tmp_path, corpus, aligner, monkeypatch):
    """A run stopped after two committed shards, resumed, writes the bytes of one never stopped;
    the rejects file stays JSON Lines beside Parquet outputs."""
    from xfast.pipelines import rundir as run_mod
    from xfast.pipelines.parallel import project_parallel

    kw = dict(aligner=aligner, methods=("heuristic",), progress=False, filters=("min-score=0.5", "drop-partial"),
              batch_size=4, shard_size=8, output_format="parquet")
    ref = tmp_path / "ref"
    project_parallel(corpus[0], {"de": corpus[1]}, ref, **kw)
    commit, calls = run_mod.RunDir.commit, []

    def stop_after_two(self, index, parts, state):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(index)
        commit(self, index, parts, state)

    out = tmp_path / "out"
    monkeypatch.setattr(run_mod.RunDir, "commit", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        project_parallel(corpus[0], {"de": corpus[1]}, out, **kw)
    monkeypatch.setattr(run_mod.RunDir, "commit", commit)
    res = project_parallel(corpus[0], {"de": corpus[1]}, out, **kw)
    assert res["run"]["resumed_shards"] == 2
    assert _files(out) == _files(ref)
    assert (out / "de.heuristic.rejects.jsonl").read_bytes().startswith(b'{"sentence": ')


def test_cli_filter_and_bad_values(tmp_path, corpus, tiny_models, capsys):
    from xfast.cli import main

    base = ["project", "--labeled", str(corpus[0]), "--receiving", f"de={corpus[1]}", "--aligner",
            str(tiny_models["xlmr"]), "--layer", "2", "--method", "heuristic", "--quiet"]
    for bad, code in ((["drop-everything"], "E208"), (["none", "drop-partial"], "E208"), (["min-score=abc"], "E209"),
                      (["min-score=2"], "E209")):
        assert main([*base, "--out", str(tmp_path / "bad"), "--filter", *bad]) == 2
        err = capsys.readouterr().err
        assert f"[{code}]" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()
    assert main([*base, "--out", str(tmp_path / "o"), "--filter", "drop-unprojected", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["outputs"]) == {"de/heuristic", "de/heuristic/rejects"}
    assert sum(res["qa"]["filter"]["de/heuristic"]["dropped_by_reason"].values()) + \
        res["qa"]["filter"]["de/heuristic"]["kept"] == N


# --------------------------------------------------------------------------- translate-train


def test_translate_train_filters_each_output(tmp_path, tiny_models):
    """drop-partial keeps the unfiltered run's sentences that pass, in order; the rest are
    rejected with their reason (marker mode too, by per-type counts); min-score only removes spans."""
    from collections import Counter

    from xfast.aligner import Aligner
    from xfast.models.translator import Translator
    from xfast.pipelines.translate_train import translate_train

    english = head_conll(europarl_path("en"), 12, tmp_path / "en.conll")
    tr = Translator(tiny_models["nllb_ct2"])
    aligner = Aligner(tiny_models["xlmr"], layer=8)
    kw = dict(modes=("plain", "marker"), methods=("heuristic",), translator=tr, easyproject_translator=tr,
              aligner=aligner, shard_size=5, progress=False, cache=tmp_path / "cache")
    ref = translate_train(english, ["de"], tmp_path / "ref", **kw)
    res = translate_train(english, ["de"], tmp_path / "out", filters=("drop-partial",), **kw)
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    en = list(read_conll(english))
    for key in ("de/plain/itermax/heuristic", "de/marker"):
        before = list(read_conll(ref["outputs"][key]))
        kept = list(read_conll(res["outputs"][key]))
        rejects = [json.loads(x) for x in open(res["outputs"][f"{key}/rejects"], encoding="utf-8")]
        dropped = [r["sentence"] for r in rejects]
        assert [(s.tokens, s.labels) for s in kept] == [(s.tokens, s.labels) for i, s in enumerate(before)
                                                        if i not in dropped]
        assert len(kept) + len(rejects) == 12
        for r in rejects:
            s = before[r["sentence"]]
            assert (r["tokens"], r["labels"]) == (s.tokens, s.labels) and r["labeled_line"] == en[r["sentence"]].line
            assert r["reason"] == ("unprojected" if r["projected"] == 0 else "partial")
            assert 0 <= r["projected"] < len(r["entities"]) and ("unprojected" in r) == key.endswith("heuristic")
        assert qa["filter"][key]["kept"] == len(kept)
        assert qa["filter"][key]["dropped_by_reason"] == {"partial": 0, "unprojected": 0,
                                                         **Counter(r["reason"] for r in rejects)}
        row = next(r for r in res["results"] if r["mode"] == key.split("/")[1])
        assert row["sentences_kept"] == len(kept) and row["sentences"] == 12
    assert "filter" not in json.loads((tmp_path / "ref" / "qa.json").read_text())
    assert sum(c["dropped"] for c in qa["filter"].values()) > 0  # the tiny models project badly
    res = translate_train(english, ["de"], tmp_path / "ms", filters="min-score=1", **kw)
    assert set(res["outputs"]) == set(ref["outputs"])  # nothing dropped, no rejects file
    counts = json.loads((tmp_path / "ms" / "qa.json").read_text())["filter"]
    assert counts["de/marker"]["spans_removed_by_min_score"] == 0 and counts["de/marker"]["kept"] == 12
    assert counts["de/plain/itermax/heuristic"]["kept"] == 12


def test_translate_train_cli_bad_filter(tmp_path, capsys):
    from xfast.cli import main

    english = head_conll(europarl_path("en"), 2, tmp_path / "en.conll")
    assert main(["translate-train", "--input", str(english), "--lang", "de", "--out", str(tmp_path / "o"),
                 "--filter", "min-score=x"]) == 2
    err = capsys.readouterr().err
    assert "[E209]" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
