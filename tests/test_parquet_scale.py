"""Parquet at scale: an input may be a folder or a glob of shards (Parquet files, the Hub's and
``to_parquet``'s layouts; a ``save_to_disk`` folder's Arrow files), read in order; an empty
sentence survives a round trip through ``xfast project``; ``--label-ids`` writes ``ner_tags`` as
``ClassLabel`` ids that ``datasets.load_dataset("parquet", ...)`` reads as a ``ClassLabel``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests._pipeline_helpers import CONLL_NAMES, europarl_path, hf_metadata
from xfast.errors import DataError, ParameterError
from xfast.io import read_conll
from xfast.io.readers import count_sentences, input_files, output_label_names, read_any, read_columns
from xfast.io.tokens import LabelTypes
from xfast.pipelines.manifest import file_sha256

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

NAMES = CONLL_NAMES


def _write(path, sents, *, ids: bool = False):
    """``sents``: (tokens, labels) pairs; labels as ids into NAMES (with the metadata) or strings."""
    tags = [[NAMES.index(t) for t in labs] if ids else labs for _, labs in sents]
    table = pa.table({"tokens": [t for t, _ in sents], "ner_tags": tags},
                     schema=pa.schema([("tokens", pa.list_(pa.string())),
                                       ("ner_tags", pa.list_(pa.int64() if ids else pa.string()))]))
    if ids:
        table = table.replace_schema_metadata(hf_metadata(NAMES))
    pq.write_table(table, path)
    return path


def _europarl(n: int, lang: str = "en") -> list[tuple[list[str], list[str]]]:
    return [(s.tokens, s.labels) for _, s in zip(range(n), read_conll(europarl_path(lang)))]


def _read(path) -> list[tuple[list[str], list[str] | None]]:
    return [(s.tokens, s.labels) for s in read_any(path)]


def test_a_folder_or_glob_of_shards_reads_in_order(tmp_path):
    """12 shards named part-1 .. part-12: read in numeric order (part-10 after part-9, not after
    part-1), the same sentences as one file; sentences are numbered by their row over all shards."""
    sents = _europarl(60)
    whole = _write(tmp_path / "whole.parquet", sents)
    shards = tmp_path / "shards"
    shards.mkdir()
    for k in range(12):
        _write(shards / f"part-{k + 1}.parquet", sents[5 * k:5 * k + 5], ids=k % 2 == 1)
    (shards / "README.md").write_text("not a shard", encoding="utf-8")
    assert [p.name for p in input_files(shards)][8:11] == ["part-9.parquet", "part-10.parquet", "part-11.parquet"]
    assert _read(shards) == _read(whole) == sents
    assert _read(tmp_path / "shards" / "part-*.parquet") == sents
    assert _read(tmp_path / "**" / "part-1?.parquet") == sents[45:]
    assert count_sentences(shards) == count_sentences(str(shards / "*.parquet")) == 60
    batches = list(read_columns(shards, chunk_size=7))
    assert [len(b) for b in batches] == [7] * 8 + [4]
    assert batches[1].lines.tolist() == list(range(8, 15)) and batches[1].path == str(shards)
    # the run key's input digest: the shards' contents in order, whichever way they are named
    assert file_sha256(shards) == file_sha256(shards / "part-*.parquet") != file_sha256(whole)
    assert file_sha256(whole) == file_sha256(str(whole))


def test_hugging_face_shards_and_save_to_disk_folders(tmp_path):
    """What ``datasets`` writes: ``to_parquet`` shards in the Hub's naming, and a
    ``save_to_disk`` folder (Arrow IPC streams listed in state.json), with a ClassLabel and
    empty rows: read as the sentences the dataset holds, in order."""
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NAMES))})
    sents = _europarl(40)
    sents[3] = ([], [])
    sents[39] = ([], [])
    ds = datasets.Dataset.from_dict({"tokens": [t for t, _ in sents],
                                     "ner_tags": [[NAMES.index(x) for x in labs] for _, labs in sents]}, features=feats)
    hub = tmp_path / "data"
    hub.mkdir()
    for i in range(3):
        ds.shard(num_shards=3, index=i, contiguous=True).to_parquet(str(hub / f"train-{i:05d}-of-00003.parquet"))
    saved = tmp_path / "saved"
    ds.save_to_disk(str(saved), num_shards=4)
    assert sorted(p.suffix for p in saved.iterdir()) == [".arrow"] * 4 + [".json"] * 2
    assert _read(hub) == _read(tmp_path / "data" / "train-*.parquet") == _read(saved) == sents
    assert count_sentences(saved) == count_sentences(hub) == 40
    assert [p.name for p in input_files(saved)] == [f"data-0000{i}-of-00004.arrow" for i in range(4)]
    assert output_label_names(saved) == output_label_names(hub) == NAMES
    one = next(saved.glob("data-00002-*.arrow"))
    assert _read(one) == sents[20:30]  # one Arrow file by its name
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"E123.*DatasetDict folder \(splits: train, test\).*dd/train"):
        count_sentences(tmp_path / "dd")


def test_bad_sharded_inputs_name_the_file_row_and_problem(tmp_path):
    sents = _europarl(6)
    with pytest.raises(DataError, match=r"nothing-\*\.parquet: \[E121\] no file matches this pattern"):
        count_sentences(tmp_path / "nothing-*.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: \[E122\]"):
        count_sentences(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _write(mixed / "a.parquet", sents)
    (mixed / "b.arrow").write_bytes(b"")
    with pytest.raises(DataError, match=r"\[E124\].*\.arrow, \.parquet"):
        count_sentences(mixed)
    (tmp_path / "x.conll").write_text("a\tO\n", encoding="utf-8")
    _write(tmp_path / "y.parquet", sents)
    with pytest.raises(DataError, match=r"\[E124\].*\.conll, \.parquet"):
        count_sentences(tmp_path / "[xy].*")  # a glob is shards of one form
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    with pytest.raises(DataError, match=r"state.json: \[E125\] .*data-00000-of-00001.arrow, which is not in"):
        count_sentences(saved)
    (saved / "data-00000-of-00001.arrow").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"data-00000-of-00001.arrow: \[E120\] Arrow: not a readable Arrow IPC"):
        count_sentences(saved)
    # a row error names the shard and the row in it; a shard without the labels the first has
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad / "s1.parquet", sents[:3])
    _write(bad / "s2.parquet", sents[3:5] + [(["x", "y"], ["O"])])
    with pytest.raises(DataError, match=r"s2.parquet:3: \[E112\] Parquet: 2 tokens but 1 ner_tags"):
        list(read_columns(bad))
    pq.write_table(pa.table({"tokens": [["a"]]}), bad / "s2.parquet")
    with pytest.raises(DataError, match=r"s2.parquet: \[E112\] .*no 'ner_tags' column, which the first shard"):
        list(read_columns(bad))
    assert [c.sentences() for c in read_columns(bad, labels=False)] == [[t for t, _ in sents[:3]] + [["a"]]]


def _project(labeled, receiving, out, *extra):
    return subprocess.run([sys.executable, "-m", "xfast", "project", "--labeled", str(labeled), "--receiving",
                           f"de={receiving}", "--out", str(out), "--method", "heuristic", "ngram-greedy",
                           "--batch-size", "8", "--shard-size", "16", "--quiet", *extra],
                          capture_output=True, text=True, timeout=600)


def test_a_cli_error_for_a_sharded_input_is_one_line(tmp_path):
    got = _project(tmp_path / "shards" / "*.parquet", tmp_path / "de.parquet", tmp_path / "out")
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert got.stderr.startswith("xfast: error: ") and "[E121] no file matches this pattern" in got.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def empty_rows(tmp_path_factory):
    """40 English/German pairs with empty sentences (rows 4 and 40 on both sides, and one more
    labeled-only pair emptied on the receiving side), as Parquet shards: English as a folder of
    ids with a ClassLabel, German as one file of strings."""
    d = tmp_path_factory.mktemp("empty")
    en, de = _europarl(40, "en"), _europarl(40, "de")
    for i in (3, 39):
        en[i] = de[i] = ([], [])
    de[10] = ([], [])
    (d / "en").mkdir()
    for k in range(4):
        _write(d / "en" / f"en-{k:05d}.parquet", en[10 * k:10 * k + 10], ids=True)
    _write(d / "de.parquet", de)
    return {"dir": d, "en": d / "en", "de": d / "de.parquet", "en_rows": en, "de_rows": de}


def test_empty_sentences_round_trip_through_project(tmp_path, empty_rows, tiny_models):
    """Rows with no tokens go through projection as empty sentences and come out as empty rows
    (``tokens: []``) that xfast reads back, as input to another run too (they used to be refused
    with [E112] 'row has no tokens')."""
    from xfast.aligner import Aligner
    from xfast.pipelines.parallel import project_parallel

    aligner = Aligner(tiny_models["xlmr"], layer=2)
    kw = dict(aligner=aligner, methods=("heuristic",), batch_size=8, shard_size=16, progress=False,
              output_format="parquet")
    res = project_parallel(empty_rows["en"], {"de": empty_rows["de"]}, tmp_path / "a", **kw)
    assert res["qa"]["sentences"]["in"] == 40 and res["qa"]["sentences"]["failed"] == 0
    out = tmp_path / "a" / "de.heuristic.parquet"
    got = pq.read_table(out).to_pylist()
    assert [r["tokens"] for r in got] == [t for t, _ in empty_rows["de_rows"]]
    assert [i for i, r in enumerate(got) if not r["tokens"]] == [3, 10, 39]
    assert [r["ner_tags"] for r in got][3] == [] and len(_read(out)) == 40
    again = project_parallel(out, {"de": empty_rows["de"]}, tmp_path / "b", **kw)  # its own output as input
    assert again["qa"]["sentences"]["in"] == 40
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["inputs"][str(empty_rows["en"])] == \
        file_sha256(empty_rows["en"])


def test_label_ids_give_a_classlabel_feature(tmp_path, empty_rows, tiny_models):
    """--label-ids: ner_tags as ids into the labeled input's own ClassLabel names (its ids kept),
    named in the file's Hugging Face metadata, so datasets reads a ClassLabel; the labels are
    those of the same run's string output. A CoNLL labeled side gives O then B-/I- of its
    types, sorted. Without --output-format parquet it is a usage error before anything is made."""
    datasets = pytest.importorskip("datasets")
    model = ["--aligner", str(tiny_models["xlmr"]), "--layer", "2", "--output-format", "parquet"]
    strings = _project(empty_rows["en"], empty_rows["dir"] / "de.parquet", tmp_path / "s", *model)
    assert strings.returncode == 0, strings.stderr[-2000:]
    ids = _project(empty_rows["en"], empty_rows["dir"] / "de.parquet", tmp_path / "i", *model, "--label-ids")
    assert ids.returncode == 0, ids.stderr[-2000:]
    for m in ("heuristic", "ngram-greedy"):
        path = tmp_path / "i" / f"de.{m}.parquet"
        loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
        feature = loaded.features["ner_tags"]
        label = getattr(feature, "feature", None)
        assert isinstance(label, datasets.ClassLabel) and label.names == NAMES
        want = pq.read_table(tmp_path / "s" / f"de.{m}.parquet").to_pylist()
        assert [[label.int2str(t) for t in r] for r in loaded["ner_tags"]] == [r["ner_tags"] for r in want]
        assert loaded["tokens"] == [r["tokens"] for r in want]
        assert _read(path) == [(r["tokens"], r["ner_tags"]) for r in want]  # xfast reads its ids back
    manifest = json.loads((tmp_path / "i" / "manifest.json").read_text())
    assert manifest["label_ids"] == NAMES and manifest["run_key"] != json.loads(
        (tmp_path / "s" / "manifest.json").read_text())["run_key"]
    conll = tmp_path / "en.conll"
    conll.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(*s)) + "\n" for s in _europarl(12)),
                     encoding="utf-8")
    types = sorted({t[2:] for _, labs in _europarl(12) for t in labs if t != "O"})
    assert output_label_names(conll) == ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    plain = _project(empty_rows["en"], empty_rows["dir"] / "de.parquet", tmp_path / "c", "--aligner",
                     str(tiny_models["xlmr"]), "--layer", "2", "--label-ids")
    assert plain.returncode == 2 and "[E202] The 'label_ids' parameter must be used with output_format='parquet'" \
        in plain.stderr and not (tmp_path / "c").exists()


def test_label_ids_names_complete_a_partial_classlabel(tmp_path):
    """A ClassLabel that lacks a B-/I- name of one of its types (IOB1 data) gets it appended,
    after the dataset's own names, which keep their ids."""
    names = ["O", "I-PER", "B-LOC", "I-LOC"]
    table = pa.table({"tokens": [["a"]], "ner_tags": [[1]]}).replace_schema_metadata(hf_metadata(names))
    pq.write_table(table, tmp_path / "x.parquet")
    assert output_label_names(tmp_path / "x.parquet") == names + ["B-PER"]
    from xfast.io.parquet import parquet_bytes

    types = LabelTypes(["PER"])
    cols = next(read_columns(tmp_path / "x.parquet", types=types))
    with pytest.raises(ValueError, match="not among the ClassLabel names"):
        parquet_bytes(cols, cols.codes, types, names=["O"])
    with pytest.raises(ParameterError):
        from xfast.pipelines.parallel import project_parallel

        project_parallel(tmp_path / "x.parquet", {"de": tmp_path / "x.parquet"}, tmp_path / "o", label_ids=True)
