"""`xfast bench-reference` against a small fake reference tree written here.

The fake has the reference repository's module paths and the names the harness calls, and is
written from scratch in plain Python from SPEC §2-§4, §9 (SimAlign delegated to simalign,
scores to seqeval); it shares no code with the GPL reference. It also imports, at its top, the
packages the real modules import but the measured code never calls (awesome_align, mlflow), so
the placeholders are exercised where those are not installed.

An optional test runs against a real checkout named by XFAST_REFERENCE (skipped otherwise).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from xfast.benchref import bench_reference
from xfast.benchref.reference import git_commit, open_reference
from xfast.benchref.stages import Inputs, parse_printed_scores, run_projection
from xfast.cli import main

pytest.importorskip("simalign")
pytest.importorskip("seqeval")
HAS_DATASETS = importlib.util.find_spec("datasets") is not None

_INIT = ["src", "src/data", "src/pipelines", "src/pipelines/align", "src/pipelines/candidates"]

FAKE = {
    "src/pipelines/transforms_base.py": '''
        import itertools


        class PipelineTransformBase:
            is_materialized = False
            is_blocking = False


        class CachedTransform(PipelineTransformBase):
            def __init__(self, cache):
                self.cache = cache

            def __call__(self, _input):
                return self.cache


        class MergeTransform(PipelineTransformBase):
            def __call__(self, sources):
                for rows in zip(*sources):
                    merged = dict(rows[0])
                    for other in rows[1:]:
                        merged.update(other)
                    yield merged
    ''',
    "src/pipelines/runners.py": '''
        import itertools
        from collections import namedtuple

        Transform = namedtuple("Transform", "name deps transform")


        class SingleThreadRunner:
            def init_pipeline(self, transforms):
                self.users = {t.name: sum(t.name in u.deps for u in transforms) for t in transforms}
                self.outputs = {t.name: [] for t in transforms}

            def get_inputs_for_step(self, transform):
                return [self.outputs[d].pop() for d in transform.deps]

            def run_step(self, transform, inputs):
                out = transform.transform(inputs)
                n = self.users[transform.name]
                if n <= 1:
                    self.outputs[transform.name].append(out)
                elif transform.transform.is_materialized:
                    self.outputs[transform.name] += [out] * n
                else:
                    self.outputs[transform.name] += list(itertools.tee(out, n))
    ''',
    "src/pipelines/align/matching.py": '''
        def match_entities_based_on_word_alignments(original_words, translated_words, entities, word_alignments,
                                                    length_ratio_threshold=0.8, merge_distance=1):
            """SPEC section 3 in compat mode, written for the test."""
            targets = {}
            for rec, lab in word_alignments:
                targets.setdefault(lab, []).append(rec)
            labels = ["O"] * len(original_words)
            for ent in entities:
                a, b, tag = ent["start_idx"], ent["end_idx"], ent["label"]
                if b > len(translated_words):
                    raise IndexError(b)
                spans = []
                for word in range(a, b):
                    for t in targets.get(word, ()):
                        hit = False
                        for span in spans:
                            if span[0] <= t < span[1]:
                                hit = True
                            elif t == span[1]:
                                span[1], hit = span[1] + 1, True
                            elif t == span[0] - 1:
                                span[0], hit = span[0] - 1, True
                        if not hit:
                            spans.append([t, t + 1])
                if merge_distance > 0 and spans:
                    ordered = sorted(spans, key=lambda s: s[0])
                    spans = [ordered[0]]
                    for span in ordered[1:]:
                        if span[0] - spans[-1][1] <= merge_distance:
                            spans[-1][1] = span[1]
                        else:
                            spans.append(span)
                for start, end in spans:
                    if (end - start) / (b - a) > length_ratio_threshold:
                        labels[start:end] = ["B-" + tag] + ["I-" + tag] * (end - start - 1)
            return labels
    ''',
    "src/pipelines/align/projection.py": '''
        from src.pipelines.align.matching import match_entities_based_on_word_alignments
        from src.pipelines.transforms_base import PipelineTransformBase


        class AlignedEntityProjectionTransform(PipelineTransformBase):
            def __init__(self, input_orig_words_key, input_trans_words_key, length_ratio_threshold, merge_distance=1):
                self.keys = input_orig_words_key, input_trans_words_key
                self.ratio, self.merge = length_ratio_threshold, merge_distance

            def __call__(self, rows):
                for row in rows:
                    orig, trans = row[self.keys[0]], row[self.keys[1]]
                    try:
                        row["labels"] = match_entities_based_on_word_alignments(
                            orig, trans, row["entities"], row["word_alignments"], self.ratio, self.merge)
                    except Exception:
                        row["labels"] = ["O"] * len(orig)
                    yield row
    ''',
    "src/pipelines/align/word_aligners.py": '''
        import awesome_align.modeling  # noqa: F401 - as the real module does; unused here
        import simalign

        from src.pipelines.transforms_base import PipelineTransformBase


        class SimAlignAligner:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

            def __enter__(self):
                self.aligner = simalign.SentenceAligner(**self.kwargs)
                return self

            def __exit__(self, *exc):
                self.aligner = None

            def align(self, src_words, tgt_words):
                return next(iter(self.aligner.get_word_aligns(src_words, tgt_words).values()))


        class WordAlignTransform(PipelineTransformBase):
            def __init__(self, word_aligner, input_orig_words_key, input_trans_words_key, batch_size=1):
                self.aligner, self.orig, self.trans = word_aligner, input_orig_words_key, input_trans_words_key

            def __call__(self, rows):
                with self.aligner:
                    for row in rows:
                        a, b = row[self.orig], row[self.trans]
                        row["word_alignments"] = self.aligner.align(a, b) if a and b else []
                        yield row
    ''',
    "src/pipelines/candidates/extractors.py": '''
        from src.pipelines.transforms_base import PipelineTransformBase


        class DummySubrangeExtractor:
            def __init__(self, min_words=1, max_words=None, stop_words=("!", "?")):
                self.min_words, self.max_words, self.stop = min_words, max_words, set(stop_words or ())

            def extract(self, words, src_entities=None, **kwargs):
                n = len(words)
                longest = self.max_words or n
                return [(s, e) for s in range(n) for e in range(s + self.min_words, min(s + longest, n) + 1)
                        if not self.stop.intersection(words[s:e])]


        class CandidateExtractionTransform(PipelineTransformBase):
            def __init__(self, extractor, input_words_key, batch_size=1):
                self.extractor, self.key = extractor, input_words_key

            def __call__(self, rows):
                for row in rows:
                    row["tgt_candidates"] = self.extractor.extract(row[self.key], row["entities"])
                    yield row
    ''',
    "src/pipelines/candidates/projection.py": '''
        import numpy as np
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import min_weight_full_bipartite_matching

        from src.pipelines.transforms_base import PipelineTransformBase


        def _scores(entities, candidates, pairs):
            out = np.zeros((len(entities), len(candidates)))
            for i, e in enumerate(entities):
                for j, (s, t) in enumerate(candidates):
                    k = sum(e["start_idx"] <= lab < e["end_idx"] and s <= rec < t for rec, lab in pairs)
                    if k:
                        out[i, j] = 2 * k / (e["end_idx"] - e["start_idx"] + t - s)
            return out


        def _write(labels, span, tag):
            labels[span[0]:span[1]] = ["B-" + tag] + ["I-" + tag] * (span[1] - span[0] - 1)


        class ArgmaxCandidatesMatchingProjectionTransform(PipelineTransformBase):
            def __init__(self, input_orig_words_key):
                self.key = input_orig_words_key

            def __call__(self, rows):
                for row in rows:
                    labels = ["O"] * len(row[self.key])
                    ents, cands = row["entities"], row["tgt_candidates"]
                    if ents and cands:
                        c = _scores(ents, cands, row["word_alignments"])
                        while c.max() > 0:
                            i, j = divmod(int(np.argmax(c)), c.shape[1])
                            _write(labels, cands[j], ents[i]["label"])
                            c[i] = 0
                            s, t = cands[j]
                            c[:, [k for k, (a, b) in enumerate(cands) if a < t and s < b]] = 0
                    row["labels"] = labels
                    yield row


        class BipartiteCandidatesMatchingProjectionTransform(PipelineTransformBase):
            def __init__(self, input_orig_words_key, filter_entities_with_zero_cost=True):
                self.key = input_orig_words_key

            def __call__(self, rows):
                for row in rows:
                    labels = ["O"] * len(row[self.key])
                    ents, cands = row["entities"], row["tgt_candidates"]
                    try:
                        c = _scores(ents, cands, row["word_alignments"])
                        keep = np.flatnonzero(c.any(axis=1))
                        r, k = min_weight_full_bipartite_matching(csr_matrix(c[keep]), maximize=True)
                        used = [False] * len(labels)
                        for i, j in zip(keep[r], k):
                            s, t = cands[j]
                            if not any(used[s:t]):
                                _write(labels, cands[j], ents[i]["label"])
                                used[s:t] = [True] * (t - s)
                    except Exception:
                        pass
                    row["labels"] = labels
                    yield row
    ''',
    "src/pipelines/eval.py": '''
        import mlflow  # noqa: F401 - as the real module does; unused with log_to_mlflow=False
        import numpy as np
        from seqeval.metrics import accuracy_score, classification_report

        from src.pipelines.transforms_base import PipelineTransformBase


        class EvaluateByCompareTransform(PipelineTransformBase):
            is_blocking = True

            def __init__(self, orig_label_key="ner_tags", gen_label_key="ner_tags", log_to_mlflow=True,
                         orig_split=None, labels_to_ignore=None):
                self.keys = orig_label_key, gen_label_key

            def __call__(self, datasets_pair):
                orig, gen = datasets_pair
                names = orig.features["ner_tags"].feature.names
                gold = [[names[i] for i in s] for s in orig[self.keys[0]]]
                pred = [[names[i] for i in s] for s in gen[self.keys[1]]]
                report = classification_report(gold, pred, output_dict=True)
                micro = report.pop("micro avg")
                out = {t: {"precision": np.float64(v["precision"]), "recall": np.float64(v["recall"]),
                           "f1": np.float64(v["f1-score"]), "number": np.int64(v["support"])}
                       for t, v in report.items() if not t.endswith(" avg")}
                out.update(overall_precision=np.float64(micro["precision"]), overall_recall=np.float64(micro["recall"]),
                           overall_f1=np.float64(micro["f1-score"]), overall_accuracy=accuracy_score(gold, pred))
                ratio = 0.0
                for g, p in zip(gold, pred):
                    ng, npred = sum(x.startswith("B-") for x in g), sum(x.startswith("B-") for x in p)
                    ratio += npred / ng if ng else float(npred == 0)
                out["proj_ratio"] = ratio / len(gold)
                print(out)
    ''',
    "src/pipelines/data.py": '''
        import json

        import datasets

        from src.pipelines.transforms_base import PipelineTransformBase


        class OpenArrow(PipelineTransformBase):
            is_materialized = True

            def __call__(self, path):
                return datasets.load_from_disk(path)


        class WriteGeneratedDataset(PipelineTransformBase):
            is_materialized = True
            is_blocking = True

            def __init__(self, out_path, label2id_path):
                self.out_path, self.label2id_path = out_path, label2id_path

            def __call__(self, rows):
                label2id = json.load(open(self.label2id_path))["label2id"]
                names = sorted(label2id, key=label2id.get)
                rows = list(rows)
                features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                              "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
                ds = datasets.Dataset.from_dict({"tokens": [r["tokens"] for r in rows],
                                                 "ner_tags": [[label2id.get(x, label2id["O"]) for x in r["labels"]]
                                                              for r in rows]}, features=features)
                ds.save_to_disk(self.out_path)
                return self.out_path
    ''',
    "src/data/load_europarl_ds.py": '''
        ID_TO_LABEL = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


        def tags_to_entity(row):
            """Entities of a tag-id row; an entity that a B- directly follows is lost (SPEC section 8)."""
            found, open_at, tag = [], None, None
            for k, tid in enumerate(list(row["ner_tags"]) + [0]):
                label = ID_TO_LABEL[tid]
                if label == "O" and open_at is not None:
                    found.append({"start_idx": open_at, "end_idx": k, "label": tag})
                    open_at = None
                elif label.startswith("B-"):
                    open_at, tag = k, label[2:]
            return {"entities": found}
    ''',
}


def write_fake(root: Path, **replace: str) -> Path:
    for pkg in _INIT:
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    for rel, text in {**FAKE, **replace}.items():
        (root / rel).write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture
def fake(tmp_path) -> Path:
    return write_fake(tmp_path / "reference")


@pytest.fixture
def mbert(tiny_models) -> str:
    return str(tiny_models["mbert"])


def rows_by_stage(result: dict) -> dict:
    return {r["stage"]: r for r in result["rows"]}


def test_every_stage_equal_on_the_fake_reference(fake, mbert, tmp_path):
    out = tmp_path / "out"
    result = bench_reference(fake, pairs=6, out=out, model=mbert, layer=2, methods=("itermax", "fwd", "rev"))
    rows = rows_by_stage(result)
    expected = {"align-itermax", "align-fwd", "align-rev", "heuristic", "ngram", "greedy", "bipartite"}
    if HAS_DATASETS:
        expected |= {"evaluation", "e2e-heuristic", "e2e-ngram-greedy"}
    else:
        assert {s["stage"] for s in result["skipped"]} == {"evaluation", "e2e"}
        assert all("'datasets'" in s["reason"] for s in result["skipped"])
    assert set(rows) == expected, result["skipped"]
    for row in rows.values():
        assert row["equal"] == row["total"], row
        assert row["reference_s"] >= 0 and row["xfast_s"] > 0
    assert rows["align-itermax"]["total"] == 6 and rows["align-itermax"]["items"] == "sentence pairs"
    assert rows["align-fwd"]["note"] == "simalign rev"
    if HAS_DATASETS:
        assert rows["evaluation"]["total"] > 10  # per-type and overall figures and proj_ratio
        for method in ("heuristic", "ngram-greedy"):
            row = rows[f"e2e-{method}"]
            assert row["files_identical"] is True
            assert row["reference_f1"] == row["xfast_f1"]
    # what was written is what was returned
    assert json.loads((out / "bench-reference.json").read_text()) == json.loads(json.dumps(result))
    with open(out / "bench-reference.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["stage"] for r in table] == [r["stage"] for r in result["rows"]]
    assert {"stage", "total", "equal", "reference_s", "xfast_s", "speedup"} <= set(table[0])
    assert result["reference"]["commit"] is None  # the fake has no .git
    assert result["machine"]["cpu"] and "simalign" in result["machine"]["packages"]
    notes = " ".join(result["reference"]["placeholders"])
    for package in ("awesome_align", "mlflow"):
        assert (package in notes) == (importlib.util.find_spec(package) is None)
    # nothing of the fake stays importable
    assert not [m for m in sys.modules if m == "src" or m.startswith("src.")]
    assert "awesome_align" not in sys.modules or importlib.util.find_spec("awesome_align") is not None
    assert str(fake) not in sys.path


def test_cli_json_is_the_written_json(fake, mbert, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["bench-reference", "--reference", str(fake), "--model", mbert, "--layer", "2", "--pairs", "5",
                 "--stages", "projection", "--out", str(out), "--json"])
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads(printed)
    assert result == json.loads((out / "bench-reference.json").read_text())
    assert [r["stage"] for r in result["rows"]] == ["heuristic", "ngram", "greedy", "bipartite"]
    assert all(set(r) >= {"stage", "total", "equal", "reference_s", "xfast_s", "speedup"} for r in result["rows"])
    assert result["reference"]["alignments_for_projection"].startswith("xfast.Aligner")


def test_table_names_the_cpu_and_the_reference(fake, mbert, tmp_path, capsys):
    code = main(["bench-reference", "--reference", str(fake), "--model", mbert, "--layer", "2", "--pairs", "3",
                 "--stages", "alignment", "--methods", "inter", "--out", str(tmp_path / "o"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "align-inter" in text and "3/3" in text and "CPU: " in text and str(fake) in text


def test_a_difference_is_counted_and_exits_1(tmp_path, mbert, capsys):
    # a reference whose heuristic never merges spans: the harness must see the difference
    no_merge = FAKE["src/pipelines/align/matching.py"].replace("if merge_distance > 0 and spans:", "if False:")
    ref = write_fake(tmp_path / "ref", **{"src/pipelines/align/matching.py": no_merge})
    aligned = [[(0, 0), (2, 1)]]  # receiving words 0 and 2 for labeled words 0 and 1: a gap to merge
    inputs = Inputs([["A", "B"]], [["a", "x", "b"]], [["B-PER", "I-PER"]], [["B-PER", "I-PER", "I-PER"]],
                    entities=[[{"start_idx": 0, "end_idx": 2, "label": "PER"}]], spans=[[(0, 2, "PER")]])
    with open_reference(ref) as loaded:
        rows, labels = run_projection(loaded, inputs, aligned, lambda _: None)
    assert (rows[0]["stage"], rows[0]["equal"], rows[0]["total"]) == ("heuristic", 0, 1)
    assert labels["heuristic"] == [["B-PER", "I-PER", "I-PER"]]
    # a reference that labels nothing: the command exits 1
    nothing = FAKE["src/pipelines/align/matching.py"].replace("    return labels", "    return ['O'] * len(labels)")
    ref = write_fake(tmp_path / "ref2", **{"src/pipelines/align/matching.py": nothing})
    code = main(["bench-reference", "--reference", str(ref), "--model", mbert, "--layer", "2", "--pairs", "12",
                 "--stages", "projection", "--out", str(tmp_path / "o"), "--json"])
    heuristic = json.loads(capsys.readouterr().out)["rows"][0]
    assert heuristic["equal"] < heuristic["total"] and code == 1


def test_a_missing_package_skips_only_its_stages(tmp_path, mbert):
    ref = write_fake(tmp_path / "ref", **{
        "src/pipelines/eval.py": "import xfast_no_such_package_for_tests\n",
        "src/pipelines/align/word_aligners.py": "import xfast_no_such_aligner_package\n"})
    result = bench_reference(ref, pairs=4, model=mbert, layer=2, stages=("alignment", "projection", "evaluation"))
    skipped = {s["stage"]: s["reason"] for s in result["skipped"]}
    assert set(skipped) == {"alignment", "evaluation"}
    assert "'xfast_no_such_aligner_package'" in skipped["alignment"]
    assert "'xfast_no_such_package_for_tests'" in skipped["evaluation"]
    assert [r["stage"] for r in result["rows"]] == ["heuristic", "ngram", "greedy", "bipartite"]
    assert all(r["equal"] == r["total"] == 4 for r in result["rows"])


@pytest.mark.parametrize("make, code", [
    (lambda p: p / "missing", "E130"),
    (lambda p: p, "E131"),  # a folder that is no checkout
])
def test_bad_reference_is_a_numbered_error(tmp_path, capsys, make, code):
    assert main(["bench-reference", "--reference", str(make(tmp_path)), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"[{code}]" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_bad_options_are_numbered_errors(fake, tmp_path, capsys):
    cases = [(["--data", str(tmp_path)], "E132"), (["--model", str(tmp_path)], "E133"),
             (["--evaluate-metrics", str(tmp_path)], "E134"), (["--pairs", "0"], "E202")]
    for extra, code in cases:
        assert main(["bench-reference", "--reference", str(fake), "--out", str(tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"[{code}]" in err and "Traceback" not in err, (extra, err)


def test_git_commit_from_a_folder_a_packed_ref_and_a_gitdir_file(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert git_commit(repo) is None
    (repo / ".git" / "packed-refs").write_text(f"# pack-refs\n{sha} refs/heads/main\n")
    assert git_commit(repo) == sha
    (repo / ".git" / "refs" / "heads" / "main").write_text(sha.replace("0", "f") + "\n")
    assert git_commit(repo) == sha.replace("0", "f")
    worktree = tmp_path / "wt"
    (repo / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (repo / ".git" / "worktrees" / "wt" / "HEAD").write_text(sha + "\n")
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {repo / '.git' / 'worktrees' / 'wt'}\n")
    assert git_commit(worktree) == sha
    assert git_commit(tmp_path) is None


def test_printed_scores_are_read_not_evaluated():
    text = ("loading...\n{'PER': {'precision': np.float64(0.5), 'recall': 1.0, 'f1': np.float64(0.6666666666666666), "
            "'number': np.int64(2)}, 'overall_f1': np.float64(0.6666666666666666), 'overall_accuracy': 0.75, "
            "'proj_ratio': -0.0}\n")
    assert parse_printed_scores(text) == {"PER_precision": 0.5, "PER_recall": 1.0, "PER_f1": 2 / 3, "PER_number": 2,
                                          "overall_f1": 2 / 3, "overall_accuracy": 0.75, "proj_ratio": 0.0}
    with pytest.raises(ValueError):
        parse_printed_scores("{'a': __import__('os').getcwd()}")
    with pytest.raises(ValueError):
        parse_printed_scores("nothing printed")


def test_another_src_package_is_put_back(fake, tmp_path):
    other = tmp_path / "other"
    (other / "src").mkdir(parents=True)
    (other / "src" / "__init__.py").write_text("MARK = 'other'\n")
    sys.path.insert(0, str(other))
    try:
        import src  # noqa: F401 - another project's `src`, already imported

        with open_reference(fake) as ref:
            assert ref.has("heuristic") and sys.modules["src"].__file__.startswith(str(fake))
        assert sys.modules["src"].MARK == "other"
    finally:
        sys.path.remove(str(other))
        for name in [m for m in sys.modules if m == "src" or m.startswith("src.")]:
            del sys.modules[name]


@pytest.mark.skipif(not os.environ.get("XFAST_REFERENCE"), reason="XFAST_REFERENCE names no checkout of the reference")
def test_the_real_reference(mbert, tmp_path):
    """Against a real checkout: every stage whose modules import gives equal outputs."""
    metrics = os.environ.get("XFAST_EVALUATE_METRICS")
    result = bench_reference(Path(os.environ["XFAST_REFERENCE"]), pairs=12, out=tmp_path / "o", model=mbert,
                             layer=2, methods=("itermax", "inter"), evaluate_metrics=metrics and Path(metrics))
    assert result["rows"], result["skipped"]
    for row in result["rows"]:
        assert row["equal"] == row["total"], row
        assert row.get("files_identical", True) is True, row
    assert not [s for s in result["skipped"] if s["reason"].startswith("failed:")], result["skipped"]
