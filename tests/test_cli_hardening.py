"""The command line leaves nothing behind and says what it means (issue 26, section 3):
input checks before anything is created, plain output names, --limit for project, usage errors
that name the subcommand, one readable default per option, progress lines for logs, --quiet.

Inputs are a few hand-written sentences and the Europarl-NER test sets that ship in the
package; models are the tiny offline ones (tests/fixtures_models.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._ray_helpers import has_ray, netns_ok
import xfast
from xfast.cli import build_parser, main
from xfast.errors import ParameterError
from xfast.io import read_conll

EUROPARL = Path(xfast.__file__).parent / "data" / "europarl"
REPO = Path(__file__).resolve().parents[1]

GOOD = "a\tO\nb\tB-ORG\n\nc\tO\n"
BROKEN = {  # an input check that fails, and the code it answers with
    "bad-label": ("in.conll", "a\tO\nb\tB_ORG\n\nc\tO\n".encode(), "E103"),
    "not-utf8": ("in.conll", b"a\tO\nb\t\xffB-ORG\n\nc\tO\n", "E101"),
    "plain-text": ("in.txt", b"a b\nc\n", "E118"),  # E513 for translate-train, which says the same
    "no-pyarrow": ("in.parquet", None, "E204"),
}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """``xfast ARGV`` in this process: its exit code and its stderr (stdout stays in capsys)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    sys.stdout.write(captured.out)
    return code, captured.err


def _one_error(err: str, code: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("xfast: error: ") and f"[{code}]" in lines[0], err


def _write_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"tokens": [["a", "b"], ["c"]], "ner_tags": [["O", "B-ORG"], ["O"]]}), path)


def _broken_input(tmp_path: Path, kind: str, monkeypatch) -> Path:
    name, data, _ = BROKEN[kind]
    path = tmp_path / name
    if kind == "no-pyarrow":
        _write_parquet(path)
        for mod in ("pyarrow", "pyarrow.parquet"):
            monkeypatch.setitem(sys.modules, mod, None)  # import pyarrow now raises ImportError
    else:
        path.write_bytes(data)
    return path


def _pipeline_args(command: str, input: Path, out: Path, t: dict) -> list[str]:
    if command == "project":
        de = out.parent / "de.conll"
        de.write_text(GOOD, encoding="utf-8")
        return ["project", "--labeled", str(input), "--receiving", f"de={de}", "--out", str(out),
                "--aligner", str(t["xlmr"]), "--layer", "2", "--quiet"]
    models = {"translate-test": ["--lang", "de", "--translator", str(t["nllb_ct2"]), "--ner-model", str(t["ner_onnx"]),
                                 "--aligner", str(t["xlmr"]), "--layer", "2"],
              "translate-train": ["--lang", "de", "--translator", str(t["nllb_ct2"]), "--ner-model",
                                  str(t["ner_onnx"]), "--aligner", str(t["xlmr"]), "--layer", "2"],
              "model-transfer": ["--lang", "de", "--ner-model", str(t["ner_onnx"])]}[command]
    return [command, "--input", str(input), "--out", str(out), *models, "--quiet"]


CASES = [(c, k) for c in ("project", "translate-test", "translate-train", "model-transfer") for k in BROKEN
         if k != "plain-text" or c in ("project", "translate-train")]  # plain text is a valid test set


