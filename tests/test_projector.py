"""xfast.Projector: the labels ``xfast project`` writes, span scores that follow their
definition, one config per pair, field-named errors, and the same answers from many threads."""

import random
import threading

import pytest

from tests._pipeline_helpers import europarl_path, head_conll
from xfast.errors import ParameterError
from xfast.io import read_conll
from xfast.pipelines.parallel import labeled_entities, project_parallel
from xfast.project.config import ProjectionConfig
from xfast.serve import Projector

METHODS = ("heuristic", "ngram-greedy", "ngram-bipartite")


@pytest.fixture(scope="module")
def projector(tiny_models):
    return Projector({"model": str(tiny_models["xlmr"]), "layer": 2})


@pytest.fixture(scope="module")
def europarl(tmp_path_factory):
    d = tmp_path_factory.mktemp("ep")
    en = head_conll(europarl_path("en"), 30, d / "en.conll")
    de = head_conll(europarl_path("de"), 30, d / "de.conll")
    return en, de


def _pairs(en, de):
    lab, rec = list(read_conll(en)), list(read_conll(de))
    return [(s.tokens, [(a, b, t) for a, b, t in labeled_entities(s.labels)], r.tokens) for s, r in zip(lab, rec)]


def test_labels_equal_what_xfast_project_writes(tmp_path, europarl, projector):
    en, de = europarl
    project_parallel(en, {"de": de}, tmp_path / "out", aligner=projector.aligner, methods=METHODS, progress=False)
    pairs = _pairs(en, de)
    for method in METHODS:
        written = [s.labels for s in read_conll(tmp_path / "out" / f"de.{method}.conll")]
        assert [p.labels for p in projector.project_batch(pairs, method=method)] == written, method
        # one pair at a time, and all methods mixed in one batch, give the same labels
        assert [projector.project(*p, method=method).labels for p in pairs[:8]] == written[:8]
    mixed = [METHODS[i % 3] for i in range(len(pairs))]
    got = projector.project_batch(pairs, method=mixed)
    for i, m in enumerate(mixed):
        assert got[i] == projector.project(*pairs[i], method=m)


def _spans_of(labels):
    out, k = [], 0
    while k < len(labels):
        if labels[k].startswith("B-"):
            end = k + 1
            while end < len(labels) and labels[end] == "I-" + labels[k][2:]:
                end += 1
            out.append((k, end, labels[k][2:]))
            k = end
        else:
            k += 1
    return out


def test_spans_follow_the_labels_and_scores_their_definition(europarl, projector):
    """Plain-Python oracle: score = min(1, max over same-type entities of 2 links / (|e| + |s|))."""
    en, de = europarl
    pairs = _pairs(en, de)
    got = projector.project_batch(pairs, method="ngram-greedy")
    alns = projector.aligner.align_batch([p[0] for p in pairs], [p[2] for p in pairs])
    for (lab, ents, rec), res, aln in zip(pairs, got, alns):
        assert [(s.start, s.end, s.label) for s in res.spans] == _spans_of(res.labels)
        links = [tuple(x) for x in aln.tolist()]
        for s in res.spans:
            best = max((2 * sum(a <= i < b and s.start <= j < s.end for i, j in links) / ((b - a) + (s.end - s.start))
                        for a, b, t in ents if t == s.label), default=0.0)
            assert s.score == pytest.approx(min(best, 1.0), abs=1e-6)
            assert 0.0 <= s.score <= 1.0


def test_a_config_per_pair_equals_separate_calls(europarl, projector):
    en, de = europarl
    pairs = _pairs(en, de)[:12]
    strict = ProjectionConfig(length_ratio=0.99, merge_distance=0)
    configs = [strict if i % 2 else None for i in range(len(pairs))]
    got = projector.project_batch(pairs, method="heuristic", config=configs)
    for i, p in enumerate(pairs):
        assert got[i] == projector.project(*p, method="heuristic", config=configs[i])
    assert projector.project_batch([], method="heuristic") == []


