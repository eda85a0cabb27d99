"""The command line: help, version, evaluate and its error exit code."""

import json
import subprocess
import sys
from pathlib import Path

from xfast import __version__
from xfast.cli import main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_version_and_help(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2


def test_evaluate_identity_prints_f1_one(capsys):
    hau = str(DATA / "masakhaner2/hau.test.txt")
    assert main(["evaluate", "--gold", hau, "--pred", hau, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall_f1"] == 1.0 and out["DATE_number"] == 757
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
