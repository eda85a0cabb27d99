"""The NLLB pipelines stream (issue 24, item 2): translate-test, translate-train (plain with NER
candidates and a filter, and marker) and model-transfer hold one window of the input at a time.
Checked without timing or RSS: the input's sentences alive at once (weak references to every
sentence the reader yields), and the sentences every stage, projection and metrics call is
given, against the window (one shard locally). Also: the streamed cache root key equals the
whole-list hash it replaces, and an output is never present under its name half written."""

from __future__ import annotations

import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._pipeline_helpers import europarl_path, masakhaner_path
from xfast.evaluate import ScoreCounts, ignore_types, proj_ratio, scores
from xfast.io import read_conll, write_jsonl
from xfast.pipelines import context, stagecache
from xfast.pipelines.model_transfer import model_transfer
from xfast.pipelines.stages import corpus
from xfast.pipelines.stages.corpus import ListKey, words_key
from xfast.pipelines.translate_test import translate_test
from xfast.pipelines.translate_train import translate_train

N, SHARD = 37, 4  # ten windows, the last one short


class Watch:
    """What a run held: the most input sentences alive at once and the largest batch any
    stage, projection or scoring call was given."""

    def __init__(self, monkeypatch) -> None:
        self.alive = 0
        self.most_alive = 0
        self.largest: dict[str, int] = {}
        read = context.test_set

        def watched(*args, **kwargs):
            for s in read(*args, **kwargs):
                self.alive += 1
                weakref.finalize(s, self.freed)
                self.most_alive = max(self.most_alive, self.alive)
                yield s

        bar = stagecache.stage_bar

        def watched_bar(ctx, stage, n):
            self.seen(stage, n)
            return bar(ctx, stage, n)

        of_labels = ScoreCounts.of_labels.__func__

        def watched_score(cls, gold, pred, **kw):
            self.seen("evaluate", len(gold))
            return of_labels(cls, gold, pred, **kw)

        monkeypatch.setattr(context, "test_set", watched)
        monkeypatch.setattr(stagecache, "stage_bar", watched_bar)
        monkeypatch.setattr(corpus, "stage_bar", watched_bar)
        monkeypatch.setattr(ScoreCounts, "of_labels", classmethod(watched_score))
        for module in ("translate_test", "translate_train"):
            mod = __import__(f"xfast.pipelines.{module}", fromlist=["project_variants"])
            project = mod.project_variants

            def watched_project(mode, entities, *args, _project=project, **kw):
                self.seen("project", len(entities))
                return _project(mode, entities, *args, **kw)

            monkeypatch.setattr(mod, "project_variants", watched_project)

    def freed(self) -> None:
        self.alive -= 1

    def seen(self, what: str, n: int) -> None:
        self.largest[what] = max(self.largest.get(what, 0), n)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    out = {}
    for lang, source in (("hau", masakhaner_path("hau")), ("en", europarl_path("en"))):
        sents = list(read_conll(source))
        # JSONL: its reader yields a line at a time (CoNLL's parses 1 MiB blocks)
        write_jsonl(d / f"{lang}.jsonl", (sents[i % len(sents)] for i in range(N)))  # the stand-in has 24
        out[lang] = d / f"{lang}.jsonl"
    return out


def _run(name, inputs, tiny, out):
    models = {"translator": tiny["nllb_ct2"], "easyproject_translator": tiny["nllb_ct2"],
              "ner_model": tiny["ner_onnx"], "aligner": tiny["xlmr"]}
    common = dict(shard_size=SHARD, progress=False)
    if name == "translate-test":
        return translate_test(inputs["hau"], "hau", out, modes=("src2tgt", "tgt2tgt"),
                              methods=("heuristic", "ner-greedy"), baseline=True, dataset="masakhaner2",
                              **models, **common)
    if name == "translate-train":
        return translate_train(inputs["en"], ["hau"], out, modes=("plain", "marker"),
                               methods=("heuristic", "ner-greedy"), filters="drop-partial", **models, **common)
    return model_transfer(inputs["hau"], "hau", out, ner_model=tiny["ner_onnx"], dataset="masakhaner2", **common)


@pytest.mark.parametrize("name", ["translate-test", "translate-train", "model-transfer"])
def test_a_run_holds_one_window_of_the_input(name, inputs, tiny_models, tmp_path, monkeypatch):
    watch = Watch(monkeypatch)
    res = _run(name, inputs, tiny_models, tmp_path / "out")
    assert res["qa"]["sentences"]["in"] == N
    # the window being read and the one before it, still named by the loop that works it
    assert 0 < watch.most_alive <= 2 * SHARD
    expected = {"ner-receiving"} | ({"translate", "ner-en", "backtranslate", "align", "project", "evaluate"}
                                    if name == "translate-test" else
                                    {"translate", "marker", "align", "project"} if name == "translate-train" else
                                    {"evaluate"})
    assert expected <= set(watch.largest)
    assert max(watch.largest.values()) == SHARD, watch.largest
    assert not list((tmp_path / "out").glob("*.tmp")) and not (tmp_path / "out" / ".xfast-run").exists()


def test_the_streamed_root_key_is_the_whole_list_hash():
    lists = [[], [["a", "ü"]], [["x"], [], ["Straße", '"q"', "\\"]], [[["w"], ["B-PER"]], [[], []]]]
    for items in lists:
        key = ListKey()
        for item in items:
            key.add(item)
        assert key.key() == words_key(items)


def test_a_failing_run_leaves_no_output_under_its_name(inputs, tiny_models, tmp_path, monkeypatch):
    calls = []
    project = corpus.receiving_ner

    def fails_late(*args, start=0, **kw):
        calls.append(start)
        if start >= 3 * SHARD:
            raise RuntimeError("stop")
        return project(*args, start=start, **kw)

    monkeypatch.setattr("xfast.pipelines.model_transfer.receiving_ner", fails_late)
    with pytest.raises(RuntimeError, match="stop"):
        _run("model-transfer", inputs, tiny_models, tmp_path / "out")
    assert calls == [0, SHARD, 2 * SHARD, 3 * SHARD]
    out = tmp_path / "out"
    assert not (out / "hau.model_transfer.conll").exists() and not list(out.rglob("*.tmp"))


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_window_counts_equal_whole_list_scores(data):
    """Scores absorbed window by window (:meth:`ScoreCounts.of_labels`) equal seqeval-style
    :func:`scores` plus :func:`proj_ratio` of the whole lists, to the last bit, with types
    ignored or not, I- without B- and empty sentences included."""
    labels = st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-DATE", "I-DATE", "I-MISC"])
    sents = data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=30))
    gold = [data.draw(st.lists(labels, min_size=n, max_size=n)) for n in sents]
    pred = [data.draw(st.lists(labels, min_size=n, max_size=n)) for n in sents]
    ignore = data.draw(st.sampled_from([(), ("DATE",), ("PER", "MISC")]))
    cut = sorted(set(data.draw(st.lists(st.integers(0, len(sents)), max_size=5))) | {0, len(sents)})
    counts = ScoreCounts()
    for a, b in zip(cut, cut[1:]):
        counts.absorb(ScoreCounts.of_labels(gold[a:b], pred[a:b], ignore=ignore))
    want = scores(gold, pred, ignore=ignore)
    want["proj_ratio"] = proj_ratio(ignore_types(gold, ignore), ignore_types(pred, ignore))
    assert counts.result() == want