@pytest.mark.parametrize("pair,method,field", [
    ((["a"], [], ["b"]), "ner-greedy", "method"),
    ((["a"], [(0, 2, "PER")], ["b"]), "heuristic", "pairs[0].entities[0]"),
    ((["a"], [(1, 1, "PER")], ["b"]), "heuristic", "pairs[0].entities[0]"),
    ((["a"], [(0, 1)], ["b"]), "heuristic", "pairs[0].entities[0]"),
    ((["a"], [(True, 1, "PER")], ["b"]), "heuristic", "pairs[0].entities[0]"),
    (([], [], ["b"]), "heuristic", "pairs[0].labeled"),
    ((["a"], [], "b c"), "heuristic", "pairs[0].receiving"),
    ((["a"], []), "heuristic", "pairs[0]"),
])
def test_bad_pairs_raise_naming_the_field(projector, pair, method, field):
    with pytest.raises(ParameterError, match=r"\[E305\] " + field.replace("[", r"\[").replace("]", r"\]") + ":"):
        projector.project_batch([pair], method=method)


def test_methods_are_checked_when_built(projector):
    with pytest.raises(ParameterError, match="E201"):
        Projector(projector.aligner, methods=("ner-greedy",))
    with pytest.raises(ParameterError, match="E202"):
        projector.project_batch([(["a"], [], ["b"])] * 2, method=["heuristic"])


def test_threads_sharing_one_projector_get_their_own_answers(projector):
    rng = random.Random(5)
    vocab = ["Berlin", "Paris", "Merkel", "the", "of", "Rat", "Europa", "in", "und", "spoke", "Kommission"]
    pairs = []
    for _ in range(48):
        lab = [rng.choice(vocab) for _ in range(rng.randint(1, 12))]
        a = rng.randrange(len(lab))
        pairs.append((lab, [(a, rng.randint(a + 1, len(lab)), rng.choice(["PER", "LOC"]))],
                      [rng.choice(vocab) for _ in range(rng.randint(1, 12))]))
    want = [projector.project(*p, method=METHODS[i % 3]) for i, p in enumerate(pairs)]
    got = [None] * len(pairs)
    errors = []

    def worker(k):
        try:
            for _ in range(3):
                for i in range(k, len(pairs), 6):
                    got[i] = projector.project(*pairs[i], method=METHODS[i % 3])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and got == want


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_host_workers_answer_as_one_thread(europarl, projector, workers):
    """Slices of a batch on several host threads give the answers of one thread, in order, with
    methods and configs mixed per pair and batches that do not split evenly."""
    en, de = europarl
    pairs = _pairs(en, de) * 4  # 120: up to three slices of 32 or more
    many = Projector(projector.aligner, host_workers=workers)
    strict = ProjectionConfig(length_ratio=0.99, merge_distance=0)
    rng = random.Random(workers)
    for n in (1, 17, 64, 97, len(pairs)):
        methods = [rng.choice(METHODS) for _ in range(n)]
        configs = [rng.choice([None, strict]) for _ in range(n)]
        assert many.project_batch(pairs[:n], method=methods, config=configs) == \
            projector.project_batch(pairs[:n], method=methods, config=configs)


def test_batch_slices_cover_the_batch_in_order():
    from xfast.serve.projector import _MIN_SLICE, _slices

    for n in range(0, 100):
        for workers in (1, 2, 3, 8):
            got = _slices(n, workers)
            assert [a for a, _ in got] == [0] + [b for _, b in got[:-1]] and got[-1][1] == n
            assert len(got) == 1 or min(b - a for a, b in got) >= _MIN_SLICE
            assert len(got) <= workers


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_host_workers_are_checked(projector, bad):
    with pytest.raises(ParameterError, match="host_workers"):
        Projector(projector.aligner, host_workers=bad)
