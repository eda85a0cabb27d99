"""`xfast compare`: the join on the seven descriptor columns, rows without a partner kept on
both sides, duplicate keys, language-code matching, the numbered errors, and the figure, on
synthetic metrics rows (written by xfast.report) and on real runs (xfast demo on Europarl-NER,
translate-test on the tiny models) against the paper's results files."""

import csv
import json
import struct

import pytest

from tests._pipeline_helpers import REFERENCE, head_conll, masakhaner_path
from xfast.cli import main
from xfast.compare import COLUMNS, JOIN_KEY, compare, plot_comparison
from xfast.report import write_metrics_csv

EUROPARL = REFERENCE / "europarlner_metrics.csv"


def row(lang, f1, pipeline_type="align_src", aligner="simalign", matching="", selection="", dataset="europarl",
        **extra):
    return {"overall_f1": f1, "overall_precision": f1, "overall_recall": f1, "lang": lang, "task": "pipeline_eval",
            "eval_type": "compare_to_original", "dataset": dataset, "pipeline_type": pipeline_type,
            "aligner": aligner, "candidate_matching": matching, "candidate_selection": selection, **extra}


def metrics(path, rows, dataset="europarl"):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(path, rows, dataset=dataset)
    return path


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


# ---------------------------------------------------------------- the join, synthetic rows

def test_join_differences_and_rows_without_a_partner(tmp_path):
    metrics(tmp_path / "run" / "metrics.csv", [
        row("de", 0.8), row("de", 0.9, "candidates", matching="argmax", selection="dummy"), row("fr", 0.7)])
    ref = metrics(tmp_path / "ref.csv", [
        row("de", 0.75), row("de", 0.95, "candidates", matching="argmax", selection="dummy"),
        row("de", 0.6, "model_transfer", aligner=""), row("it", 0.5)])
    res = compare([tmp_path / "run"], [ref])
    assert [r["status"] for r in res.rows] == ["matched", "matched", "xfast only", "reference only", "reference only"]
    m = res.rows[:2]
    assert [(r["xfast_f1"], r["paper_f1"]) for r in m] == [(0.8, 0.75), (0.9, 0.95)]
    assert [r["diff"] for r in m] == [0.8 - 0.75, 0.9 - 0.95]
    assert [(r["run_line"], r["reference_line"]) for r in m] == [(2, 2), (3, 3)]
    assert res.rows[2]["lang"] == "fr" and res.rows[2]["paper_f1"] is None and res.rows[2]["reference_file"] == ""
    assert {r["lang"] for r in res.rows[3:]} == {"de", "it"} and all(r["xfast_f1"] is None for r in res.rows[3:])

    assert main(["compare", str(tmp_path / "run"), "--reference", str(ref), "--out", str(tmp_path / "out"),
                 "--figure", "never"]) == 0
    written = read_csv(tmp_path / "out" / "compare.csv")
    assert list(written[0]) == list(COLUMNS) and len(written) == 5  # 2 matched + 1 + 2: nothing dropped
    assert written[2]["paper_f1"] == written[2]["diff"] == "" and written[3]["xfast_f1"] == ""
    assert float(written[0]["diff"]) == pytest.approx(0.05)


def test_printed_table_lists_every_kind_of_row(tmp_path, capsys):
    run = metrics(tmp_path / "m.csv", [row("de", 0.8), row("fr", 0.7)])
    ref = metrics(tmp_path / "ref.csv", [row("de", 0.75), row("de", 0.6, "model_transfer", aligner=""),
                                         row("it", 0.5)])
    assert main(["compare", str(run), "--reference", str(ref), "--out", str(tmp_path / "o"),
                 "--figure", "never"]) == 0
    out = capsys.readouterr().out
    assert "matched (1)" in out and "0.0500" in out
    assert "xfast rows with no reference partner (1)" in out and "fr" in out
    # the runs' languages are de and fr: de's model_transfer row is listed, it's is counted
    assert "reference rows with no xfast partner, for the runs' languages (1)" in out and "model_transfer" in out
    assert "+ 1 reference rows for other languages (all in compare.csv)" in out


