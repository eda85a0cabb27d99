"""translate-test end to end on the tiny models (SPEC §8, §10): the copy-task NLLB emits EOS,
so translations end and the pipeline's stages compose as the SPEC says. Each pipeline output
is recomputed here from the building blocks and the plain-Python projection oracle, in both
modes (compat and default); stage reuse, label-set mapping, DATE ignoring and the metrics
row's reference columns are checked too."""

import csv
import json

import pytest

from tests._pipeline_helpers import REFERENCE, head_conll, masakhaner_path
from tests.oracles import project_oracle
from xfast.errors import ParameterError
from xfast.io import labels_of, read_conll
from xfast.pipelines.loaders import ModelOptions
from xfast.project.config import ProjectionConfig
from xfast.pipelines.translate_test import translate_test

N = 10


@pytest.fixture(scope="module")
def hau(tmp_path_factory):
    return head_conll(masakhaner_path("hau"), N, tmp_path_factory.mktemp("data") / "hau.conll")


@pytest.fixture(scope="module")
def models(tiny_models):
    from xfast.aligner import Aligner
    from xfast.models.tagger import Tagger
    from xfast.models.translator import Translator

    return {"translator": Translator(tiny_models["nllb_ct2"]), "tagger": Tagger(tiny_models["ner_onnx"]),
            "aligner": Aligner(tiny_models["xlmr"], layer=8)}


def run(hau, out, models, **kw):
    kw.setdefault("progress", False)
    return translate_test(hau, "hau", out, translator=models["translator"],
                          easyproject_translator=models["translator"], ner_model=models["tagger"],
                          aligner=models["aligner"], **kw)


def oracle_labels(mode, align_method, method, words, models, *, compat, keep):
    """The SPEC §8 chain built by hand from the building blocks; projection by the oracle."""
    from xfast.align import align_states_batch
    from xfast.text import back_translate_batch, detokenize, get_splitter

    tr, tagger, aligner = models["translator"], models["tagger"], models["aligner"]
    saved = tr.max_decoding_length
    tr.max_decoding_length = 200
    english = tr.translate([detokenize(w, "hau") for w in words], "hau_Latn", "eng_Latn")
    split = get_splitter("en", side="mt")
    en_words = [split(t) for t in english]
    en_ents = tagger.entities(en_words)
    if mode == "src2tgt":
        lab_words, lab_ents = en_words, en_ents
    else:
        def translate(texts, max_length):
            tr.max_decoding_length = max_length
            return tr.translate(texts, "en", "hau")

        res = back_translate_batch(en_words, en_ents, translate, lang="hau", compat=compat)
        lab_words, lab_ents = [r[0] for r in res], [r[1] for r in res]
    tr.max_decoding_length = saved
    out = []
    for lw, le, rw in zip(lab_words, lab_ents, words):
        if lw and rw:
            x, y = aligner.encode([lw]), aligner.encode([rw])
            pairs = align_states_batch([x[0].states], [y[0].states], [x[0].word_ids], [y[0].word_ids],
                                       method=align_method, compat_awesome=compat and align_method == "softmax")[0]
        else:
            pairs = []
        pairs = [tuple(p) for p in pairs]
        if method == "heuristic":
            labels, _ = project_oracle.heuristic(le, pairs, len(rw), compat=compat, n_labeled=len(lw))
        else:
            cands = (project_oracle.ngram_candidates(rw) if method == "ngram-greedy"
                     else project_oracle.ner_candidates([(s, e) for s, e, _ in tagger.entities([rw])[0]]))
            labels, _ = project_oracle.greedy(le, cands, pairs, len(rw), compat=compat, n_labeled=len(lw))
        out.append([lab if lab == "O" or lab[2:] in keep else "O" for lab in labels])
    return out