@pytest.mark.parametrize("command,kind", CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_a_failed_input_check_creates_nothing_and_the_fixed_rerun_works(tmp_path, command, kind, tiny_models,
                                                                       capsys, monkeypatch):
    out = tmp_path / "out"
    bad = _broken_input(tmp_path, kind, monkeypatch)
    code, err = _run(_pipeline_args(command, bad, out, tiny_models), capsys)
    assert code == 2
    _one_error(err, "E513" if (command, kind) == ("translate-train", "plain-text") else BROKEN[kind][2])
    if kind == "plain-text":
        assert f"the labeled side needs labels; {bad} was read as plain text" in err
    assert not out.exists()  # no OUT/.xfast-run/run.json to refuse the rerun with E521
    if kind != "bad-label":  # one fixed rerun per pipeline is enough
        return
    bad.write_text(GOOD, encoding="utf-8")
    code, err = _run(_pipeline_args(command, bad, out, tiny_models), capsys)
    assert code == 0, err
    assert not (out / ".xfast-run").exists() and (out / "manifest.json").is_file()


def test_project_refuses_parquet_output_without_pyarrow_before_anything(tmp_path, tiny_models, capsys, monkeypatch):
    en = tmp_path / "en.conll"
    en.write_text(GOOD, encoding="utf-8")
    for mod in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, mod, None)
    args = _pipeline_args("project", en, tmp_path / "out", tiny_models) + ["--output-format", "parquet"]
    code, err = _run(args, capsys)
    assert code == 2 and not (tmp_path / "out").exists()
    _one_error(err, "E204")


def test_a_garbage_file_reports_its_decoding_error_before_the_sentence_counts(tmp_path, capsys):
    good = tmp_path / "en.conll"
    good.write_text(GOOD, encoding="utf-8")
    garbage = tmp_path / "de.conll"
    garbage.write_bytes(b"\xff\xfe\x00g\x00a\x00r\n\n\n\nbage\xff\n\n\n")  # UTF-16 bytes, 4+ "sentences"
    for labeled, receiving in ((good, garbage), (garbage, good)):
        code, err = _run(["project", "--labeled", str(labeled), "--receiving", f"de={receiving}",
                          "--out", str(tmp_path / "out")], capsys)
        assert code == 2 and f"{garbage}:1: [E101]" in err and "E104" not in err


def test_a_labeled_side_read_as_plain_text_says_so(tmp_path, capsys):
    de = tmp_path / "de.conll"
    de.write_text(GOOD, encoding="utf-8")
    for name, text, why in [("en.txt", "Angela Merkel B_PER\nspoke\n", "line 1 does not ('Angela Merkel B_PER')"),
                            ("en.tok", "Angela Merkel\n", "a .tok file holds one sentence per line")]:
        labeled = tmp_path / name
        labeled.write_text(text, encoding="utf-8")
        code, err = _run(["project", "--labeled", str(labeled), "--receiving", f"de={de}",
                          "--out", str(tmp_path / "out")], capsys)
        assert code == 2
        _one_error(err, "E118")
        assert f"the labeled side needs labels; {labeled} was read as plain text" in err and why in err


# ------------------------------------------------------------------ names stay inside --out

BAD_NAMES = ["../evil", "de/../../x", "", ".hidden", "a b", "de/x", "x" * 101]


