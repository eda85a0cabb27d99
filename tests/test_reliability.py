"""Unwritable outputs, full disks, file permissions: one line and exit code 2, never a
traceback or a half-written file; a rerun once the problem is gone ends as an uninterrupted run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._pipeline_helpers import europarl_path, head_conll, masakhaner_path
from xfast.cli import main
from xfast.io import read_conll



@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    return (head_conll(europarl_path("en"), 150, d / "en.conll"),
            head_conll(europarl_path("de"), 150, d / "de.conll"))


def _args(pair, out, tiny_models):
    return ["project", "--labeled", str(pair[0]), "--receiving", f"de={pair[1]}", "--out", str(out),
            "--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--quiet", "--batch-size", "16",
            "--shard-size", "32", "--write-alignments"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def tmpfs(tmp_path):
    """A 24 KiB tmpfs (root only); yields its path and a function that resizes it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("needs root to mount a tmpfs")

    def remount(opts: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{opts}", str(mnt)], check=True)

    yield mnt, remount
    subprocess.run(["umount", str(mnt)], check=False)


def _files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.name != "run.json"}


def test_full_disk_stops_cleanly_and_a_rerun_completes_identically(tmp_path, pair, tiny_models, tmpfs, capsys):
    mnt, remount = tmpfs
    ref = tmp_path / "ref"
    assert main(_args(pair, ref, tiny_models)) == 0
    capsys.readouterr()
    out = mnt / "out"
    assert main(_args(pair, out, tiny_models)) == 2
    line = _error_line(capsys)
    assert "[E522]" in line and "No space left on device" in line and str(mnt) in line
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))  # no half-written file
    remount("size=4m")
    assert main(_args(pair, out, tiny_models)) == 0
    assert _files(out) == _files(ref)


def test_read_only_output_is_one_line_exit_2(tmp_path, pair, tiny_models, tmpfs, capsys):
    mnt, remount = tmpfs
    remount("ro")
    assert main(_args(pair, mnt / "out", tiny_models)) == 2
    line = _error_line(capsys)
    assert "[E522]" in line and "Read-only file system" in line


def test_out_naming_a_file_is_one_line_exit_2(tmp_path, pair, tiny_models, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(_args(pair, f, tiny_models)) == 2
    assert "exists and is not a folder" in _error_line(capsys)
    assert f.read_text() == "x"


def test_unreadable_input_is_one_line_exit_2(tmp_path, pair, tiny_models, capsys):
    args = _args(pair, tmp_path / "out", tiny_models)
    args[args.index("--labeled") + 1] = str(tmp_path)  # a folder without Parquet shards
    assert main(args) == 2
    line = _error_line(capsys)
    assert f"{tmp_path}: [E122] the folder holds no Parquet" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(tmp_path, pair, tiny_models, umask, mode):
    out = tmp_path / "out"
    code = f"import os, sys; os.umask({umask}); from xfast.cli import main; sys.exit(main({_args(pair, out, tiny_models)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert modes and set(modes.values()) == {mode}, modes


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_demo_refuses_a_limit_below_one(limit, capsys):
    assert main(["demo", "--limit", limit]) == 2
    line = _error_line(capsys)
    assert "[E202]" in line and "limit" in line


def test_empty_receiving_side_is_refused_before_any_output(tmp_path, pair, tiny_models, capsys):
    empty = tmp_path / "de.txt"
    empty.write_text("")
    args = _args(pair, tmp_path / "out", tiny_models)
    args[args.index("--receiving") + 1] = f"de={empty}"
    assert main(args) == 2
    assert "[E104]" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["translate-test", "translate-train", "model-transfer"])
