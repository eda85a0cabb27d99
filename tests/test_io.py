"""Readers and writers: streaming, IOB1 -> IOB2, empty sentences, and file:line errors."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._pipeline_helpers import europarl_path, full_data
from xfast.errors import DataError
from xfast.io import (Sentence, entities_of, format_pharaoh, labels_of, parse_pharaoh, read_conll,
                      read_jsonl, read_parallel, read_pharaoh, read_text, to_iob2, write_conll,
                      write_jsonl, write_pharaoh)


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_real_files_counts():
    for lang in "en de es it".split():
        sents = list(read_conll(europarl_path(lang)))
        assert len(sents) == 799 and all(len(s) > 0 for s in sents)


@pytest.mark.full_data
def test_full_masakhaner_count():
    assert len(list(read_conll(full_data("masakhaner2/hau.test.txt")))) == 1633


def test_tab_space_docstart_and_iob1(tmp_path):
    p = write(tmp_path, "a.conll",
              "-DOCSTART- -X- O O\n\nJohn NNP I-PER\nSmith NNP I-PER\nvisited VB O\nBonn NNP I-LOC\n\n"
              "New NNP I-ORG\nYork NNP I-LOC\n")
    s = list(read_conll(p))
    assert [x.tokens for x in s] == [["John", "Smith", "visited", "Bonn"], ["New", "York"]]
    assert s[0].labels == ["B-PER", "I-PER", "O", "B-LOC"]
    assert s[1].labels == ["B-ORG", "B-LOC"]
    assert s[0].line == 3 and s[1].line == 8
    t = write(tmp_path, "t.conll", "New York\tB-LOC\nis\tO\n")
    assert [(x.tokens, x.labels) for x in read_conll(t)] == [(["New York", "is"], ["B-LOC", "O"])]


def test_empty_sentences_kept_and_round_trip(tmp_path):
    sents = [Sentence([], []), Sentence(["a"], ["B-PER"]), Sentence([], []), Sentence([], []),
             Sentence(["b", "c"], ["O", "B-LOC"]), Sentence([], [])]
    p = tmp_path / "e.conll"
    assert write_conll(p, sents) == 6
    back = list(read_conll(p))
    assert [(x.tokens, x.labels) for x in back] == [(x.tokens, x.labels) for x in sents]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.text("abcé,.!", min_size=1, max_size=4),
                                   st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"])), max_size=6),
                max_size=6))
def test_conll_and_jsonl_round_trip(tmp_path_factory, sents):
    d = tmp_path_factory.mktemp("rt")
    ss = [Sentence([t for t, _ in s], to_iob2([lab for _, lab in s])) for s in sents]
    write_conll(d / "x.conll", ss)
    write_jsonl(d / "x.jsonl", ss)
    for back in (list(read_conll(d / "x.conll")), list(read_jsonl(d / "x.jsonl"))):
        assert [(x.tokens, x.labels) for x in back] == [(x.tokens, x.labels) for x in ss]


@pytest.mark.parametrize("text,line,code", [
    ("a\tO\nb\n", 2, "E102"),
    ("a\tO\nb\tX-PER\n", 2, "E103"),
    ("a\tNN\tO\nb\tO\n", 2, "E109"),
    ("a\tO\n\nb\tB-\n", 3, "E103"),
])
def test_malformed_lines_name_file_and_line(tmp_path, text, line, code):
    p = write(tmp_path, "bad.conll", text)
    with pytest.raises(DataError) as err:
        list(read_conll(p))
    assert err.value.path == str(p) and err.value.line == line
    assert f"{p}:{line}: [{code}]" in str(err.value)


def test_encoding_error_names_line(tmp_path):
    p = write(tmp_path, "enc.conll", b"a\tO\n\xff\xfe\tO\n", mode="wb")
    with pytest.raises(DataError, match=r"enc.conll:2: \[E101\]"):
        list(read_conll(p))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="E110"):
        list(read_conll(tmp_path / "nope.conll"))


def test_parallel_count_mismatch_names_both(tmp_path):
    a = write(tmp_path, "a.conll", "x\tO\n\ny\tO\n\nz\tO\n")
    b = write(tmp_path, "b.txt", "x\ny\n")
    with pytest.raises(DataError) as err:
        list(read_parallel([a, b], labels=[True, False]))
    assert str(a) in str(err.value) and str(b) in str(err.value)
    assert "has 3" in str(err.value) and "has 2" in str(err.value)


def test_plain_text_and_jsonl_ids(tmp_path):
    p = write(tmp_path, "t.txt", "Hallo Welt\n\nGuten Tag .\n")
    assert [s.tokens for s in read_text(p)] == [["Hallo", "Welt"], [], ["Guten", "Tag", "."]]
    j = write(tmp_path, "d.jsonl", '{"tokens": ["A", "B"], "ner_tags": [1, 2]}\n')
    s = next(read_jsonl(j, label_names=["O", "B-PER", "I-PER"]))
    assert s.labels == ["B-PER", "I-PER"]
    with pytest.raises(DataError, match=r"d.jsonl:1: \[E106\]"):
        list(read_jsonl(j))
    bad = write(tmp_path, "bad.jsonl", '{"tokens": ["A"], "ner_tags": ["O"]}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: \[E105\]"):
        list(read_jsonl(bad))


def test_pharaoh_both_directions_and_scores(tmp_path):
    pairs, scores = parse_pharaoh("0-1 2-0")
    assert pairs.tolist() == [[0, 1], [2, 0]] and scores is None
    assert parse_pharaoh("0-1 2-0", swap=True)[0].tolist() == [[1, 0], [0, 2]]
    assert format_pharaoh([[1, 0], [0, 2]], swap=True) == "0-1 2-0"
    line = format_pharaoh([[0, 1]], [0.91234])
    assert line == "0-1:0.9123"
    assert parse_pharaoh(line)[1].tolist() == pytest.approx([0.9123])
    p = tmp_path / "a.txt"
    write_pharaoh(p, [np.array([[0, 0], [1, 2]]), np.zeros((0, 2))])
    back = list(read_pharaoh(p))
    assert back[0].tolist() == [[0, 0], [1, 2]] and back[1].shape == (0, 2)
    bad = write(tmp_path, "bad.txt", "0-0 1_2\n")
    with pytest.raises(DataError, match=r"bad.txt:1: \[E107\]"):
        list(read_pharaoh(bad))


def test_entities_labels_round_trip():
    labs = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]
    ents = entities_of(labs)
    assert ents == [(0, 2, "PER"), (3, 4, "LOC"), (4, 5, "LOC"), (5, 6, "ORG")]
    assert labels_of(ents, 6) == to_iob2(labs)
