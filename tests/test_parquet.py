"""Parquet in the Hugging Face datasets layout: read like CoNLL (string tags, or ids named by
the file's metadata), bad files refused with the file, row and problem, and ``xfast project``
with Parquet in and out giving the labels it gives with CoNLL."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._pipeline_helpers import CONLL_NAMES, europarl_path, hf_metadata, head_conll
from xfast.errors import DataError
from xfast.io import read_conll
from xfast.io.conll import to_iob2
from xfast.io.columns import LabelTypes, conll_bytes, count_sentences, read_columns

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

NAMES = CONLL_NAMES


def _write(path, tokens, tags=None, *, names=None):
    cols = {"tokens": tokens}
    if tags is not None:
        cols["ner_tags"] = tags
    table = pa.table(cols)
    if names is not None:
        table = table.replace_schema_metadata(hf_metadata(names))
    pq.write_table(table, path)
    return path


def _conll_text(path, chunk=3) -> bytes:
    types = LabelTypes()
    return b"".join(conll_bytes(c, c.codes, types) for c in read_columns(path, chunk_size=chunk, types=types))


words = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp")), min_size=1, max_size=6)
labels = st.sampled_from(NAMES)


@settings(max_examples=40, deadline=None)
@given(sents=st.lists(st.lists(st.tuples(words, labels), min_size=1, max_size=8), min_size=1, max_size=12),
       as_ids=st.booleans(), chunk=st.integers(1, 5))
def test_parquet_reads_as_the_same_conll(tmp_path_factory, sents, as_ids, chunk):
    d = tmp_path_factory.mktemp("pq")
    tokens = [[w for w, _ in s] for s in sents]
    tags = [[NAMES.index(t) if as_ids else t for _, t in s] for s in sents]
    path = _write(d / "x.parquet", tokens, tags, names=NAMES if as_ids else None)
    assert count_sentences(path) == len(sents)
    # read as IOB2, as the CoNLL reader reads (an I-X that starts an entity becomes B-X)
    want = "".join("".join(f"{w}\t{t}\n" for w, t in zip((w for w, _ in s), to_iob2([t for _, t in s])))
                   + "\n" for s in sents).encode()
    assert _conll_text(path, chunk) == want


@pytest.mark.parametrize("tokens, tags, names, problem", [
    ([["a"]], None, None, None),  # fine: no tags, read as unlabeled
    ([["a", "b"]], [["O"]], None, "2 tokens but 1 ner_tags"),
    ([["a"]], [[1]], None, "ner_tags are ids but the file's metadata names no labels"),
    ([["a"]], [[7]], ["O", "B-X"], "tag id 7 is outside the 2 label names"),
    ([["a"]], [["PER"]], None, "tag 'PER' is not IOB2"),
    ([["a"], []], [["O"], []], None, None),  # fine: an empty sentence, as xfast writes one
    (["ab"], None, None, "tokens must be a list of strings"),
    ([["a"]], ["O"], None, "ner_tags must be a list"),
])
def test_bad_parquet_names_file_row_and_problem(tmp_path, tokens, tags, names, problem):
    path = _write(tmp_path / "x.parquet", tokens, tags, names=names)
    if problem is None:
        assert [c.sentences() for c in read_columns(path)] == [tokens]
        return
    with pytest.raises(DataError) as err:
        list(read_columns(path))
    text = str(err.value)
    assert "[E112]" in text and problem in text and str(path) in text
    assert f":{len(tokens)}:" in text or ":1:" in text  # the row, counted from 1


def test_parquet_without_tokens_or_not_parquet(tmp_path):
    pq.write_table(pa.table({"words": [["a"]]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"E112.*no 'tokens' column"):
        list(read_columns(tmp_path / "x.parquet"))
    (tmp_path / "y.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"E112.*not a readable Parquet file"):
        count_sentences(tmp_path / "y.parquet")
    with pytest.raises(DataError, match="E110"):
        count_sentences(tmp_path / "nope.parquet")


def test_project_with_parquet_in_and_out_equals_conll(tmp_path, tiny_models):
    from xfast.aligner import Aligner
    from xfast.pipelines.parallel import project_parallel

    en = head_conll(europarl_path("en"), 30, tmp_path / "en.conll")
    de = head_conll(europarl_path("de"), 30, tmp_path / "de.conll")
    en_s, de_s = list(read_conll(en)), list(read_conll(de))
    names = sorted({lab for s in en_s for lab in s.labels} | {"O"})
    en_pq = _write(tmp_path / "en.parquet", [s.tokens for s in en_s], [[names.index(t) for t in s.labels]
                                                                        for s in en_s], names=names)
    de_pq = _write(tmp_path / "de.parquet", [s.tokens for s in de_s], [s.labels for s in de_s])
    aligner = Aligner(tiny_models["xlmr"], layer=2)
    methods = ("heuristic", "ngram-greedy")
    kw = dict(aligner=aligner, methods=methods, batch_size=8, shard_size=16, progress=False)
    a = project_parallel(en, {"de": de}, tmp_path / "conll", **kw)
    b = project_parallel(en_pq, {"de": de_pq}, tmp_path / "pq", output_format="parquet", **kw)
    assert a["results"] == b["results"] and a["qa"] == b["qa"]
    for m in methods:
        got = pq.read_table(tmp_path / "pq" / f"de.{m}.parquet")
        assert got.schema.names == ["tokens", "ner_tags"] and got.num_rows == 30
        want = list(read_conll(tmp_path / "conll" / f"de.{m}.conll"))
        assert got.column("tokens").to_pylist() == [s.tokens for s in want]
        assert got.column("ner_tags").to_pylist() == [s.labels for s in want]