@pytest.mark.parametrize("name", BAD_NAMES, ids=["parent", "two-up", "empty", "dot", "space", "slash", "long"])
@pytest.mark.parametrize("option", ["--receiving", "--candidates"])
def test_a_name_that_is_not_plain_is_refused_before_anything(tmp_path, name, option, capsys, monkeypatch):
    import xfast.aligner
    import xfast.pipelines.parallel

    for owner in (xfast.aligner, xfast.pipelines.parallel):  # where it is defined, and where project makes one
        monkeypatch.setattr(owner, "Aligner", lambda *a, **k: pytest.fail("an aligner was made"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "de.conll").write_text(GOOD, encoding="utf-8")
    (work / "en.conll").write_text(GOOD, encoding="utf-8")
    monkeypatch.chdir(work)
    receiving = [f"{name}=de.conll"] if option == "--receiving" else ["de=de.conll"]
    extra = ["--candidates", f"{name}=de.conll", "--method", "ner-greedy"] if option == "--candidates" else []
    code, err = _run(["project", "--labeled", "en.conll", "--receiving", *receiving, *extra, "--out", "out"], capsys)
    assert code == 2
    _one_error(err, "E215")
    assert f"The '{option[2:]}' parameter" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["de.conll", "en.conll", "work"]  # nothing made anywhere


def test_the_python_api_checks_names_too(tmp_path):
    from xfast.pipelines.model_transfer import model_transfer
    from xfast.pipelines.parallel import project_parallel
    from xfast.pipelines.translate_test import translate_test
    from xfast.pipelines.translate_train import translate_train

    de = tmp_path / "de.conll"
    de.write_text(GOOD, encoding="utf-8")
    out = tmp_path / "out"
    calls = [
        lambda: project_parallel(de, {"../evil": de}, out),
        lambda: project_parallel(de, {"de": de}, out, methods=("ner-greedy",), candidates={"de": de, "": de}),
        lambda: translate_test(de, "../x", out),
        lambda: translate_train(de, ["de", "de/../../x"], out),
        lambda: model_transfer(de, "../x", out),
    ]
    for call in calls:
        with pytest.raises(ParameterError, match=r"\[E215\]"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["de.conll"]
    from xfast.pipelines.rundir import check_name

    for ok in ("de", "deu_Latn", "zh-Hans", "en.v2", "x" * 100):
        assert check_name("receiving", ok) == ok


@pytest.mark.parametrize("ratio", ["0", "1.5", "-0.2", "nan", "inf"])
def test_length_ratio_outside_zero_one_is_refused(tmp_path, ratio, capsys):
    de = tmp_path / "de.conll"
    de.write_text(GOOD, encoding="utf-8")
    code, err = _run(["project", "--labeled", str(de), "--receiving", f"de={de}", "--out", str(tmp_path / "o"),
                      "--length-ratio", ratio], capsys)
    assert code == 2 and not (tmp_path / "o").exists()
    _one_error(err, "E202")
    assert "'length_ratio'" in err and "(0, 1]" in err


def test_length_ratio_is_checked_by_the_python_api(tmp_path):
    from xfast.pipelines.parallel import project_parallel
    from xfast.project.config import ProjectionConfig
    from xfast.pipelines.translate_test import translate_test
    from xfast.pipelines.translate_train import translate_train

    de = tmp_path / "de.conll"
    de.write_text(GOOD, encoding="utf-8")
    for call in (lambda c: project_parallel(de, {"de": de}, tmp_path / "o", config=c),
                 lambda c: translate_test(de, "de", tmp_path / "o", config=c),
                 lambda c: translate_train(de, ["de"], tmp_path / "o", config=c)):
        for ratio in (0.0, 1.01, 7):
            with pytest.raises(ParameterError, match=r"\[E202\] The 'length_ratio'"):
                call(ProjectionConfig(length_ratio=ratio))
    assert ProjectionConfig(length_ratio=1).check().length_ratio == 1
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ project --limit, usage errors

def test_project_limit_runs_on_the_first_n_sentences(tmp_path, tiny_models, capsys):
    """Only the first N sentences are read and compared: a side that is longer or shorter
    further on is no error (the German side here ends after 9 sentences, in the second batch)."""
    from xfast.io import write_conll

    out = tmp_path / "out"
    de = tmp_path / "de.conll"
    write_conll(de, (s for _, s in zip(range(9), read_conll(EUROPARL / "de.conll"))))
    code, err = _run(["project", "--labeled", str(EUROPARL / "en.conll"), "--receiving", f"de={de}",
                      f"it={EUROPARL / 'it.conll'}", "--out", str(out), "--aligner", str(tiny_models["xlmr"]),
                      "--layer", "2", "--limit", "7", "--batch-size", "4", "--dataset", "europarl", "--json"], capsys)
    assert code == 0, err
    res = json.loads(capsys.readouterr().out)
    assert res["qa"]["sentences"]["in"] == 7 and {r["lang"] for r in res["results"]} == {"de", "it"}
    want = [s.tokens for _, s in zip(range(7), read_conll(EUROPARL / "it.conll"))]
    assert [s.tokens for s in read_conll(out / "it.heuristic.conll")] == want
    rows = (out / "metrics.csv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    assert all(r.split(",")[header.index("xfast_sentences")] == "7" for r in rows[1:])
    assert json.loads((out / "manifest.json").read_text())["limit"] == 7
    code, err = _run(["project", "--labeled", str(EUROPARL / "en.conll"), "--receiving", str(EUROPARL / "de.conll"),
                      "--out", str(tmp_path / "o2"), "--limit", "0"], capsys)
    assert code == 2 and not (tmp_path / "o2").exists()
    _one_error(err, "E202")


@pytest.mark.parametrize("argv,prog,extra", [
    (["project", "--labeled", "a", "--receiving", "b", "--out", "c", "--bogus"], "xfast project", "--bogus"),
    (["translate-test", "--input", "a", "--lang", "de", "--out", "c", "--nope", "1"], "xfast translate-test",
     "--nope 1"),
    (["models", "list", "--zzz"], "xfast models list", "--zzz"),
    (["--zzz"], "xfast", "--zzz"),
])
def test_unrecognized_arguments_name_the_subcommand(argv, prog, extra, capsys):
    code, err = _run(argv, capsys)
    assert code == 2
    assert err.strip() == f"xfast: error: {prog}: unrecognized arguments: {extra} (see {prog} --help)"


# ------------------------------------------------------------------ help: one readable default

def _subcommands(parser: argparse.ArgumentParser, prefix: str = "xfast"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                yield f"{prefix} {name}", sp
                yield from _subcommands(sp, f"{prefix} {name}")


def test_every_option_shows_one_readable_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # one line per option's help
    checked = 0
    for prog, sp in _subcommands(build_parser()):
        text = sp.format_help()
        for bad in ("(default: None)", "(default: )", "(default: [])", "(default: False)"):
            assert bad not in text, (prog, bad)
        formatter = sp._get_formatter()
        for action in sp._actions:
            if not action.option_strings or action.help is None:
                continue
            shown = formatter._expand_help(action)
            assert shown.count("default") <= 1, (prog, action.dest, shown)
            if action.required:
                assert "default" not in shown, (prog, action.dest, shown)
            checked += 1
    assert checked > 150
    demo = dict(_subcommands(build_parser()))["xfast demo"].format_help()
    assert "(default: auto)" in demo and "(default: all 799)" in demo


# ------------------------------------------------------------------ words, not section numbers

def test_no_docstring_cites_a_section_sign():
    hits = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "xfast").rglob("*") if p.suffix in (".py", ".pyi", ".pyx")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "\u00a7" in line]
    assert hits == []


# ------------------------------------------------------------------ progress

def test_progress_in_a_log_is_a_line_every_30_s_and_one_final_line(monkeypatch, capsys):
    from xfast import progress

    now = [0.0]
    monkeypatch.setattr(progress, "_clock", lambda: now[0])
    with progress.progress_bar("project", 2397, unit="pair") as bar:
        for _ in range(100):  # one update a second for 100 s
            now[0] += 1.0
            bar.update(10)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 4  # at 30, 60 and 90 s, and the final line
    assert lines[0] == "project: 300/2,397 pairs (13%), 10.0 pairs/s, 0:30, about 3:30 left"
    assert lines[-1] == "project: 1,000/2,397 pairs (42%), 10.0 pairs/s, 1:40"
    with progress.progress_bar("align", 5, unit="sent", enabled=False) as bar:
        bar.update(5)
    with pytest.raises(RuntimeError), progress.progress_bar("align", 5, unit="sent") as bar:
        raise RuntimeError  # the error says the rest: no final line
    assert capsys.readouterr().err == ""


def test_project_counts_pairs_and_prints_its_final_line_once(tmp_path, tiny_models, capsys):
    out = tmp_path / "out"
    code, err = _run(["project", "--labeled", str(EUROPARL / "en.conll"), "--receiving",
                      *(f"{lang}={EUROPARL / f'{lang}.conll'}" for lang in ("de", "es", "it")), "--out", str(out),
                      "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--limit", "20", "--batch-size", "8"],
                     capsys)
    assert code == 0, err
    assert "\r" not in err
    final = [ln for ln in err.splitlines() if ln.startswith("project: ")]
    assert len(final) == 1 and re.fullmatch(r"project: 60/60 pairs \(100%\), [\d,.]+ pairs/s, \d+:\d\d", final[0])


# ------------------------------------------------------------------ --quiet and notices

def test_quiet_turns_off_bars_that_transformers_shows_when_imported_already():
    from transformers.utils import logging as tf_logging

    from xfast.cli import _silenced

    tf_logging.enable_progress_bar()
    level = tf_logging.get_verbosity()
    with _silenced(True):
        assert not tf_logging.is_progress_bar_enabled()
        assert tf_logging.get_verbosity() == tf_logging.ERROR
        assert os.environ["XFAST_QUIET"] == "1"
    assert tf_logging.is_progress_bar_enabled() and tf_logging.get_verbosity() == level


def test_an_export_notice_names_the_model_not_its_hashed_folder(tmp_path, tiny_models, monkeypatch, capsys):
    import xfast.models.encoder as enc

    hashed = tmp_path / "d3b6f00dcafe4711"  # as xfast's own builds are filed
    shutil.copytree(tiny_models["xlmr"], hashed)
    monkeypatch.setattr(enc, "resolve", lambda model, **k: hashed if model == "e5-small" else Path(model))
    monkeypatch.setenv("XFAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("XFAST_QUIET", raising=False)
    enc.Encoder("e5-small", layer=2)
    err = capsys.readouterr().err
    assert "xfast: exporting e5-small cut after layer 2" in err and hashed.name not in err.split(" cut ")[0]


@pytest.mark.skipif(not (has_ray() and netns_ok()),
                    reason="needs ray[data] and a loopback-only network namespace (unshare -rn)")
def test_quiet_ray_run_prints_no_ray_log_lines(tmp_path, tiny_models):
    """Ray starts inside a network namespace that holds only loopback, as in tests/test_ray.py."""
    en = tmp_path / "en.conll"
    en.write_text(GOOD, encoding="utf-8")
    args = ["project", "--labeled", str(en), "--receiving", f"de={en}", "--out", str(tmp_path / "out"),
            "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--engine", "ray", "--quiet"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_BACKEND_LOG_LEVEL", None)
    r = subprocess.run(["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m",
                        "xfast", *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [f"2 sentences, 0 failed; outputs in {tmp_path / 'out'}"], r.stderr


# ------------------------------------------------------------------ the documents say it

def test_formats_lists_metrics_csv_and_the_readme_says_which_epyc():
    formats = (REPO / "docs" / "formats.md").read_text(encoding="utf-8")
    project = formats.split("### `xfast project`", 1)[1].split("\n### ", 1)[0]
    assert "| `metrics.csv` |" in project
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert re.search(r"\*\*EPYC\*\* \(AMD: the one measured has AVX2 only, no AVX-512 or VNNI.{0,120}"
                     r"have AVX-512 and VNNI", readme), "README's CPU notes must say which EPYC"


def test_demo_over_part_of_the_set_says_so_beside_the_paper(monkeypatch, capsys):
    from xfast.cli import demo

    qa = {"sentences": {"in": 50, "failed": 0}}
    rows = [{"lang": "de", "method": "heuristic", "overall_precision": 0.9, "overall_recall": 0.9, "overall_f1": 0.9,
             "paper_mbert_f1": 0.8}]
    monkeypatch.setattr(demo, "demo", lambda **k: {"results": rows, "timings": {"total": 1.0}, "qa": qa})
    assert demo.run_demo(limit=50) == 0
    assert "(50 of its 799 sentences: the paper's F1 is over all of them)" in capsys.readouterr().out
