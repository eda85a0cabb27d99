"""The translator's own encoder as aligner (docs/alignment.md, "The translator's encoder"), on the
tiny NLLB of ``xfast models tiny``: its states equal transformers' ``model.get_encoder()`` at
every layer, each side read with its own language code; its alignments equal a plain numpy
implementation of softmax extraction over transformers' states; and every pipeline that aligns
runs with it (``--aligner translator`` reusing the translating checkpoint)."""

import csv
import json

import numpy as np
import pytest

from tests._pipeline_helpers import europarl_path, head_conll, masakhaner_path
from xfast.cli import main
from xfast.errors import ParameterError
from xfast.io import read_conll

SENTS = [["Hello", "world", "from", "Berlin", "."], ["Mr", "Smith", "went", "home"], ["Ja"]]


@pytest.fixture(scope="module")
def hf(tiny_models):
    """transformers' tiny NLLB and a tokenizer factory (per source language)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    path = tiny_models["nllb"]
    model = AutoModelForSeq2SeqLM.from_pretrained(str(path)).eval()
    return model, lambda code: AutoTokenizer.from_pretrained(str(path), src_lang=code)


def hf_states(hf, words: list[str], code: str, layer: int) -> tuple[np.ndarray, list[int]]:
    """transformers' layer-``layer`` encoder states of a word-split sentence (specials dropped)
    and each subword's word index."""
    import torch

    model, tokenizer = hf
    batch = tokenizer(code)(words, is_split_into_words=True, return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    assert ids[0] == tokenizer(code).convert_tokens_to_ids(code) and ids[-1] == 2  # [code] ... </s>
    with torch.no_grad():
        out = model.get_encoder()(**batch, output_hidden_states=True)
    states = out.last_hidden_state if layer == len(out.hidden_states) - 1 else out.hidden_states[layer]
    return states[0, 1:-1].numpy(), batch.word_ids()[1:-1]


@pytest.mark.parametrize("backend", ["onnx", "torch"])
@pytest.mark.parametrize("layer", [None, 1, 0])
def test_states_equal_transformers_encoder(tiny_models, hf, backend, layer):
    from xfast.models.encoder import Encoder

    enc = Encoder(tiny_models["nllb"], layer=layer, backend=backend)
    assert enc.takes_language
    assert enc.layer == (2 if layer is None else layer)  # default: the last layer, after the final norm
    langs = ["en", "deu_Latn", "yo"]
    codes = ["eng_Latn", "deu_Latn", "yor_Latn"]
    for got, words, code in zip(enc.encode(SENTS, lang=langs), SENTS, codes):
        want, word_ids = hf_states(hf, words, code, enc.layer)
        assert got.word_ids.tolist() == word_ids
        np.testing.assert_allclose(got.states, want, atol=1e-5, rtol=0)


def test_language_changes_states_and_is_required(tiny_models):
    from xfast.models.encoder import Encoder

    enc = Encoder(tiny_models["nllb"])
    en, de = enc.encode([SENTS[0]], lang="en")[0], enc.encode([SENTS[0]], lang="de")[0]
    assert np.abs(en.states - de.states).max() > 1e-3  # the code token is read
    with pytest.raises(ParameterError, match="E415"):
        enc.encode([SENTS[0]])
    with pytest.raises(ParameterError, match="E402"):
        enc.encode([SENTS[0]], lang="xx")
    with pytest.raises(ParameterError, match="E202"):
        enc.encode(SENTS, lang=["en", "de"])  # one language per sentence, or one for all


def test_windows_start_with_the_language_code(tiny_models, hf):
    """A sentence longer than the window is encoded in overlapping passes, each read as the
    translator reads a source: [code] window </s>. The first pass's own subwords equal
    transformers on that window alone."""
    from xfast.models.encoder import Encoder

    words = ["Berlin", "Parliament", "Commission", "Europe", "Nairobi", "Kampala", "Kigali", "Accra"] * 3
    enc = Encoder(tiny_models["nllb"], window=16)
    got = enc.encode([words], lang="de")[0]
    assert enc.stats["windowed"] == 1
    content = enc._content  # subwords per pass besides [code] and </s>
    own_end = enc._windows(len(got.word_ids))[0][3]
    import torch

    model, tokenizer = hf
    tok = tokenizer("deu_Latn")
    ids = tok(words, is_split_into_words=True)["input_ids"][1:-1]
    window = torch.tensor([[tok.convert_tokens_to_ids("deu_Latn"), *ids[:content], 2]])
    with torch.no_grad():
        want = model.get_encoder()(input_ids=window).last_hidden_state[0, 1:-1].numpy()
    np.testing.assert_allclose(got.states[:own_end], want[:own_end], atol=1e-5, rtol=0)


def numpy_softmax_alignment(x: np.ndarray, xw: list[int], y: np.ndarray, yw: list[int],
                            threshold: float = 1e-3) -> list[tuple[int, int]]:
    """Softmax extraction in plain numpy (float64): dot products, a softmax over each direction,
    subword pairs above the threshold in both, word pairs by union, sorted."""
    s = x.astype(np.float64) @ y.astype(np.float64).T
    fwd = np.exp(s - s.max(axis=1, keepdims=True))
    fwd /= fwd.sum(axis=1, keepdims=True)
    rev = np.exp(s - s.max(axis=0, keepdims=True))
    rev /= rev.sum(axis=0, keepdims=True)
    i, j = np.nonzero((fwd > threshold) & (rev > threshold))
    return sorted({(xw[a], yw[b]) for a, b in zip(i.tolist(), j.tolist())})


def test_alignments_equal_numpy_over_transformers_states(tiny_models, hf):
    """40 real Europarl en-de pairs: xfast's alignment with the tiny NLLB encoder equals the
    numpy oracle over transformers' states."""
    from xfast.aligner import Aligner

    en = [s.tokens for _, s in zip(range(40), read_conll(europarl_path("en")))]
    de = [s.tokens for _, s in zip(range(40), read_conll(europarl_path("de")))]
    aligner = Aligner(tiny_models["nllb_ct2"])  # the CTranslate2 export leads back to its checkpoint
    assert aligner.method == "softmax" and aligner.takes_language
    got = aligner.align_batch(en, de, langs=("en", "de"))
    n_pairs = 0
    for a, b, pairs in zip(en, de, got):
        x, xw = hf_states(hf, a, "eng_Latn", 2)
        y, yw = hf_states(hf, b, "deu_Latn", 2)
        want = numpy_softmax_alignment(x, xw, y, yw)
        assert [tuple(p) for p in pairs.tolist()] == want
        n_pairs += len(want)
    assert n_pairs > 40


def test_takes_language_without_loading(tiny_models):
    from xfast.models.encoder import takes_language

    assert takes_language("nllb-600m") and takes_language(tiny_models["nllb"])
    assert takes_language(tiny_models["nllb_ct2"])
    assert not takes_language("e5-small") and not takes_language(tiny_models["xlmr"])
    assert not takes_language(tiny_models["xlmr_onnx"])


# ------------------------------------------------------------------------------------ pipelines
@pytest.fixture(scope="module")
def europarl(tmp_path_factory):
    d = tmp_path_factory.mktemp("europarl")
    return {lang: head_conll(europarl_path(lang), 12, d / f"{lang}.conll")
            for lang in ("en", "de")}


def test_project_with_the_nllb_encoder(tiny_models, europarl, tmp_path, capsys):
    """``xfast project --aligner NLLB``: softmax by default, each side read in its language;
    the labels equal projecting the Aligner's own alignments."""
    from xfast.aligner import Aligner
    from xfast.io import entities_of
    from xfast.project import heuristic

    out = tmp_path / "out"
    rc = main(["project", "--labeled", str(europarl["en"]), "--receiving", f"de={europarl['de']}", "--out", str(out),
               "--aligner", str(tiny_models["nllb"]), "--method", "heuristic", "--quiet", "--device", "cpu",
               "--write-alignments"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["aligner"]["method"] == "softmax" and manifest["langs"] == ["eng_Latn", "deu_Latn"]
    en = list(read_conll(europarl["en"]))
    de = list(read_conll(europarl["de"]))
    alns = Aligner(tiny_models["nllb"]).align_batch([s.tokens for s in en], [s.tokens for s in de], langs=("en", "de"))
    got = [s.labels for s in read_conll(out / "de.heuristic.conll")]
    want = [heuristic(entities_of(s.labels), a, len(t.tokens)) for s, a, t in zip(en, alns, de)]
    assert got == want
    pharaoh = (out / "de.align.txt").read_text().splitlines()
    assert [sorted(tuple(map(int, p.split(":")[0].split("-"))) for p in line.split()) for line in pharaoh] == \
        [[tuple(p) for p in a.tolist()] for a in alns]


def test_project_names_sides_by_language(tiny_models, europarl, tmp_path, capsys):
    rc = main(["project", "--labeled", str(europarl["en"]), "--receiving", f"german={europarl['de']}",
               "--out", str(tmp_path / "o"), "--aligner", str(tiny_models["nllb"]), "--quiet", "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "E416" in err and "'german'" in err and "Traceback" not in err


def test_translate_test_and_train_align_with_the_translator(tiny_models, tmp_path):
    """``--aligner translator``: the translating checkpoint's encoder aligns (softmax by
    default), in translate-test (both modes) and translate-train; every output exists and the
    alignment cache is keyed by the sides' languages."""
    hau = head_conll(masakhaner_path("hau"), 6, tmp_path / "hau.conll")
    common = ["--translator", str(tiny_models["nllb_ct2"]), "--easyproject-translator", str(tiny_models["nllb_ct2"]),
              "--ner-model", str(tiny_models["ner_onnx"]), "--aligner", "translator", "--quiet",
              "--method", "heuristic", "ngram-greedy"]
    out = tmp_path / "tt"
    rc = main(["translate-test", "--input", str(hau), "--lang", "hau", "--out", str(out), "--mode", "src2tgt",
               "tgt2tgt", "--dataset", "masakhaner2", *common])
    assert rc in (0, 1)  # a random tiny translator may leave a sentence empty (counted, not hidden)
    rows = list(csv.DictReader(open(out / "metrics.csv", newline="")))
    assert {(r["xfast_mode"], r["xfast_align_method"], r["aligner"]) for r in rows} == \
        {("src2tgt", "softmax", "awesome"), ("tgt2tgt", "softmax", "awesome")}
    assert {r["xfast_aligner_model"] for r in rows} == {str(tiny_models["nllb_ct2"])}
    keys = [json.loads(p.read_text()) for p in (out / "cache").rglob("key.json")]
    assert sorted({tuple(k["langs"]) for k in keys if "langs" in k}) == [("eng_Latn", "hau_Latn"),
                                                                          ("hau_Latn", "hau_Latn")]

    en = head_conll(europarl_path("en"), 6, tmp_path / "en.conll")
    out2 = tmp_path / "train"
    rc = main(["translate-train", "--input", str(en), "--lang", "de", "yo", "--out", str(out2), *common])
    assert rc in (0, 1)
    for lang in ("de", "yo"):
        for m in ("heuristic", "ngram-greedy"):
            labeled = list(read_conll(out2 / f"{lang}.plain.softmax.{m}.conll"))
            assert len(labeled) == 6


def test_translator_and_its_encoder_are_not_held_together(tiny_models):
    """``--aligner translator``: loading the encoder releases the translator of the same
    checkpoint and the other way round; the released aligner's counts stay in the QA."""
    from xfast.pipelines.loaders import Models

    models, spec = Models(), str(tiny_models["nllb_ct2"])
    models.translator(spec)
    models.aligner(spec, method="softmax").encode([["Ja"]], lang="en")
    assert [k[0] for k in models._loaded] == ["aligner"]
    models.translator(spec)
    assert [k[0] for k in models._loaded] == ["translator"]
    models.aligner(spec, method="softmax").encode([["Ja"], ["Nein"]], lang="de")
    assert models.runtime_stats()[f"aligner:{spec}"]["sentences"] == 3


def test_projector_reads_both_languages(tiny_models, capsys):
    """The warm API (and so ``xfast serve``) with an NLLB encoder: fixed languages per side,
    labels equal the heuristic over the Aligner's alignments; without languages, E415."""
    from xfast.aligner import Aligner
    from xfast.project import heuristic
    from xfast.serve.projector import Projector

    aligner = Aligner(tiny_models["nllb"])
    projector = Projector(aligner, langs=("en", "de"))
    lab, rec = ["Angela", "Merkel", "spoke", "in", "Berlin"], ["Angela", "Merkel", "sprach", "in", "Berlin"]
    ents = [(0, 2, "PER"), (4, 5, "LOC")]
    got = projector.project(lab, ents, rec)
    want = heuristic(ents, aligner.align_batch([lab], [rec], langs=("en", "de"))[0], len(rec))
    assert got.labels == want
    with pytest.raises(ParameterError, match="E415"):
        Projector(aligner)
    rc = main(["serve", "--aligner", str(tiny_models["nllb"]), "--port", "0"])
    assert rc == 2 and "--receiving-lang" in capsys.readouterr().err


def test_translator_object_as_aligner(tiny_models, tmp_path):
    """The Python API with a loaded Translator and aligner="translator": its checkpoint's encoder
    aligns (the Translator's own model stays as it is)."""
    from xfast.models.translator import Translator
    from xfast.pipelines.translate_train import translate_train

    en = head_conll(europarl_path("en"), 4, tmp_path / "en.conll")
    res = translate_train(en, ["de"], tmp_path / "out", translator=Translator(tiny_models["nllb_ct2"]),
                          aligner="translator", methods=("heuristic",), progress=False)
    assert [r["align_method"] for r in res["results"]] == ["softmax"]