@pytest.mark.parametrize("compat", [False, True], ids=["default", "compat"])
def test_both_modes_match_the_stage_by_stage_oracle(hau, tmp_path, models, compat):
    methods = ("heuristic", "ngram-greedy", "ner-greedy")
    res = run(hau, tmp_path / "out", models, modes=("src2tgt", "tgt2tgt"), methods=methods,
              align_methods=("itermax", "softmax"), baseline=True, dataset="masakhaner2",
              config=ProjectionConfig(compat=compat), shard_size=4)
    sents = list(read_conll(hau))
    words = [s.tokens for s in sents]
    keep = {lab[2:] for s in sents for lab in s.labels if lab != "O"}
    assert keep == {"PER", "ORG", "LOC", "DATE"}
    for mode in ("src2tgt", "tgt2tgt"):
        for am in ("itermax", "softmax"):
            for m in methods:
                got = [s.labels for s in read_conll(tmp_path / "out" / f"hau.{mode}.{am}.{m}.conll")]
                assert got == oracle_labels(mode, am, m, words, models, compat=compat, keep=keep), (mode, am, m)
    # model transfer: the tagger on the receiving words, MISC mapped to O (not in MasakhaNER)
    mt = [s.labels for s in read_conll(tmp_path / "out" / "hau.model_transfer.conll")]
    expected = [labels_of(e, len(w)) for e, w in zip(models["tagger"].entities(words), words)]
    assert mt == [[lab if lab == "O" or lab[2:] in keep else "O" for lab in s] for s in expected]
    # one metrics row per variant (+ baseline), in the reference CSV columns
    assert len(res["results"]) == 2 * 2 * 3 + 1
    with open(tmp_path / "out" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(REFERENCE / "masakhaner2_metrics.csv", newline="") as fh:
        ref_cols = csv.DictReader(fh).fieldnames
    with open(tmp_path / "out" / "metrics.csv", newline="") as fh:
        ours = csv.DictReader(fh).fieldnames
    # the reference's columns in its order (rows append to its file as they are), then xfast's
    assert ours[:len(ref_cols)] == ref_cols and all(k.startswith("xfast_") for k in ours[len(ref_cols):])
    assert [r[""] for r in rows] == [str(i) for i in range(len(rows))] and {r["Status"] for r in rows} == {"FINISHED"}
    assert not any(k.startswith("DATE_") for k in rows[0])  # MasakhaNER ignores DATE
    kinds = {(r["pipeline_type"], r["aligner"], r["candidate_selection"], r["candidate_matching"]) for r in rows}
    assert kinds == {("align_src", "simalign", "", ""), ("align_src", "awesome", "", ""),
                     ("align_tgt", "simalign", "", ""), ("align_tgt", "awesome", "", ""),
                     ("candidates", "simalign", "dummy", "argmax"), ("candidates", "awesome", "dummy", "argmax"),
                     ("candidates", "simalign", "ner", "argmax"), ("candidates", "awesome", "ner", "argmax"),
                     ("backtrans_candidates", "simalign", "dummy", "argmax"),
                     ("backtrans_candidates", "awesome", "dummy", "argmax"),
                     ("backtrans_candidates", "simalign", "ner", "argmax"),
                     ("backtrans_candidates", "awesome", "ner", "argmax"), ("model_transfer", "", "", "")}
    assert {r["dataset"] for r in rows} == {"masakhaner2"} and {r["lang"] for r in rows} == {"hau"}
    # scores: seqeval itself, DATE ignored on both sides
    from seqeval.metrics import f1_score

    def no_date(seqs):
        return [["O" if lab.endswith("-DATE") else lab for lab in s] for s in seqs]

    row = next(r for r in rows if r["pipeline_type"] == "model_transfer")
    gold = [s.labels for s in sents]
    assert float(row["overall_f1"]) == pytest.approx(f1_score(no_date(gold), no_date(mt)))
    # QA: splitters, translator and EasyProject counts, cache, no failures
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert qa["splitters"] == {"mt": "nltk-punkt-treebank", "back": "nltk-punkt-treebank-dquote"}
    assert qa["translator"]["sentences"] == N and "repetition_loops" in qa["translator"]
    assert qa["easyproject"]["sentences"] == N
    assert qa["sentences"]["in"] == qa["sentences"]["out"] == N
    assert set(qa["cache"]["computed"]) == {"translate", "ner-en", "backtranslate", "ner-receiving", "align"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["flores"] == "hau_Latn" and manifest["config"]["compat"] is compat


def test_variants_reuse_one_translation_ner_and_back_translation(hau, tmp_path, tiny_models):
    """A second run with other projection methods loads every model stage from the cache and
    never loads the translator or the tagger; the outputs of the first run are unchanged."""
    common = dict(translator=tiny_models["nllb_ct2"], easyproject_translator=tiny_models["nllb_ct2"],
                  ner_model=tiny_models["ner_onnx"], aligner=tiny_models["xlmr"], cache=tmp_path / "cache",
                  modes=("src2tgt", "tgt2tgt"), shard_size=4, progress=False)
    first = translate_test(hau, "ha", tmp_path / "a", methods=("heuristic",), **common)
    assert "load translator" in first["timings"]
    second = translate_test(hau, "ha", tmp_path / "b", methods=("ngram-greedy", "heuristic"), **common)
    assert "load translator" not in second["timings"] and "load tagger" not in second["timings"]
    assert second["qa"]["cache"]["computed"] == {}
    assert set(second["qa"]["cache"]["loaded"]) == {"translate", "ner-en", "backtranslate", "align"}
    for mode in ("src2tgt", "tgt2tgt"):
        name = f"ha.{mode}.itermax.heuristic.conll"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # another aligner extraction method reuses translation and NER, computes only alignments
    third = translate_test(hau, "ha", tmp_path / "c", methods=("heuristic",), align_methods=("inter",), **common)
    assert set(third["qa"]["cache"]["computed"]) == {"align"}


def test_label_set_and_ignore_override(hau, tmp_path, models):
    res = run(hau, tmp_path / "out", models, methods=("heuristic",), label_set={"LOC"}, ignore=(), shard_size=64)
    for s in read_conll(tmp_path / "out" / "hau.src2tgt.itermax.heuristic.conll"):
        assert all(lab == "O" or lab.endswith("-LOC") for lab in s.labels)
    assert res["results"][0]["DATE_number"] > 0  # nothing ignored: gold DATE is scored


def test_jsonl_input_with_integer_tags(hau, tmp_path, models):
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-DATE", "I-DATE"]
    path = tmp_path / "hau.jsonl"
    path.write_text("".join(json.dumps({"tokens": s.tokens, "ner_tags": [names.index(x) for x in s.labels]}) + "\n"
                            for s in read_conll(hau)), encoding="utf-8")
    a = run(hau, tmp_path / "a", models, methods=("heuristic",), dataset="masakhaner2")
    b = run(path, tmp_path / "b", models, methods=("heuristic",), dataset="masakhaner2", label_names=names)
    assert a["results"] == b["results"]


def test_unsupported_language_and_bad_options_fail_before_work(hau, tmp_path):
    for lang in ("bbj", "pcm"):
        with pytest.raises(ParameterError, match="E402"):
            translate_test(hau, lang, tmp_path, translator=object(), progress=False)
    with pytest.raises(ParameterError, match="E201"):
        translate_test(hau, "hau", tmp_path, modes=("both",), progress=False)
    with pytest.raises(ParameterError, match="token_type"):
        translate_test(hau, "hau", tmp_path, align_methods=("softmax",), options=ModelOptions(token_type="word"),
                       progress=False)
    assert not (tmp_path / "cache").exists()


def test_cli_translate_test_and_model_transfer(hau, tmp_path, tiny_models, capsys):
    from xfast.cli import main

    t = tiny_models
    rc = main(["translate-test", "--input", str(hau), "--lang", "hau", "--out", str(tmp_path / "tt"),
               "--translator", str(t["nllb_ct2"]), "--easyproject-translator", str(t["nllb_ct2"]),
               "--ner-model", str(t["ner_onnx"]), "--aligner", str(t["xlmr"]), "--mode", "src2tgt", "tgt2tgt",
               "--method", "heuristic", "--dataset", "masakhaner2", "--baseline", "--json", "--quiet"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert {r["pipeline_type"] for r in res["results"]} == {"align_src", "align_tgt", "model_transfer"}
    rc = main(["model-transfer", "--input", str(hau), "--lang", "hau", "--out", str(tmp_path / "mt"),
               "--ner-model", str(t["ner_onnx"]), "--dataset", "masakhaner2", "--cache", str(tmp_path / "tt" / "cache"),
               "--json", "--quiet"])
    assert rc == 0
    res2 = json.loads(capsys.readouterr().out)
    assert res2["qa"]["cache"]["loaded"] == {"ner-receiving": 1}  # the translate-test run's stage
    mt_row = next(r for r in res["results"] if r["pipeline_type"] == "model_transfer")
    assert res2["results"][0]["overall_f1"] == mt_row["overall_f1"]
    assert (tmp_path / "mt" / "hau.model_transfer.conll").read_bytes() == \
        (tmp_path / "tt" / "hau.model_transfer.conll").read_bytes()
    assert main(["translate-test", "--input", str(hau), "--lang", "bbj", "--out", str(tmp_path / "x")]) == 2


def test_a_sentence_over_the_translator_limit_is_translated_in_pieces(tmp_path, hau, models):
    """A 400-word sentence (over NLLB's 1,024 input tokens) no longer aborts translate-test: it
    is translated in pieces, counted under translator/split, and every sentence comes out."""
    from xfast.io import write_conll

    sents = list(read_conll(hau))
    words = [w for s in sents for w in s.tokens]
    long_words = (words * 20)[:400]
    rows = [(s.tokens, s.labels) for s in sents[:3]] + [(long_words, ["O"] * len(long_words))]
    path = tmp_path / "long.conll"
    write_conll(path, rows)
    res = run(path, tmp_path / "out", models, modes=("src2tgt",), methods=("heuristic",))
    assert res["qa"]["translator"]["split"] == 1
    assert res["qa"]["sentences"]["out"] == 4
    out = list(read_conll(tmp_path / "out" / "hau.src2tgt.itermax.heuristic.conll"))
    assert [len(s.tokens) for s in out] == [len(r[0]) for r in rows]
