"""xfast.evaluate against seqeval 1.2.2 (the oracle) to 1e-12."""

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xfast._chunks_py as twin
import xfast.evaluate as ev
from tests._pipeline_helpers import europarl_path, full_data, masakhaner_path
from xfast.errors import DataError
from xfast.io import read_conll

seqeval = pytest.importorskip("seqeval.metrics")

TYPES = ["PER", "ORG", "LOC", "DATE", "MISC"]
WELL = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
ILL = WELL + ["E-PER", "S-LOC", "B", "I", "X-ORG", ".-PER", "O-PER", "B-", "Z"]


def seqeval_scores(gold, pred):
    """The columns HF ``evaluate``'s seqeval metric reports (the reference CSV), from seqeval."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = seqeval.classification_report(gold, pred, output_dict=True, zero_division=0)
    rep.pop("macro avg")
    rep.pop("weighted avg")
    micro = rep.pop("micro avg")
    out = {}
    for t, s in rep.items():
        out.update({f"{t}_f1": s["f1-score"], f"{t}_number": s["support"],
                    f"{t}_precision": s["precision"], f"{t}_recall": s["recall"]})
    n = sum(map(len, gold))
    out["overall_accuracy"] = seqeval.accuracy_score(gold, pred) if n else 0.0
    out.update({"overall_f1": micro["f1-score"], "overall_precision": micro["precision"],
                "overall_recall": micro["recall"]})
    return out


def assert_same(got, exp):
    assert set(got) == set(exp)
    for k, v in exp.items():
        assert abs(got[k] - v) <= 1e-12, (k, got[k], v)


@st.composite
def label_pairs(draw, alphabet):
    lens = draw(st.lists(st.integers(0, 12), min_size=1, max_size=8))
    lab = st.sampled_from(alphabet)
    gold = [draw(st.lists(lab, min_size=n, max_size=n)) for n in lens]
    pred = [draw(st.lists(lab, min_size=n, max_size=n)) for n in lens]
    return gold, pred


@settings(max_examples=1500, deadline=None)
@given(label_pairs(WELL))
def test_well_formed_equals_seqeval(pair):
    gold, pred = pair
    assert_same(ev.scores(gold, pred), seqeval_scores(gold, pred))


@settings(max_examples=1500, deadline=None)
@given(label_pairs(ILL))
def test_ill_formed_equals_seqeval(pair):
    gold, pred = pair
    assert_same(ev.scores(gold, pred), seqeval_scores(gold, pred))


@settings(max_examples=300, deadline=None)
@given(label_pairs(ILL))
def test_twin_equals_kernel(pair):
    gold, pred = pair
    kernel = ev.scores(gold, pred)
    saved = ev._kernel
    ev._kernel = twin
    try:
        assert ev.scores(gold, pred) == kernel
    finally:
        ev._kernel = saved


def _perturb(seqs, rng, rate):
    out = []
    for s in seqs:
        t = list(s)
        for i in range(len(t)):
            if rng.random() < rate:
                t[i] = rng.choice(WELL)
        out.append(t)
    return out


@pytest.mark.parametrize("path", [
    "europarl:en", "europarl:de", "masakhaner:hau", "masakhaner:yor",
    *(pytest.param(f"masakhaner2/{lang}.test.txt", marks=pytest.mark.full_data) for lang in ("hau", "yor", "zul")),
])
def test_real_files_with_perturbed_predictions(path):
    kind, _, lang = path.partition(":")
    source = {"europarl": europarl_path, "masakhaner": masakhaner_path}[kind](lang) if lang else full_data(path)
    gold = [s.labels for s in read_conll(source)]
    rng = random.Random(len(path))
    for rate in (0.0, 0.05, 0.3):
        pred = _perturb(gold, rng, rate)
        assert_same(ev.scores(gold, pred), seqeval_scores(gold, pred))
        # ignoring DATE equals scoring the mapped sequences
        g2, p2 = ev.ignore_types(gold, ["DATE"]), ev.ignore_types(pred, ["DATE"])
        assert_same(ev.scores(gold, pred, ignore=["DATE"]), seqeval_scores(g2, p2))


def test_identity_is_perfect():
    gold = [s.labels for s in read_conll(masakhaner_path("hau"))]
    r = ev.scores(gold, gold)
    assert r["overall_f1"] == 1.0 and r["overall_accuracy"] == 1.0
    assert "DATE_f1" not in ev.scores(gold, gold, ignore=["DATE"])


def test_empty_and_no_entities():
    assert ev.scores([[]], [[]])["overall_f1"] == 0.0
    r = ev.scores([["O", "O"]], [["B-PER", "O"]])
    assert r["PER_number"] == 0 and r["PER_precision"] == 0.0 and r["overall_precision"] == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(DataError, match="E108"):
        ev.scores([["O"]], [["O", "O"]])
    with pytest.raises(DataError, match="E108"):
        ev.scores([["O"]], [])


def test_proj_ratio():
    gold = [["B-PER", "O", "B-LOC"], ["O"], ["O"], ["B-ORG"]]
    pred = [["B-PER", "O", "O"], ["O"], ["B-PER"], ["B-ORG"]]
    # 1/2, 1 (nothing gold, nothing predicted), 0 (nothing gold, something predicted), 1
    assert ev.proj_ratio(gold, pred) == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert ev.proj_ratio([["B-X"]], [["B-X"]]) == 1.0
    # not clipped
    assert ev.proj_ratio([["B-X", "O"]], [["B-X", "B-Y"]]) == 2.0
