"""Every reader against an independent oracle on random bytes (10,000 cases per reader and run):
the sentences the oracle reads, or its numbered error at the same line; never another
exception. Bytes mix what breaks readers: BOM, CRLF and lone CR, NUL, non-breaking and other
Unicode spaces inside tokens, bad UTF-8, very long lines, tabs mixed with spaces."""

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.oracles import readers_oracle as oracle
from xfast.errors import DataError
from xfast.io import read_conll, read_jsonl, read_pharaoh, read_text

N = int(__import__("os").environ.get("XFAST_FUZZ_N", "10000"))
SETTINGS = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck))

COMMON = [b"\n", b"\n", b"\r\n", b"\r", b"\t", b" ", b"\x00", b"\xef\xbb\xbf", b"\xc2\xa0", b"\xe2\x80\x83",
          b"\xe3\x80\x80", b"\xc2\x85", b"\x0b", b"\x1c", b"\xe2\x80\x8b", b"\xff", b"\xc3", b"\xe2\x82",
          b"\xc3\xa9", b"a", b"Bonn", b"x" * 3000]
CONLL = COMMON + [b"O", b"B-PER", b"I-PER", b"I-LOC", b"B-", b"X", b"-DOCSTART-", b"-DOCSTART-x", b" O\n",
                  b"\tB-LOC\n", b"\n\n"]
JSONL = COMMON + [b'{"tokens": ["a", "b"], "ner_tags": ["O", "B-PER"]}', b'{"tokens": ["a"], "ner_tags": [1]}',
                  b'{"tokens": ["a"], "ner_tags": [7]}', b'{"tokens": [], "ner_tags": []}', b'{"tokens": "a"}',
                  b'{"tokens": ["a"], "ner_tags": ["I-X"]}', b'{"tokens": ["a"], "ner_tags": ["Q"]}', b"[",
                  b"{", b"}", b'"', b",", b"[" * 50 + b"]" * 50, b"[" * 100_000, b"null", b'{"tokens": ["a"], "ner_tags": [true]}']
PHARAOH = COMMON + [b"0-1", b"12-3", b"1-2:0.5", b"1-2:", b"1-2:x", b"-", b"1-", b"-2", b"\xc2\xb2-1",
                    b"\xd9\xa3-1", b"99999999999-1", b"3-4:nan", b"0-0:1e400", b"5"]


def _blobs(pieces):
    return st.lists(st.sampled_from(pieces), max_size=40).map(b"".join)


_TMP = Path(tempfile.mkdtemp(prefix="xfast-fuzz-"))


def _file(data: bytes, suffix: str) -> Path:
    path = _TMP / f"case{suffix}"
    path.write_bytes(data)
    return path


def _xfast(read, path):
    out = []
    try:
        for s in read(path):
            out.append(s)
    except DataError as err:
        code = re.search(r"\[(E\d+)\]", str(err)).group(1)
        return out, (code, err.line)
    return out, None


def _same(got, want, convert):
    got_items, got_err = got
    want_items, want_err = want
    assert got_err == want_err
    if want_err is None:
        assert [convert(s) for s in got_items] == want_items
    else:  # sentences before the error: xfast may hold back the batch the error is in
        assert [convert(s) for s in got_items] == want_items[:len(got_items)]


def _sentence(s):
    return (s.tokens, s.labels, s.line)


@SETTINGS
@given(data=_blobs(CONLL), labels=st.booleans())
def test_conll_reader(data, labels):
    path = _file(data, ".conll")
    _same(_xfast(lambda p: read_conll(p, labels=labels), path), oracle.conll(data, labels), _sentence)


@SETTINGS
@given(data=_blobs(COMMON + [b"B-PER", b"O", b"-DOCSTART-"]))
def test_text_reader(data):
    path = _file(data, ".tok")
    _same(_xfast(read_text, path), oracle.text(data), _sentence)


@SETTINGS
@given(data=_blobs(JSONL), labels=st.booleans())
def test_jsonl_reader(data, labels):
    path = _file(data, ".jsonl")
    names = ["O", "B-PER", "I-PER"]
    _same(_xfast(lambda p: read_jsonl(p, labels=labels, label_names=names), path),
          oracle.jsonl(data, labels, names), _sentence)


@SETTINGS
@given(data=_blobs(PHARAOH))
def test_pharaoh_reader(data):
    path = _file(data, ".align")
    _same(_xfast(read_pharaoh, path), oracle.pharaoh(data), lambda a: [tuple(p) for p in a.tolist()])


@pytest.mark.parametrize("read,suffix", [(read_conll, ".conll"), (read_text, ".tok"), (read_jsonl, ".jsonl"),
                                         (read_pharaoh, ".align")])
def test_a_very_long_line(read, suffix):
    lines = {".conll": b"w" * 5_000_000 + b"\tO\n", ".tok": b"w " * 2_500_000 + b"\n",
             ".jsonl": b'{"tokens": ["' + b"w" * 5_000_000 + b'"], "ner_tags": ["O"]}\n',
             ".align": b"0-1 " * 1_250_000 + b"\n"}
    path = _file(lines[suffix], suffix)
    got = list(read(path))
    assert len(got) == 1