def test_duplicate_reference_keys_give_one_row_each_and_a_note(tmp_path):
    run = metrics(tmp_path / "m.csv", [row("de", 0.8)])
    ref = metrics(tmp_path / "ref.csv", [row("de", 0.75), row("de", 0.7)])
    res = compare([run], [ref])
    assert [(r["status"], r["paper_f1"], r["reference_line"]) for r in res.rows] == \
        [("matched", 0.75, 2), ("matched", 0.7, 3)]
    assert all("2 reference rows share this key" in r["note"] for r in res.rows)
    assert len(res.notes) == 1 and f"{ref}:2, {ref}:3" in res.notes[0]
    fig = plot_comparison(tmp_path / "c.png", res)
    paper = {s["label"]: s["values"] for s in fig["series"] if s["source"] == "paper"}
    assert paper == {"align_src simalign: paper": {"de": 0.75}, "align_src simalign: paper (line 3)": {"de": 0.7}}


def test_rows_of_one_run_sharing_a_key_are_told_apart_by_their_settings(tmp_path):
    run = metrics(tmp_path / "m.csv", [row("de", 0.8, xfast_align_method="itermax", xfast_layer=8),
                                       row("de", 0.7, xfast_align_method="inter", xfast_layer=8)])
    ref = metrics(tmp_path / "ref.csv", [row("de", 0.75)])
    res = compare([run], [ref])
    assert [(r["variant"], r["diff"]) for r in res.rows] == \
        [("align_method=itermax", 0.8 - 0.75), ("align_method=inter", 0.7 - 0.75)]
    fig = plot_comparison(tmp_path / "c.png", res)
    assert [s["label"] for s in fig["series"]] == ["align_src simalign [align_method=itermax]: xfast",
                                                   "align_src simalign [align_method=inter]: xfast",
                                                   "align_src simalign: paper"]


def test_languages_join_exactly_first_then_by_flores_code(tmp_path):
    run = metrics(tmp_path / "m.csv", [row("de", 0.8), row("deu_Latn", 0.81, "model_transfer", aligner=""),
                                       row("ha", 0.5, dataset="masakhaner2")])
    ref = metrics(tmp_path / "ref.csv", [row("de", 0.7), row("deu", 0.71), row("de", 0.6, "model_transfer", aligner=""),
                                         row("hau", 0.4, dataset="masakhaner2")])
    res = compare([run], [ref])
    got = [(r["status"], r["lang"], r["reference_lang"], r["lang_match"]) for r in res.rows]
    assert got == [("matched", "de", "de", "exact"),  # deu waits: an exact partner exists
                   ("matched", "deu_Latn", "de", "flores"), ("matched", "ha", "hau", "flores"),
                   ("reference only", "deu", "deu", "")]
    exact = compare([run], [ref], lang_match="exact")
    assert [r["status"] for r in exact.rows].count("matched") == 1


def test_an_empty_dataset_is_unmatched_with_a_hint(tmp_path):
    res = compare([metrics(tmp_path / "m.csv", [row("de", 0.8, dataset="")], dataset="")], [EUROPARL])
    assert res.rows[0]["status"] == "xfast only" and "--dataset" in res.notes[-1]


# ---------------------------------------------------------------- errors: numbered, exit code 2

