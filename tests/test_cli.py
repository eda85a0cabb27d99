"""The command line: help, version, evaluate and its error exit code."""

import json
import subprocess
import sys

import pytest

from tests._pipeline_helpers import full_data, masakhaner_path
from xfast import __version__
from xfast.cli import main


def test_version_and_help(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2


@pytest.mark.parametrize("source, dates", [("stand-in", 8), pytest.param("full", 757, marks=pytest.mark.full_data)])
def test_evaluate_identity_prints_f1_one(capsys, source, dates):
    hau = str(masakhaner_path("hau") if source == "stand-in" else full_data("masakhaner2/hau.test.txt"))
    assert main(["evaluate", "--gold", hau, "--pred", hau, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall_f1"] == 1.0 and out["DATE_number"] == dates
    assert main(["evaluate", "--gold", hau, "--pred", hau, "--ignore", "DATE", "--json"]) == 0
    assert "DATE_f1" not in json.loads(capsys.readouterr().out)


def test_evaluate_bad_file_exits_2_with_file_line(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("a B-PER\nb\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "xfast", "evaluate", "--gold", str(bad), "--pred", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{bad}:2: [E102]" in r.stderr


def test_evaluate_length_mismatch_names_both(tmp_path, capsys):
    g = tmp_path / "g.conll"
    p = tmp_path / "p.conll"
    g.write_text("a O\nb O\n", encoding="utf-8")
    p.write_text("a O\n", encoding="utf-8")
    assert main(["evaluate", "--gold", str(g), "--pred", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:1:" in err and f"{g}:1" in err


ERROR_PATHS = [
    ["nonsense"],
    ["project"],
    ["project", "--labeled", "x", "--receiving", "y", "--out", "o", "--method", "teleport"],
    ["project", "--labeled", "x", "--receiving", "y", "--out", "o", "--batch-size", "many"],
    ["project", "--labeled", "/no/such.conll", "--receiving", "de=/no/such2.conll", "--out", "{tmp}/o"],
    ["evaluate", "--gold", "{bad}", "--pred", "{bad}"],
    ["evaluate", "--gold", "{good}", "--pred", "{short}"],
    ["demo", "--limit", "0"],
    ["demo", "--quantize", "int4"],
    ["model-transfer", "--input", "{bad}", "--lang", "hau", "--out", "{tmp}/o"],
    ["translate-test", "--input", "{good}", "--lang", "pcm", "--out", "{tmp}/o"],
    ["project", "--labeled", "{good}", "--receiving", "{good}", "--out", "{tmp}/o", "--method", "ner-greedy"],
    ["project", "--labeled", "{good}", "--receiving", "{good}", "--out", "{tmp}/o", "--shard-size", "7"],
    ["models", "export", "/no/such/dir", "--kind", "encoder"],
    ["serve", "--max-wait-ms", "0"],
    ["serve", "--methods", "ner-greedy"],
    ["serve", "--host", "192.0.2.1", "--port", "1"],
]


@pytest.mark.parametrize("args", ERROR_PATHS, ids=[" ".join(a[:2]) for a in ERROR_PATHS])
def test_every_error_path_is_one_line_and_exit_2(tmp_path, args, capsys):
    good, bad, short = tmp_path / "good.conll", tmp_path / "bad.conll", tmp_path / "short.conll"
    good.write_text("a\tO\nb\tB-PER\n\nc\tO\n", encoding="utf-8")
    bad.write_text("a\tO\nb\tWRONG\n", encoding="utf-8")
    short.write_text("a\tO\nb\tB-PER\n", encoding="utf-8")
    argv = [a.format(tmp=tmp_path, good=good, bad=bad, short=short) for a in args]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse stops there
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xfast: error: ") and "Traceback" not in err[0], err


def test_project_checks_its_inputs_before_loading_a_model(tmp_path, capsys, monkeypatch):
    """A missing input is reported at once: no model is built or loaded first."""
    import xfast.aligner
    import xfast.pipelines.parallel

    for owner in (xfast.aligner, xfast.pipelines.parallel):  # where it is defined, and where project makes one
        monkeypatch.setattr(owner, "Aligner", lambda *a, **k: pytest.fail("an aligner was made"))
    code = main(["project", "--labeled", str(tmp_path / "no.conll"), "--receiving", f"de={tmp_path / 'no2.conll'}",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "[E110]" in capsys.readouterr().err
