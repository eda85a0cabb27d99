"""`xfast compare` says what it compares: a run over part of the test set is noted in the table,
compare.csv and the notes; several runs get a colour each; the legend speaks xfast's method
names; a difference of 0.01 shows in the figure. Synthetic metrics rows written by the test
(xfast.report), and the docs' examples name their dataset."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from xfast.compare import COLUMNS, compare, format_comparison, plot_comparison, write_comparison
from xfast.report import write_metrics_csv

REPO = Path(__file__).resolve().parents[1]
METHODS = [("align_src", "", ""), ("candidates", "argmax", "dummy")]


def row(lang, f1, pipeline_type="align_src", matching="", selection="", aligner="simalign", entities=(10, 20),
        **extra):
    return {"LOC_number": entities[0], "PER_number": entities[1], "overall_f1": f1, "overall_precision": f1,
            "overall_recall": f1, "lang": lang, "task": "pipeline_eval", "eval_type": "compare_to_original",
            "dataset": "europarl", "pipeline_type": pipeline_type, "aligner": aligner,
            "candidate_matching": matching, "candidate_selection": selection, **extra}


def metrics(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(path, rows, dataset="europarl")
    return path


def runs(tmp_path: Path, *shifts: tuple[str, float, tuple[int, int], int]) -> tuple[list[Path], Path]:
    """A reference file (de, es; heuristic and n-gram greedy; 30 gold entities a row) and one run
    per ``(name, F1 shift, entities, sentences)``."""
    ref = metrics(tmp_path / "ref.csv", [row(lang, f, *m) for lang in ("de", "es")
                                         for f, m in zip((0.80, 0.85), METHODS)])
    dirs = []
    for name, shift, ents, sents in shifts:
        metrics(tmp_path / name / "metrics.csv", [row(lang, f + shift, *m, entities=ents, xfast_sentences=sents)
                                                   for lang in ("de", "es") for f, m in zip((0.80, 0.85), METHODS)])
        dirs.append(tmp_path / name)
    return dirs, ref


def drawn(monkeypatch):
    """The matplotlib Figure plot_comparison saves, kept for the test to read."""
    from matplotlib.figure import Figure

    kept = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        kept.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return kept


def test_a_run_over_part_of_the_test_set_is_noted(tmp_path):
    (full, part), ref = runs(tmp_path, ("full", 0.0, (10, 20), 799), ("part", 0.0, (1, 2), 50))
    res = compare([full, part], [ref])
    matched = [r for r in res.rows if r["status"] == "matched"]
    assert len(matched) == 8
    for r in matched:
        if r["run"] == str(part):
            assert (r["xfast_entities"], r["paper_entities"], r["xfast_sentences"]) == (3, 30, 50)
            assert "not the paper's test set: xfast scored 3 gold entities in 50 sentences, the paper 30" in r["note"]
        else:
            assert (r["xfast_entities"], r["paper_entities"], r["note"]) == (30, 30, "")
    assert res.notes == [f"{part}: 4 matched rows were scored on other gold entities than the paper's (50 sentences), "
                         "as a run with --limit is: their F1s are not comparable row for row (the entities column: "
                         "xfast's of the paper's)"]
    table = format_comparison(res).split("\n\n")[1].splitlines()
    assert table[0].split()[-1] == "entities"
    assert [ln.split()[-3:] == ["3", "of", "30"] for ln in table[2:]] == [False] * 4 + [True] * 4
    write_comparison(tmp_path / "out", res, figure="never")
    with open(tmp_path / "out" / "compare.csv", newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == list(COLUMNS)
    assert [r["note"].startswith("not the paper's test set") for r in written if r["status"] == "matched"] == \
        [False] * 4 + [True] * 4
    alone = compare([full], [ref])  # nothing to note: no column, no note
    assert alone.notes == [] and "entities" not in format_comparison(alone).split("\n\n")[1].splitlines()[0]


def test_several_runs_get_a_colour_each_and_the_legend_speaks_xfast(tmp_path, monkeypatch):
    (a, b), ref = runs(tmp_path, ("a", 0.01, (10, 20), 799), ("b", -0.01, (10, 20), 799))
    figures = drawn(monkeypatch)
    fig = plot_comparison(tmp_path / "c.png", compare([a, b], [ref]))
    ours = [s for s in fig["series"] if s["source"] == "xfast"]
    assert len(ours) == 4 and len({s["colour"] for s in ours}) == 4  # every run and method its own colour
    assert {s["colour"] for s in fig["series"] if s["source"] == "paper"} == {"0.45"}  # shared by two runs: grey
    want = [f"heuristic, SimAlign ({a}): xfast", f"heuristic, SimAlign ({b}): xfast", "heuristic, SimAlign: paper",
            f"ngram-greedy, SimAlign ({a}): xfast", f"ngram-greedy, SimAlign ({b}): xfast",
            "ngram-greedy, SimAlign: paper"]
    assert [s["legend"] for s in fig["series"]] == want
    assert sorted(t.get_text() for t in figures[0].legends[0].get_texts()) == sorted(want)  # as drawn
    one = plot_comparison(tmp_path / "d.png", compare([a], [ref]))  # one run: the paper bar takes its colour
    colours = [(s["source"], s["colour"]) for s in one["series"]]
    assert colours == [("xfast", "C0"), ("paper", "C0"), ("xfast", "C1"), ("paper", "C1")]


@pytest.mark.parametrize("kind,want", [
    (("align_src", "", "", "simalign"), "heuristic, SimAlign"),
    (("align_tgt", "", "", "awesome"), "tgt2tgt heuristic, AWESoME"),
    (("candidates", "bipartite", "ner", "simalign"), "ner-bipartite, SimAlign"),
    (("backtrans_candidates", "argmax", "dummy", "awesome"), "tgt2tgt ngram-greedy, AWESoME"),
    (("model_transfer", "", "", ""), "model-transfer"),
])
def test_the_legend_names_every_kind_as_xfast_does(tmp_path, kind, want):
    pipeline_type, matching, selection, aligner = kind
    r = row("de", 0.5, pipeline_type, matching, selection, aligner)
    fig = plot_comparison(tmp_path / "c.png", compare([metrics(tmp_path / "m.csv", [r])],
                                                      [metrics(tmp_path / "ref.csv", [r])]))
    assert [s["legend"] for s in fig["series"]] == [f"{want}: xfast", f"{want}: paper"]


def test_a_difference_of_a_hundredth_is_visible(tmp_path, monkeypatch):
    (a,), ref = runs(tmp_path, ("a", 0.01, (10, 20), 799))
    figures = drawn(monkeypatch)
    fig = plot_comparison(tmp_path / "c.png", compare([a], [ref]))
    assert all(v == pytest.approx(0.01) for s in fig["series"] if s["source"] == "xfast" for v in s["diffs"].values())
    lo, hi = fig["diff_ylim"]
    assert lo < 0 < hi and 0.01 / (hi - lo) >= 0.15
    panel = figures[0].axes[1]
    heights = [p.get_window_extent().height for p in panel.patches if p.get_height() == pytest.approx(0.01)]
    assert len(heights) == 4 and min(heights) >= 10  # pixels at the figure's 100 dpi
    assert fig["size_px"] == [1100, 550]


def _commands(text: str) -> list[str]:
    """The pipeline commands of the text's bash blocks, continuation lines joined."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for cmd in block.replace("\\\n", " ").splitlines():
            if re.match(r"xfast (project|translate-test|model-transfer) ", cmd):
                out.append(cmd)
    return out


def test_the_docs_examples_name_their_dataset():
    cli = _commands((REPO / "docs" / "cli.md").read_text(encoding="utf-8"))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    beside = readme.split("## xfast beside the paper", 1)[1].split("\n## ", 1)[0]
    for cmd in cli + _commands(beside):
        assert "--dataset " in cmd, cmd
    assert len(cli) >= 4 and _commands(beside)