def _bad_reference(tmp_path, kind):
    path = tmp_path / "ref.csv"
    good = EUROPARL.read_text(encoding="utf-8").splitlines()
    if kind == "no join column":
        path.write_text(good[0].replace(",candidate_selection", "") + "\n", encoding="utf-8")
    elif kind == "not a number":
        cells = good[3].split(",")
        cells[good[0].split(",").index("overall_f1")] = "n/a"
        path.write_text("\n".join([*good[:3], ",".join(cells)]) + "\n", encoding="utf-8")
    elif kind == "not UTF-8":
        path.write_bytes(good[0].encode() + b"\n" + b"\xff\xfe,x\n")
    elif kind == "empty":
        path.write_text("", encoding="utf-8")
    elif kind == "long row":
        path.write_text(good[0] + "\n" + good[1] + ",extra\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind,where", [
    ("no join column", ":1: [E115]"), ("not a number", ":4: [E116]"), ("not UTF-8", ":2: [E101]"),
    ("empty", ":1: [E117]"), ("long row", ":2: [E109]")])
def test_a_bad_reference_names_file_line_and_code(tmp_path, capsys, kind, where):
    run = metrics(tmp_path / "run" / "metrics.csv", [row("de", 0.8)])
    ref = _bad_reference(tmp_path, kind)
    assert main(["compare", str(run.parent), "--reference", str(ref), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xfast: error: ") and f"{ref}{where}" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked


@pytest.mark.parametrize("case,code", [("missing run", "E113"), ("run without metrics.csv", "E114"),
                                       ("missing reference", "E110"), ("reference is a folder", "E111")])
def test_bad_runs_and_references_exit_2(tmp_path, capsys, case, code):
    (tmp_path / "empty").mkdir()
    run, ref = metrics(tmp_path / "run" / "metrics.csv", [row("de", 0.8)]).parent, EUROPARL
    if case == "missing run":
        run = tmp_path / "nope"
    elif case == "run without metrics.csv":
        run = tmp_path / "empty"
    elif case == "missing reference":
        ref = tmp_path / "nope.csv"
    else:
        ref = tmp_path / "empty"
    assert main(["compare", str(run), "--reference", str(ref), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    named = run if case.endswith("run") or "metrics" in case else ref
    assert err.startswith(f"xfast: error: {named}: [{code}]"), err


def test_usage_errors_exit_2(tmp_path, capsys):
    run = metrics(tmp_path / "m.csv", [row("de", 0.8)])
    for argv in (["compare", str(run), "--out", str(tmp_path / "o")],  # no --reference
                 ["compare", str(run), "--reference", str(EUROPARL), "--out", str(tmp_path / "o"),
                  "--lang-match", "fuzzy"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "required: --reference" in err and "--lang-match" in err


def test_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("RUN_DIR", "--reference CSV", "--out DIR", "--lang-match", "--figure", "--json", "example:"):
        assert option in text
    from xfast.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["compare"]
    assert all(a.help for a in sub._actions)


def test_without_matplotlib_the_table_and_csv_still_come(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    run = metrics(tmp_path / "m.csv", [row("de", 0.8)])
    assert main(["compare", str(run), "--reference", str(EUROPARL), "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert "matched (1)" in out and 'pip install "xfast[plot]"' in err
    assert (tmp_path / "o" / "compare.csv").is_file() and not (tmp_path / "o" / "compare.png").exists()
    assert main(["compare", str(run), "--reference", str(EUROPARL), "--out", str(tmp_path / "p"),
                 "--figure", "always"]) == 2
    assert "[E204]" in capsys.readouterr().err and not (tmp_path / "p").exists()


# ---------------------------------------------------------------- real runs against the paper's files

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`xfast demo --limit 40 --out DIR` on the bundled Europarl-NER data and the embedded aligner."""
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--limit", "40", "--out", str(out), "--quiet"]) == 0
    return out


def test_demo_keeps_its_run_folder_with_the_europarl_dataset(demo_run):
    rows = read_csv(demo_run / "metrics.csv")
    assert {r["dataset"] for r in rows} == {"europarl"} and len(rows) == 6
    assert (demo_run / "qa.json").is_file() and (demo_run / "de.heuristic.conll").is_file()


def test_demo_beside_the_paper_figure_and_csv(demo_run, tmp_path, capsys):
    from matplotlib.image import imread

    out = tmp_path / "cmp"
    assert main(["compare", str(demo_run), "--reference", str(EUROPARL), "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["counts"] == {"matched": 6, "xfast_only": 0, "reference_only": 15}  # the paper's 21 rows, all there
    ours = {(r["lang"], r["pipeline_type"]): float(r["overall_f1"]) for r in read_csv(demo_run / "metrics.csv")}
    paper = {(r["lang"], r["pipeline_type"], r["aligner"], r["candidate_selection"]): float(r["overall_f1"])
             for r in read_csv(EUROPARL)}
    written = read_csv(out / "compare.csv")
    assert len(written) == 21 and [r["status"] for r in written].count("matched") == 6
    for r in (r for r in written if r["status"] == "matched"):
        assert r["aligner"] == "simalign" and float(r["xfast_f1"]) == ours[(r["lang"], r["pipeline_type"])]
        assert float(r["paper_f1"]) == paper[(r["lang"], r["pipeline_type"], "simalign", r["candidate_selection"])]
        assert float(r["diff"]) == pytest.approx(float(r["xfast_f1"]) - float(r["paper_f1"]))

    png = out / "compare.png"
    assert res["outputs"]["png"] == str(png) and png_size(png) == (1100, 550) == tuple(res["figure"]["size_px"])
    assert imread(png).shape[:2] == (550, 1100)  # it decodes
    fig = res["figure"]
    assert fig["langs"] == ["de", "es", "it"]
    assert [(s["method"], s["source"]) for s in fig["series"]] == [
        ("align_src simalign", "xfast"), ("align_src simalign", "paper"),
        ("candidates simalign argmax dummy", "xfast"), ("candidates simalign argmax dummy", "paper")]
    for s in fig["series"]:  # every bar is a value of compare.csv
        for lang, value in s["values"].items():
            r = next(r for r in written if r["status"] == "matched" and r["method"] == s["method"] and r["lang"] == lang)
            assert value == float(r[f"{s['source']}_f1"])

    again = tmp_path / "again"
    assert main(["compare", str(demo_run), "--reference", str(EUROPARL), "--out", str(again)]) == 0
    assert (again / "compare.png").read_bytes() == png.read_bytes()  # deterministic
    assert (again / "compare.csv").read_bytes() == (out / "compare.csv").read_bytes()


def test_tiny_translate_test_run_beside_masakhaner(tmp_path, tiny_models, capsys):
    """A translate-test run with an ISO 639-1 code (ha) joins the paper's MasakhaNER rows (hau),
    its two extraction methods told apart; the reference's unnamed index column is read."""
    hau = head_conll(masakhaner_path("hau"), 5, tmp_path / "hau.conll")
    t = tiny_models
    assert main(["translate-test", "--input", str(hau), "--lang", "ha", "--out", str(tmp_path / "tt"),
                 "--translator", str(t["nllb_ct2"]), "--easyproject-translator", str(t["nllb_ct2"]),
                 "--ner-model", str(t["ner_onnx"]), "--aligner", str(t["xlmr"]), "--mode", "src2tgt",
                 "--align-method", "itermax", "inter", "--method", "heuristic", "--dataset", "masakhaner2",
                 "--baseline", "--quiet", "--json"]) == 0
    capsys.readouterr()
    ref = REFERENCE / "masakhaner2_metrics.csv"
    res = compare([tmp_path / "tt"], [ref])
    matched = [r for r in res.rows if r["status"] == "matched"]
    assert sorted((r["method"], r["variant"], r["lang_match"]) for r in matched) == [
        ("align_src simalign", "align_method=inter", "flores"), ("align_src simalign", "align_method=itermax", "flores"),
        ("model_transfer", "", "flores")]
    assert {r["reference_lang"] for r in matched} == {"hau"}
    assert len(res.rows) == len(matched) + len(read_csv(ref)) - 2  # two reference rows found partners
    assert all(set(r) == set(COLUMNS) for r in res.rows) and set(JOIN_KEY) <= set(COLUMNS)
