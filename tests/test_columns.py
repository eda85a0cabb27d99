"""Columnar reading and writing: the compiled parser equals its plain-Python twin (and so the
line-by-line reader semantics) on random bytes, for any block and chunk size."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xfast.io.conll as K  # the owner of the _text kernel: K._K is what the readers call
import xfast.io.readers as C
from xfast.errors import DataError
from xfast.io import _text_py, read_conll, write_conll
from xfast.io.columns import LabelTypes, TokenColumns, conll_bytes, from_sentences, read_columns, read_parallel_columns

KERNEL = K._K
pytestmark = pytest.mark.skipif(KERNEL is _text_py, reason="the _text extension is not built")

# pieces that exercise every rule: separators, Unicode spaces (U+0085, U+00A0, U+2000, U+3000),
# a non-space format char (U+200B), CR, NUL, labels, markers, bad UTF-8
PIECES = [b"a", b"Bonn", b"\xc3\xa9t\xc3\xa9", b"O", b"B-PER", b"I-PER", b"I-LOC", b"B-", b"X",
          b"\t", b" ", b"  ", b"\r", b"\x0b", b"\x1c", b"\xc2\x85", b"\xc2\xa0", b"\xe2\x80\x80",
          b"\xe3\x80\x80", b"\xe2\x80\x8b", b"\x00", b"-DOCSTART-", b"-DOCSTART-x", b"!",
          b"\n", b"\n", b"\n", b"\n\n", b"\xff", b"\xe2\x82"]

content = st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)
pure = st.one_of(st.just(b""), content.map(lambda b: b.replace(b"\xff", b"").replace(b"\xe2\x82", b"")))


def _read(path, kernel, **kw):
    saved = K._K
    K._K = kernel
    try:
        types = LabelTypes()
        out = [(c.sentences(), None if c.codes is None else c.codes.tolist(), c.lines.tolist())
               for c in read_columns(path, types=types, **kw)]
        return ("ok", out, types.names)
    except DataError as err:
        return ("error", str(err))
    finally:
        K._K = saved


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(content, pure), form=st.sampled_from(["conll", "text"]),
       labels=st.booleans(), block=st.sampled_from([1, 3, 7, 64, 1 << 20]),
       chunk=st.sampled_from([1, 2, 5, 512]), bom=st.booleans())
def test_kernel_equals_twin(tmp_path, data, form, labels, block, chunk, bom):
    path = tmp_path / "f.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    kw = dict(form=form, labels=labels and form == "conll", chunk_size=chunk, block_size=block)
    assert _read(path, KERNEL, **kw) == _read(path, _text_py, **kw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=pure, form=st.sampled_from(["conll", "text"]), block=st.sampled_from([1, 5, 64, 1 << 20]))
def test_count_equals_sentences_read(tmp_path, data, form, block):
    path = tmp_path / "c.txt"
    path.write_bytes(data)
    n = sum(len(c) for c in read_columns(path, form=form, labels=False))
    for kernel in (KERNEL, _text_py):
        saved, K._K = K._K, kernel
        try:
            assert C.count_sentences(path, form=form, block_size=block) == n
        finally:
            K._K = saved


def test_check_parallel_refuses_empty_and_unequal_inputs(tmp_path):
    a, b, e = tmp_path / "a.conll", tmp_path / "b.tok", tmp_path / "e.txt"
    a.write_text("x\tO\n\ny\tO\n", encoding="utf-8")
    b.write_text("u\nv\n\n", encoding="utf-8")
    e.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"\[E104\].*has 2.*b.tok has 3 \(a further blank"):
        C.check_parallel([a, b])
    with pytest.raises(DataError, match=r"\[E512\]"):
        C.check_parallel([e, b])
    b.write_text("u\nv\n", encoding="utf-8")
    assert C.check_parallel([a, b]) == 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sents=st.lists(st.lists(st.tuples(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                                                 max_size=6).filter(lambda t: t.strip() == t and t.split() == [t]
                                                                    and t != "-DOCSTART-"),
                                         st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"])),
                               min_size=1, max_size=8), max_size=10))
def test_write_then_read_round_trips(tmp_path, sents):
    toks = [[t for t, _ in s] for s in sents]
    labs = [[lab for _, lab in s] for s in sents]
    types = LabelTypes()
    cols = from_sentences(toks, types, labels=labs)
    path = tmp_path / "o.conll"
    path.write_bytes(conll_bytes(cols, cols.codes, types))
    ref = tmp_path / "r.conll"
    write_conll(ref, list(zip(toks, labs)))
    assert path.read_bytes() == ref.read_bytes()
    back = list(read_conll(path))
    assert [s.tokens for s in back] == toks
    from xfast.io import to_iob2
    assert [s.labels for s in back] == [to_iob2(s) for s in labs]


def test_docstart_only_as_whole_first_field(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("-DOCSTART- -X- O O\n\nx\tO\n-DOCSTART-x\tB-PER\n\n", encoding="utf-8")
    (s,) = list(read_conll(path))
    assert s.tokens == ["x", "-DOCSTART-x"] and s.labels == ["O", "B-PER"]


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "e.conll"
    path.write_bytes(b"a\tO\n\nb\tB-PER\nc\tQ\n")
    with pytest.raises(DataError, match=r"e\.conll:4: \[E103\]"):
        list(read_columns(path, labels=True))
    path.write_bytes(b"a\tO\n" * 3000 + b"\n\xff\tO\n")
    with pytest.raises(DataError, match=r"e\.conll:3002: \[E101\]"):
        list(read_columns(path, labels=True, block_size=100))


def test_parallel_columns_lockstep_and_count_mismatch(tmp_path):
    a, b = tmp_path / "a.conll", tmp_path / "b.tok"
    a.write_text("x\tB-PER\n\ny\tO\n\nz\tO\n", encoding="utf-8")
    b.write_text("u v\nw\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\[E104\].*has 2.*has 3"):
        list(read_parallel_columns([a, b], chunk_size=2))
    b.write_text("u v\nw\n\n", encoding="utf-8")
    rows = list(read_parallel_columns([a, b], chunk_size=2))
    assert [len(r[0]) for r in rows] == [2, 1]
    assert rows[0][1].sentences() == [["u", "v"], ["w"]] and rows[0][1].codes is None


def test_entities_and_stop_mask_equal_twin():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 7, 400).astype(np.int32)
    off = np.array([0, 5, 5, 60, 200, 400], np.int64)
    for compat in (False, True):
        got = KERNEL.entities(codes, off, compat)
        want = _text_py.entities(codes, off, compat)
        for g, w in zip(got, want):
            assert np.array_equal(g, w)
    cols = from_sentences([["a", "!", "?", "!!"], ["?"]])
    args = (cols.text, cols.tok_off, [b"!", b"?"])
    assert KERNEL.stop_mask(*args).tolist() == _text_py.stop_mask(*args).tolist() == [0, 1, 1, 0, 1]


def test_slice_and_concat_round_trip():
    cols = from_sentences([["a", "b"], [], ["c"]], LabelTypes(), labels=[["B-X", "I-X"], [], ["O"]])
    again = TokenColumns.concat([cols.slice(0, 1), cols.slice(1, 2), cols.slice(2, 3)])
    assert again.sentences() == cols.sentences() and again.codes.tolist() == cols.codes.tolist()
