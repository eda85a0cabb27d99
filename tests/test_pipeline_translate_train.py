"""translate-train end to end on the tiny models: marker mode equals EasyProject matching on
the translator's own output, plain mode equals translation + split + alignment + the
projection oracle, in both modes (compat and default)."""

import json

import pytest

from tests._pipeline_helpers import europarl_path, head_conll
from tests.oracles import project_oracle
from xfast.errors import DataError
from xfast.io import entities_of, labels_of, read_conll
from xfast.project.config import ProjectionConfig
from xfast.pipelines.translate_train import entity_ratio, translate_train

N = 8


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    return head_conll(europarl_path("en"), N,
                      tmp_path_factory.mktemp("data") / "en.conll")


@pytest.mark.parametrize("compat", [False, True], ids=["default", "compat"])
def test_marker_and_plain_match_the_building_blocks(english, tmp_path, tiny_models, compat):
    from xfast.aligner import Aligner
    from xfast.models.translator import Translator
    from xfast.text import back_translate_batch, detokenize, get_splitter

    tr = Translator(tiny_models["nllb_ct2"])
    aligner = Aligner(tiny_models["xlmr"], layer=8)
    res = translate_train(english, ["de"], tmp_path / "out", modes=("plain", "marker"), methods=("heuristic",),
                          translator=tr, easyproject_translator=tr, aligner=aligner,
                          config=ProjectionConfig(compat=compat), shard_size=3, progress=False)
    sents = list(read_conll(english))
    words = [s.tokens for s in sents]
    ents = [entities_of(s.labels) for s in sents]
    keep = {e[2] for es in ents for e in es}

    def translate(texts, max_length):
        tr.max_decoding_length = max_length
        try:
            return tr.translate(texts, "en", "de")
        finally:
            tr.max_decoding_length = 200

    marked = back_translate_batch(words, ents, translate, lang="de", compat=compat)
    got = [(s.tokens, s.labels) for s in read_conll(tmp_path / "out" / "de.marker.conll")]
    assert got == [(w, [x if x == "O" or x[2:] in keep else "O" for x in labels_of(e, len(w))]) for w, e in marked]

    german = [get_splitter("de", side="back", compat=compat)(t)
              for t in tr.translate([detokenize(w, "en") for w in words], "en", "de")]
    expected = []
    for w, e, g in zip(words, ents, german):
        pairs = [tuple(p) for p in aligner.align_batch([w], [g])[0]] if g else []
        labels, _ = project_oracle.heuristic(e, pairs, len(g), compat=compat, n_labeled=len(w))
        expected.append((g, labels))
    got = [(s.tokens, s.labels) for s in read_conll(tmp_path / "out" / "de.plain.itermax.heuristic.conll")]
    assert got == expected
    assert {(r["mode"], r["lang"]) for r in res["results"]} == {("plain", "de"), ("marker", "de")}
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert qa["easyproject/de"]["sentences"] == N and qa["translator/de"]["sentences"] == N
    assert qa["splitters"] == {"de/marker": "nltk-punkt-treebank-dquote", "de/plain": "nltk-punkt-treebank-dquote"}


def test_cli_two_languages_and_ner_candidates(english, tmp_path, tiny_models, capsys):
    from xfast.cli import main

    t = tiny_models
    rc = main(["translate-train", "--input", str(english), "--lang", "de", "yo", "--out", str(tmp_path / "o"),
               "--translator", str(t["nllb_ct2"]), "--ner-model", str(t["ner_onnx"]), "--aligner", str(t["xlmr"]),
               "--method", "heuristic", "ner-greedy", "--json", "--quiet"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert {(r["lang"], r["method"]) for r in res["results"]} == {
        (lang, m) for lang in ("de", "yo") for m in ("heuristic", "ner-greedy")}
    for r in res["results"]:
        out = [s.labels for s in read_conll(res["outputs"][f"{r['lang']}/plain/itermax/{r['method']}"])]
        assert r["entities_out"] == sum(x.startswith("B-") for s in out for x in s)
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["langs"] == {"de": "deu_Latn", "yo": "yor_Latn"}


def test_entity_ratio_and_gold_required(tmp_path):
    assert entity_ratio([[(0, 1, "PER")], [], []], [["B-PER", "B-LOC"], [], ["B-ORG"]]) == pytest.approx((2 + 1 + 0) / 3)
    plain = tmp_path / "en.tok"
    plain.write_text("a b c\n", encoding="utf-8")
    with pytest.raises(DataError, match="E513"):
        translate_train(plain, ["de"], tmp_path / "o", translator=object(), progress=False)