def test_bad_input_leaves_no_output_folder(tmp_path, tiny_models, command, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("a\tO\nb\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [command, "--input", str(bad), "--lang", "hau", "--out", str(out)]
    if command != "model-transfer":
        args += ["--translator", str(tiny_models["nllb_ct2"]), "--aligner", str(tiny_models["xlmr"])]
    assert main(args + ["--ner-model", str(tiny_models["ner_onnx"]), "--quiet"]) == 2
    assert "bad.conll:2: [E102]" in _error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_pipelines_refuse_a_limit_below_one(tmp_path, tiny_models, limit, capsys):
    args = ["model-transfer", "--input", str(masakhaner_path("hau")), "--lang", "hau",
            "--out", str(tmp_path / "out"), "--ner-model", str(tiny_models["ner_onnx"]), "--limit", limit, "--quiet"]
    assert main(args) == 2
    assert "[E202]" in _error_line(capsys)


def test_translate_train_runs_the_languages_it_can_and_lists_the_rest(tmp_path, tiny_models, capsys):
    src = head_conll(europarl_path("en"), 4, tmp_path / "en.conll")
    out = tmp_path / "out"
    args = ["translate-train", "--input", str(src), "--lang", "hau", "bbj", "--out", str(out), "--translator",
            str(tiny_models["nllb_ct2"]), "--easyproject-translator", str(tiny_models["nllb_ct2"]),
            "--aligner", str(tiny_models["xlmr"]), "--mode", "plain", "--quiet", "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "skipping bbj" in captured.err and "running hau" in captured.err
    res = __import__("json").loads(captured.out)
    assert set(res["qa"]["skipped_languages"]) == {"bbj"} and "translation pipelines" in res["qa"]["skipped_languages"]["bbj"]
    assert {r["lang"] for r in res["results"]} == {"hau"}
    args[args.index("hau")] = "pcm"
    assert main(args) == 2
    assert "[E402]" in _error_line(capsys)


def test_model_transfer_warns_on_an_unknown_language(tmp_path, tiny_models, capsys):
    src = head_conll(masakhaner_path("hau"), 3, tmp_path / "hau.conll")
    args = ["model-transfer", "--input", str(src), "--lang", "xyz", "--out", str(tmp_path / "out"), "--ner-model",
            str(tiny_models["ner_onnx"]), "--quiet"]
    assert main(args) == 0
    assert "'xyz' is not a language code xfast knows" in capsys.readouterr().err


def test_evaluate_warns_when_tokens_differ(tmp_path, capsys):
    gold, pred = tmp_path / "g.conll", tmp_path / "p.conll"
    gold.write_text("a\tB-PER\nb\tO\n\nc\tO\n", encoding="utf-8")
    pred.write_text("a\tB-PER\nX\tO\n\nc\tO\n", encoding="utf-8")
    assert main(["evaluate", "--gold", str(gold), "--pred", str(pred)]) == 0
    captured = capsys.readouterr()
    assert f"1 tokens differ between gold and prediction (the first at {pred}:2)" in captured.err
    assert "above 1 when more are predicted" in captured.out


def test_dir_lists_the_public_names():
    import xfast

    assert {"Aligner", "__version__"} <= set(dir(xfast))


def test_qa_counts_after_the_label_set_with_stable_keys(tmp_path, pair, tiny_models):
    import json

    out = tmp_path / "out"
    args = _args(pair, out, tiny_models) + ["--label-set", "LOC", "PER", "--method", "heuristic", "ngram-greedy"]
    assert main(args) == 0
    qa = json.loads((out / "qa.json").read_text())
    ents = qa["entities"]["de/heuristic"]
    kinds = ("in", "out", "removed_by_label_set")
    types = {k.split(":")[0] for k in ents}
    assert {"LOC", "PER", "ORG", "MISC"} <= types and set(ents) == {f"{t}:{k}" for t in types for k in kinds}
    assert ents["ORG:out"] == ents["MISC:out"] == 0 and ents["ORG:removed_by_label_set"] > 0
    written = [lab for s in read_conll(out / "de.heuristic.conll") for lab in s.labels if lab.startswith("B-")]
    assert sum(ents[f"{t}:out"] for t in types) == len(written)
    assert set(qa["projection"]["de/heuristic"]) == {"sentences", "entities", "projected_entities", "spans",
                                                      "no_alignment", "dropped_length_ratio", "conflicts",
                                                      "failed_sentences"}


def test_model_transfer_reports_compat_truncation(tmp_path, tiny_models):
    import json

    from xfast.io import write_conll

    sents = list(read_conll(masakhaner_path("hau")))[:3]
    long_words = ([w for s in sents for w in s.tokens] * 20)[:400]
    path = tmp_path / "long.conll"
    write_conll(path, [(s.tokens, s.labels) for s in sents] + [(long_words, ["O"] * 400)])
    for compat, truncated in ((True, 1), (False, 0)):
        out = tmp_path / f"out{compat}"
        args = ["model-transfer", "--input", str(path), "--lang", "hau", "--out", str(out), "--ner-model",
                str(tiny_models["ner_onnx"]), "--quiet"] + (["--compat"] if compat else [])
        assert main(args) == 0
        qa = json.loads((out / "qa.json").read_text())
        assert qa["encoder"]["ner-receiving"]["truncated_sentences"] == truncated
        assert qa["encoder"]["ner-receiving"]["windowed_sentences"] == 1 - truncated


def test_quiet_silences_first_use_notices(tmp_path, pair, tiny_models):
    """With --quiet a first run (the aligner exported to ONNX now) prints only the result."""
    import shutil

    hf = tmp_path / "xlmr"
    shutil.copytree(tiny_models["xlmr"], hf)  # a fresh directory: its export is made in this run
    env = {k: v for k, v in os.environ.items() if k != "XFAST_QUIET"}
    env.update(XFAST_CACHE=str(tmp_path / "cache"), OMP_WAIT_POLICY="PASSIVE")
    args = _args(pair, tmp_path / "out", tiny_models)
    args[args.index("--aligner") + 1] = str(hf)
    loud = subprocess.run([sys.executable, "-m", "xfast", *[a for a in args if a != "--quiet"]], env=env,
                          capture_output=True, text=True)
    assert loud.returncode == 0 and "exporting" in loud.stderr
    shutil.rmtree(tmp_path / "cache")
    quiet = subprocess.run([sys.executable, "-m", "xfast", *args, "--overwrite"], env=env, capture_output=True,
                           text=True)
    assert quiet.returncode == 0
    assert quiet.stderr.strip().splitlines() == [f"150 sentences, 0 failed; outputs in {tmp_path / 'out'}"]


@pytest.mark.parametrize("command", ["project", "translate-test", "translate-train", "model-transfer", "demo",
                                     "evaluate", "serve"])
def test_every_option_has_help_and_every_command_an_example(command):
    from xfast.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    assert "example: xfast " + command in (sub.epilog or "")
    for action in sub._actions:
        if action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help text"


def test_models_export_never_deletes_a_folder_it_did_not_make(tmp_path, tiny_models, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "file.txt").write_text("keep me")
    for kind in ("tagger", "translator"):
        src = tiny_models["ner"] if kind == "tagger" else tiny_models["nllb"]
        assert main(["models", "export", str(src), "--kind", kind, "--out", str(out)]) == 2
        assert "[E414]" in _error_line(capsys)
        assert (out / "file.txt").read_text() == "keep me"


def test_an_empty_label_set_is_a_usage_error(tmp_path, pair, tiny_models, capsys):
    with pytest.raises(SystemExit) as stop:
        main(_args(pair, tmp_path / "out", tiny_models) + ["--label-set"])
    assert stop.value.code == 2 and "--label-set" in _error_line(capsys)


def test_device_cpu_keeps_onnx_runtime_on_the_cpu():
    from xfast.errors import ParameterError
    from xfast.pipelines.loaders import ModelOptions, Models

    assert Models(ModelOptions(device="cpu"))._providers() == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert Models(ModelOptions(device="cuda"))._providers()[0] == "CUDAExecutionProvider"
    else:  # asking for a GPU neither torch nor onnxruntime can use says how to install one
        with pytest.raises(ParameterError, match=r"E230.*no CUDA provider.*install a CUDA build of torch"):
            Models(ModelOptions(device="cuda"))._providers()


def test_the_registry_layer_is_the_default(tiny_models):
    from xfast.models.encoder import _default_layer

    assert _default_layer("xlmr-large", tiny_models["xlmr"] / "nowhere") == 16
    assert _default_layer("e5-small", tiny_models["xlmr"] / "nowhere") == 8
    assert _default_layer(str(tiny_models["xlmr_onnx"]), tiny_models["xlmr_onnx"]) == 8


def test_translate_pipelines_refuse_another_runs_outputs(tmp_path, tiny_models, capsys):
    src = head_conll(masakhaner_path("hau"), 6, tmp_path / "hau.conll")
    out = tmp_path / "out"

    def args(*extra):
        return ["translate-test", "--input", str(src), "--lang", "hau", "--out", str(out), "--translator",
                str(tiny_models["nllb_ct2"]), "--easyproject-translator", str(tiny_models["nllb_ct2"]),
                "--ner-model", str(tiny_models["ner_onnx"]), "--aligner", str(tiny_models["xlmr"]), "--quiet", *extra]

    assert main(args("--method", "heuristic", "ngram-greedy")) == 0
    assert main(args("--method", "heuristic", "ngram-greedy")) == 0  # the same run again: its own outputs
    capsys.readouterr()
    assert main(args("--method", "heuristic")) == 2
    assert "[E521]" in _error_line(capsys)
    assert main(args("--method", "heuristic", "--overwrite")) == 0
    names = {p.name for p in out.iterdir() if p.is_file()}
    assert "hau.src2tgt.itermax.heuristic.conll" in names and "hau.src2tgt.itermax.ngram-greedy.conll" not in names
    assert (out / "cache").is_dir() and not (out / ".xfast-run").exists()  # the stage cache stays
