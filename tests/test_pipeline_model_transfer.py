"""Model transfer (the baseline): the tagger on the receiving words, label set applied, scored
by seqeval with MasakhaNER's DATE ignored; the reference CSV's descriptor columns."""

import csv
import json

import pytest

from tests._pipeline_helpers import REFERENCE, head_conll, masakhaner_path
from xfast.io import labels_of, read_conll
from xfast.pipelines.model_transfer import model_transfer
from xfast.pipelines.manifest import default_ignore, describe


def test_model_transfer_on_tiny_tagger(tmp_path, tiny_models):
    from seqeval.metrics import classification_report

    from xfast.models.tagger import Tagger

    data = head_conll(masakhaner_path("yor"), 15, tmp_path / "yor.conll")
    tagger = Tagger(tiny_models["ner_onnx"])
    res = model_transfer(data, "yor", tmp_path / "out", ner_model=tagger, dataset="masakhaner2", shard_size=4,
                         progress=False)
    sents = list(read_conll(data))
    words = [s.tokens for s in sents]
    raw = [labels_of(e, len(w)) for e, w in zip(tagger.entities(words), words)]
    pred = [[x if x == "O" or x[2:] in {"PER", "ORG", "LOC", "DATE"} else "O" for x in s] for s in raw]
    assert [s.labels for s in read_conll(tmp_path / "out" / "yor.model_transfer.conll")] == pred

    def no_date(seqs):
        return [["O" if x.endswith("-DATE") else x for x in s] for s in seqs]

    ref = classification_report(no_date([s.labels for s in sents]), no_date(pred), output_dict=True, zero_division=0)
    row = res["results"][0]
    assert row["overall_f1"] == pytest.approx(ref["micro avg"]["f1-score"])
    for t in ("PER", "ORG", "LOC"):
        assert row[f"{t}_number"] == ref[t]["support"]
    with open(tmp_path / "out" / "metrics.csv", newline="") as fh:
        (csv_row,) = list(csv.DictReader(fh))
    assert csv_row["pipeline_type"] == "model_transfer" and csv_row["aligner"] == ""
    assert csv_row["task"] == "pipeline_eval" and csv_row["eval_type"] == "compare_to_original"
    assert float(csv_row["overall_f1"]) == row["overall_f1"]
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert qa["cache"]["computed"] == {"ner-receiving": 4} and qa["sentences"]["failed"] == 0


def test_describe_matches_the_reference_vocabulary():
    assert describe("src2tgt", "itermax", "heuristic")["pipeline_type"] == "align_src"
    assert describe("tgt2tgt", "softmax", "heuristic") == {
        "pipeline_type": "align_tgt", "aligner": "awesome", "candidate_matching": "", "candidate_selection": ""}
    assert describe("src2tgt", "itermax", "ngram-greedy") == {
        "pipeline_type": "candidates", "aligner": "simalign", "candidate_matching": "argmax",
        "candidate_selection": "dummy"}
    assert describe("tgt2tgt", "itermax", "ner-bipartite")["pipeline_type"] == "backtrans_candidates"
    assert default_ignore("masakhaner2") == ("DATE",) and default_ignore("xtreme") == ()
    # every xfast variant of a published kind uses the reference CSVs' own values
    seen = set()
    for name in ("masakhaner2_metrics.csv", "xtreme40_metrics.csv", "europarlner_metrics.csv"):
        with open(REFERENCE / name, newline="") as fh:
            seen |= {(r["pipeline_type"], r["aligner"], r["candidate_matching"], r["candidate_selection"])
                     for r in csv.DictReader(fh)}
    ours = {tuple(describe(mode, am, m).values()) for mode in ("src2tgt", "tgt2tgt") for am in ("itermax", "softmax")
            for m in ("heuristic", "ngram-greedy", "ner-greedy")} | {tuple(describe("model_transfer", "", "").values())}
    assert ours <= seen


def test_model_transfer_compat_has_its_own_cache(tmp_path, tiny_models):
    """--compat truncates at the model's limit (SPEC §7): on sentences that fit, the labels equal
    the default run's, but the NER stage is cached apart so neither run reuses the other's."""
    data = head_conll(masakhaner_path("yor"), 6, tmp_path / "yor.conll")
    cache = tmp_path / "cache"
    for compat in (False, True, False):
        model_transfer(data, "yor", tmp_path / f"out{compat}", ner_model=str(tiny_models["ner_onnx"]),
                       cache=cache, progress=False, compat=compat)
    assert (tmp_path / "outFalse" / "yor.model_transfer.conll").read_bytes() == \
        (tmp_path / "outTrue" / "yor.model_transfer.conll").read_bytes()
    assert len([p for p in (cache / "ner-receiving").iterdir() if p.is_dir()]) == 2
