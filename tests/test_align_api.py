"""xfast.align's public surface: errors, empty input, batch forms, kernel vs twin,
similarity and word vectors bit-identical to SimAlign's, the subword-to-word union, and the
whole hot path (align_states_batch) against SimAlign's own get_word_aligns."""

from __future__ import annotations

import multiprocessing
import sys
import threading

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xfast.align as xa
from tests.oracles import align_oracle
from xfast.align import _align_py
from xfast.errors import ParameterError

simalign = pytest.importorskip("simalign.simalign")
SA = simalign.SentenceAligner

ALL = ("fwd", "rev", "inter", "itermax", "mwmf", "softmax")


# ------------------------------------------------------------------ errors and edges
@pytest.mark.parametrize("bad, code", [
    (np.array([[0.1, np.nan]]), "E302"),
    (np.array([[np.inf, 0.1]]), "E302"),
    (np.array([[-np.inf]], dtype=np.float32), "E302"),
    (np.zeros(3), "E301"),
    (np.zeros((2, 2, 2)), "E301"),
    (np.array([["a", "b"]]), "E310"),
    (np.ones((2, 2), dtype=complex), "E310"),
])
@pytest.mark.parametrize("method", ALL)
def test_bad_matrix_raises_value_error(bad, code, method):
    with pytest.raises(ValueError, match=code):
        xa.extract(bad, method)


@pytest.mark.parametrize("kw, name", [
    ({"method": "argmax"}, "method"), ({"max_count": 0}, "max_count"),
    ({"max_count": 1.5}, "max_count"), ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"),
    ({"threshold": 1.0}, "threshold"), ({"threshold": float("nan")}, "threshold"),
])
def test_bad_parameter_names_it(kw, name):
    with pytest.raises(ParameterError, match=name):
        xa.extract(np.ones((3, 3)), **kw)


def test_batch_error_names_the_matrix():
    mats = [np.ones((2, 2)), np.ones((3, 3)), np.array([[1.0, np.nan]])]
    with pytest.raises(ParameterError, match=r"sims\[2\] contains NaN"):
        xa.extract_batch(mats)
    with pytest.raises(ParameterError, match=r"sims\[1\] must be a 2-D"):
        xa.extract_batch([np.ones((2, 2)), np.ones(2)])
    padded = np.ones((2, 3, 3), dtype=np.float32)
    with pytest.raises(ParameterError, match="E311"):
        xa.extract_batch(padded, lengths=[[3, 4], [1, 1]])
    with pytest.raises(ParameterError, match="E311"):
        xa.extract_batch(padded, lengths=[[1, 1]])
    padded[1, 0, 0] = np.inf
    with pytest.raises(ParameterError, match=r"sims\[1\]"):
        xa.extract_batch(padded, lengths=[[3, 3], [1, 1]])
    # padding outside the lengths is never read
    assert len(xa.extract_batch(padded, lengths=[[3, 3], [0, 3]])[1]) == 0


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("shape", [(0, 0), (0, 4), (4, 0)])
def test_empty_side_gives_no_pairs(method, shape):
    got = xa.extract(np.zeros(shape), method)
    assert got.shape == (0, 2) and got.dtype == np.int32
    got = xa.extract_batch([np.zeros(shape), np.ones((2, 2)), np.zeros(shape)], method)
    assert [len(g) for g in got][::2] == [0, 0] and len(got[1]) > 0
    assert xa.extract_batch([], method) == []


def test_result_types_and_lists_accepted():
    got = xa.extract([[0.1, 0.9], [0.8, 0.2]], "inter")
    assert got.dtype == np.int32 and got.tolist() == [[0, 1], [1, 0]]
    assert xa.extract(np.array([[True, False]]), "fwd").tolist() == [[0, 0]]
    assert xa.extract(np.array([[1, 5, 5]]), "fwd").tolist() == [[0, 1]]  # first index on ties


def test_padded_without_lengths_is_full_matrices():
    rng = np.random.default_rng(0)
    sims = rng.random((4, 7, 5), dtype=np.float32)
    got = xa.extract_batch(sims, "itermax")
    for g, s in zip(got, sims):
        np.testing.assert_array_equal(g, xa.extract(s, "itermax"))


# ------------------------------------------------------------------ kernel vs twin


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 2**32 - 1)),
                min_size=0, max_size=5),
       st.sampled_from(ALL), st.integers(1, 4), st.floats(0, 1), st.booleans())
def test_kernel_equals_twin(simd_level, specs, method, max_count, alpha, words):
    """The compiled kernel, at each pass level, and the plain-Python twin give the same
    pairs and counts."""
    mats, rws, cws = [], [], []
    for m, n, seed in specs:
        rng = np.random.default_rng(seed)
        mats.append(rng.integers(0, 4, (m, n)).astype(np.float32) / 4 + rng.random((m, n), dtype=np.float32) * (seed % 2))
        rws.append(np.sort(rng.integers(-1, max(m // 2, 1), m)).astype(np.int32))
        cws.append(np.sort(rng.integers(-1, max(n // 2, 1), n)).astype(np.int32))
    code, max_count, w1, w2, threshold = xa._check_params(method, max_count, alpha, 1e-3)
    extra = (rws, cws, bool(specs and specs[0][2] % 2)) if words else ()
    k = xa._kernel.extract_list(mats, code, max_count, w1, w2, threshold, *extra)
    t = _align_py.extract_list(mats, code, max_count, w1, w2, threshold, *extra)
    if method == "mwmf" and not words:
        assert k[2] == t[2] == -1
        np.testing.assert_array_equal(k[1], t[1])
    else:
        for a, b in zip(k, t):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("alpha", [5e-324, 1e-310, 1e-250, 1e-200, 1e-100, 0.0])
def test_itermax_tiny_alpha_equals_twin(simd_level, alpha):
    """Weights so small that sim * weight is a subnormal double tie distinct floats: the
    kernel must weigh those cells in double, as SimAlign does (found by hypothesis); at
    every pass level, past the register-resident width (128 columns) too."""
    rng = np.random.default_rng(8)
    mats = [rng.random((m, n), dtype=np.float32)
            for m, n in ((5, 12), (3, 4), (40, 70), (90, 33), (7, 129), (4, 150))]
    code, max_count, w1, w2, threshold = xa._check_params("itermax", 2, alpha, 1e-3)
    k = xa._kernel.extract_list(mats, code, max_count, w1, w2, threshold)
    t = _align_py.extract_list(mats, code, max_count, w1, w2, threshold)
    for a, b in zip(k, t):
        np.testing.assert_array_equal(a, b)


def test_kernel_and_twin_report_the_same_bad_matrix():
    mats = [np.ones((2, 2)), np.array([[0.0, -np.inf]])]
    for impl in {xa._kernel, _align_py}:
        assert impl.extract_list(mats, 3, 2, 0.9, 1.0, 1e-3)[2] == -3


@pytest.mark.parametrize("n_threads", [2, 3, 8])
def test_any_thread_count_gives_the_same_result(n_threads):
    rng = np.random.default_rng(2)
    mats = [rng.random((int(rng.integers(0, 30)), int(rng.integers(0, 30))), dtype=np.float32)
            for _ in range(150)]
    for method in ALL:
        one = xa.extract_batch(mats, method)
        many = xa.extract_batch(mats, method, n_threads=n_threads)
        assert all(np.array_equal(a, b) for a, b in zip(one, many))
    padded = np.zeros((150, 30, 30), dtype=np.float32)
    lengths = np.array([m.shape for m in mats])
    for b, m in enumerate(mats):
        padded[b, : m.shape[0], : m.shape[1]] = m
    many = xa.extract_batch(padded, lengths=lengths, n_threads=n_threads)
    assert all(np.array_equal(a, b) for a, b in zip(xa.extract_batch(mats), many))
    mats[140] = np.full((2, 2), np.nan, dtype=np.float32)
    with pytest.raises(ParameterError, match=r"sims\[140\]"):
        xa.extract_batch(mats, n_threads=n_threads)
    with pytest.raises(ParameterError, match="n_threads"):
        xa.extract_batch(mats, n_threads=0)


def _same_from_python_threads(mats: list, method: str, thread_counts: list[int]) -> None:
    """Calls on several Python threads at once (each with its ``n_threads``) give what one
    call gives."""
    expected = xa.extract_batch(mats, method)
    results = [None] * len(thread_counts)

    def work(k):
        results[k] = xa.extract_batch(mats, method, n_threads=thread_counts[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(thread_counts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for res in results:
        assert all(np.array_equal(a, b) for a, b in zip(res, expected))


def test_threads_give_the_same_result():
    """The kernel releases the GIL; concurrent calls give what one call gives."""
    rng = np.random.default_rng(1)
    mats = [rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 60))), dtype=np.float32)
            for _ in range(200)]
    _same_from_python_threads(mats, "itermax", [1, 1, 1, 1])


@pytest.mark.parametrize("n_threads", [2, 4])
def test_threads_report_the_first_bad_matrix(n_threads):
    """Threads claim chunks of matrices as they come; an error still names the first bad one."""
    rng = np.random.default_rng(3)
    mats = [rng.random((8, 8), dtype=np.float32) for _ in range(400)]
    for first, later in ((40, 390), (300, 301), (17, 16 * 20)):
        bad = list(mats)
        bad[first] = bad[first].copy()
        bad[first][3, 3] = np.inf
        bad[later] = np.full((8, 8), np.nan, dtype=np.float32)
        for _ in range(5):
            with pytest.raises(ParameterError, match=rf"sims\[{first}\]"):
                xa.extract_batch(bad, "inter", n_threads=n_threads)
    assert all(np.array_equal(a, b) for a, b in
               zip(xa.extract_batch(mats, n_threads=n_threads), xa.extract_batch(mats)))


def test_concurrent_threaded_calls_share_the_pool():
    """Callers on several threads, each asking for threads, get what one call gives."""
    rng = np.random.default_rng(4)
    mats = [rng.random((int(rng.integers(1, 50)), int(rng.integers(1, 50))), dtype=np.float32)
            for _ in range(300)]
    _same_from_python_threads(mats, "inter", [2, 3, 4])


def _child_extract(mats, queue):
    queue.put([p.tolist() for p in xa.extract_batch(mats, "itermax", n_threads=2)])


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_threads_work_in_a_forked_child():
    """The worker pool is per process: a child forked after a threaded call makes its own."""
    rng = np.random.default_rng(5)
    mats = [rng.random((20, 20), dtype=np.float32) for _ in range(100)]
    expected = [p.tolist() for p in xa.extract_batch(mats, "itermax", n_threads=2)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_extract, args=(mats, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == expected


def test_extract_columnar_is_extract_batch_flattened():
    rng = np.random.default_rng(6)
    mats = [rng.random((int(rng.integers(0, 40)), int(rng.integers(0, 40))), dtype=np.float32)
            for _ in range(120)]
    for method in ALL:
        for n_threads in (1, 2):
            offsets, pairs = xa.extract_columnar(mats, method, n_threads=n_threads)
            assert offsets.dtype == np.int64 and offsets.shape == (121,) and offsets[0] == 0
            assert pairs.dtype == np.int32 and pairs.shape == (offsets[-1], 2)
            for b, e in enumerate(xa.extract_batch(mats, method)):
                np.testing.assert_array_equal(pairs[offsets[b]:offsets[b + 1]], e)
    padded = np.zeros((120, 40, 40), dtype=np.float32)
    for b, m in enumerate(mats):
        padded[b, : m.shape[0], : m.shape[1]] = m
    lengths = np.array([m.shape for m in mats])
    offsets, pairs = xa.extract_columnar(padded, lengths=lengths)
    for b, e in enumerate(xa.extract_batch(mats)):
        np.testing.assert_array_equal(pairs[offsets[b]:offsets[b + 1]], e)
    offsets, pairs = xa.extract_columnar([])
    assert offsets.tolist() == [0] and pairs.shape == (0, 2)


def test_split_kernel_equals_twin():
    """Views made in C: the same rows as slices, sharing the buffer, empty ones included."""
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 4, 50).astype(np.int64)
    counts[[0, 7, 49]] = 0
    pairs = rng.integers(0, 9, (int(counts.sum()), 2)).astype(np.int32)
    got = xa._kernel.split(pairs, counts)
    want = _align_py.split(pairs, counts)
    assert len(got) == len(want) == 50
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
        assert g.shape == w.shape and g.dtype == np.int32 and g.flags.c_contiguous
        assert g.base is pairs or g.size == 0 or np.shares_memory(g, pairs)
    assert xa._kernel.split(np.zeros((0, 2), np.int32), np.zeros(3, np.int64))[2].shape == (0, 2)


# ------------------------------------------------------------------ similarity, words
@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 64), st.integers(0, 2**32 - 1),
       st.sampled_from((0.0, 0.5, 1.0)))
def test_similarity_is_bit_identical_to_simalign(m, n, d, seed, distortion):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, d)).astype(np.float32)
    y = rng.standard_normal((n, d)).astype(np.float32)
    y[: min(2, n)] = x[: min(2, n)] * 3  # parallel vectors: cosine 1
    expected = SA.apply_distortion(SA.get_similarity(x, y), distortion)
    got = xa.similarity(x, y, distortion=distortion)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_similarity_edges():
    assert xa.similarity(np.zeros((0, 3)), np.ones((2, 3))).shape == (0, 2)
    assert xa.similarity(np.zeros((2, 3), np.float32), np.ones((1, 3), np.float32)).dtype == np.float32
    with pytest.raises(ParameterError, match="E314"):
        xa.similarity(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ParameterError, match="E302"):
        xa.similarity(np.ones((2, 3)), np.full((2, 3), np.nan))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=12), st.integers(0, 2**32 - 1))
def test_word_average_is_bit_identical_to_simalign(counts, seed):
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((sum(counts), 24)).astype(np.float32)
    tokens = [["t"] * c for c in counts]
    expected = SA.average_embeds_over_words([states, states], [tokens, tokens])[0]
    ids = np.repeat(np.arange(len(counts)), counts)
    np.testing.assert_array_equal(xa.word_average(states, ids, len(counts)), expected)


def test_word_average_empty_word_gets_zero_row():
    got = xa.word_average(np.ones((2, 3), np.float32), [0, 2], 3)
    assert got[1].tolist() == [0, 0, 0] and got[2].tolist() == [1, 1, 1]
    with pytest.raises(ParameterError, match="E315"):
        xa.word_average(np.ones((2, 3)), [0, 3], 3)
    with pytest.raises(ParameterError, match="E316"):
        xa.word_average(np.ones((2, 3)), [0], 3)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_to_words_union_and_reference_order(m, n, seed):
    rng = np.random.default_rng(seed)
    lw = np.sort(rng.integers(-1, max(m // 2, 1), m))
    rw = np.sort(rng.integers(0, max(n // 2, 1), n))
    pairs = np.argwhere(rng.random((m, n)) < 0.2)
    rng.shuffle(pairs)
    expected = align_oracle.union_words(pairs, lw, rw)
    assert xa.to_words(pairs, lw, rw).tolist() == [list(p) for p in expected]
    compat = xa.to_words(pairs, lw, rw, compat_awesome=True)
    assert [tuple(p) for p in compat.tolist()] == align_oracle.reference_awesome_order(pairs, lw, rw)


def test_to_words_batch_equals_to_words():
    rng = np.random.default_rng(5)
    pairs, lws, rws = [], [], []
    for _ in range(40):
        m, n = (int(v) for v in rng.integers(0, 20, 2))
        lws.append(np.sort(rng.integers(-1, max(m, 1), m)))
        rws.append(np.sort(rng.integers(0, max(n, 1), n)))
        pairs.append(np.argwhere(rng.random((m, n)) < 0.3))
    expected = [xa.to_words(*x) for x in zip(pairs, lws, rws)]
    for args in ((pairs, lws, rws),  # int64: converted
                 ([p.astype(np.int32) for p in pairs], [w.astype(np.int32) for w in lws],
                  [w.astype(np.int32) for w in rws])):
        got = xa.to_words_batch(*args)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    with pytest.raises(ParameterError, match="sentence 1: .*E318"):
        xa.to_words_batch([[[0, 0]], [[0, 5]]], [[0], [0]], [[0], [0, 1]])
    with pytest.raises(ParameterError, match="E319"):
        xa.to_words_batch([], [[0]], [])


def test_to_words_edges():
    assert xa.to_words(np.zeros((0, 2), int), [0], [0]).shape == (0, 2)
    assert xa.to_words([], [], []).shape == (0, 2)
    assert xa.to_words([[0, 0], [1, 0]], [0, 0], [4]).tolist() == [[0, 4]]
    with pytest.raises(ParameterError, match="E318"):
        xa.to_words([[2, 0]], [0, 0], [0])
    with pytest.raises(ParameterError, match="E317"):
        xa.to_words([[0.5, 0]], [0], [0])


# ------------------------------------------------------------------ the whole hot path
class _Tokenizer:
    def __init__(self, counts: dict):
        self.counts = counts

    def tokenize(self, word: str) -> list[str]:
        return ["x"] * self.counts[word]


class _Loader:
    """Stands in for SimAlign's EmbeddingLoader: fixed subword states, no model."""

    def __init__(self, counts: dict, states: dict):
        self.tokenizer = _Tokenizer(counts)
        self.states = states

    def get_embed_list(self, batch):
        arrs = [self.states[tuple(words)] for words in batch]
        width = max(len(a) for a in arrs)
        out = np.zeros((len(arrs), width, arrs[0].shape[1]), dtype=np.float32)
        for b, a in enumerate(arrs):
            out[b, : len(a)] = a
        return torch.from_numpy(out)


def _sentence(rng, prefix, n_words, allow_empty):
    counts = rng.integers(0 if allow_empty else 1, 4, n_words)
    if counts.sum() == 0:
        counts[0] = 1
    words = [f"{prefix}{k}" for k in range(n_words)]
    return words, dict(zip(words, counts.tolist())), np.repeat(np.arange(n_words), counts)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 14), st.integers(1, 14), st.integers(0, 2**32 - 1),
       st.sampled_from(("bpe", "word")), st.sampled_from((0.0, 0.0, 0.7)))
def test_align_states_batch_matches_simalign_get_word_aligns(n_lab, n_rec, seed, token_type,
                                                            distortion):
    """SimAlign's own pipeline run with the receiving sentence as source (as the reference
    does) gives the same word pairs, swapped to (labeled, receiving)."""
    rng = np.random.default_rng(seed)
    lab_words, lab_counts, lab_ids = _sentence(rng, "l", n_lab, token_type == "bpe")
    rec_words, rec_counts, rec_ids = _sentence(rng, "r", n_rec, token_type == "bpe")
    lab = rng.standard_normal((len(lab_ids), 8)).astype(np.float32)
    rec = rng.standard_normal((len(rec_ids), 8)).astype(np.float32)
    if len(rec) > 1:
        rec[1] = rec[0]  # exact ties
    aligner = SA.__new__(SA)
    aligner.token_type = token_type
    aligner.distortion = distortion
    aligner.matching_methods = ["fwd", "rev", "inter", "itermax"]
    aligner.embed_loader = _Loader({**lab_counts, **rec_counts},
                                   {tuple(lab_words): lab, tuple(rec_words): rec})
    reference = aligner.get_word_aligns(rec_words, lab_words)
    # xfast's fwd is each labeled token's best receiving token: SimAlign's rev here
    for ours, theirs in (("fwd", "rev"), ("rev", "fwd"), ("inter", "inter"), ("itermax", "itermax")):
        got = xa.align_states_batch([lab], [rec], [lab_ids], [rec_ids], method=ours,
                                    token_type=token_type, distortion=distortion)
        expected = sorted((lab_w, rec_w) for rec_w, lab_w in reference[theirs])
        assert [tuple(p) for p in got[0].tolist()] == expected, ours


def test_align_states_batch_many_pairs_equal_one_by_one():
    rng = np.random.default_rng(3)
    batch = []
    for _ in range(30):
        m, n = rng.integers(0, 25, 2)
        batch.append((rng.standard_normal((m, 16)).astype(np.float32),
                      rng.standard_normal((n, 16)).astype(np.float32),
                      np.sort(rng.integers(0, max(m, 1), m)), np.sort(rng.integers(0, max(n, 1), n))))
    cols = list(zip(*batch))
    for method in ALL:
        for token_type in ("bpe", "word"):
            many = xa.align_states_batch(*cols, method=method, token_type=token_type)
            for k, one in enumerate(batch):
                single = xa.align_states_batch(*([x] for x in one), method=method,
                                               token_type=token_type)
                np.testing.assert_array_equal(many[k], single[0])


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1), st.floats(0.5, 8))
def test_align_states_batch_softmax_and_reference_order(n_lab, n_rec, seed, scale):
    rng = np.random.default_rng(seed)
    _, _, lab_ids = _sentence(rng, "l", n_lab, True)
    _, _, rec_ids = _sentence(rng, "r", n_rec, True)
    lab = (rng.standard_normal((len(lab_ids), 8)) * scale).astype(np.float32)
    rec = (rng.standard_normal((len(rec_ids), 8)) * scale).astype(np.float32)
    scores = rec @ lab.T
    if align_oracle.near_threshold(scores, 1e-3):
        return
    sub = [(j, i) for i, j in align_oracle.softmax_pairs(scores)]  # (labeled, receiving)
    got = xa.align_states_batch([lab], [rec], [lab_ids], [rec_ids], method="softmax")
    assert [tuple(p) for p in got[0].tolist()] == align_oracle.union_words(sub, lab_ids, rec_ids)
    compat = xa.align_states_batch([lab], [rec], [lab_ids], [rec_ids], method="softmax",
                                   compat_awesome=True)
    assert [tuple(p) for p in compat[0].tolist()] == align_oracle.reference_awesome_order(
        sub, lab_ids, rec_ids)


def test_align_states_batch_errors():
    ok = ([np.ones((2, 4), np.float32)], [np.ones((3, 4), np.float32)], [[0, 1]], [[0, 0, 1]])
    with pytest.raises(ParameterError, match="E319"):
        xa.align_states_batch(ok[0], ok[1] * 2, ok[2], ok[3])
    with pytest.raises(ParameterError, match="sentence 0: .*E316"):
        xa.align_states_batch(ok[0], ok[1], [[0]], ok[3])
    with pytest.raises(ParameterError, match="sentence 0: .*E314"):
        xa.align_states_batch(ok[0], [np.ones((3, 5))], ok[2], ok[3])
    with pytest.raises(ParameterError, match="sentence pair 0: similarity contains NaN"):
        xa.align_states_batch([np.full((2, 4), np.nan)], ok[1], ok[2], ok[3])
    with pytest.raises(ParameterError, match="token_type"):
        xa.align_states_batch(*ok, token_type="char")
    with pytest.raises(ParameterError, match="distortion"):
        xa.align_states_batch(*ok, method="softmax", distortion=0.5)
    with pytest.raises(ParameterError, match="compat_awesome"):
        xa.align_states_batch(*ok, compat_awesome=True)
    assert xa.align_states_batch([], [], [], []) == []


def test_link_scores_numba_equals_twin():
    from xfast.align.scores import link_scores, link_scores_py

    rng = np.random.default_rng(7)
    xs, xw, ys, yw, alns = [], [], [], [], []
    for m, n in [(1, 1), (5, 3), (9, 12), (0, 4)]:
        xs.append(rng.normal(size=(m, 6)).astype(np.float32))
        ys.append(rng.normal(size=(n, 6)).astype(np.float32))
        xw.append(np.sort(rng.integers(0, max(m // 2, 1), m)).astype(np.int32))
        yw.append(np.sort(rng.integers(0, max(n // 2, 1), n)).astype(np.int32))
        pairs = sorted({(int(i), int(j)) for i in xw[-1] for j in yw[-1]})
        alns.append(np.array(pairs, np.int32).reshape(-1, 2))
    fast = link_scores(xs, xw, ys, yw, alns)
    slow = link_scores_py(xs, xw, ys, yw, alns)
    for f, s, a in zip(fast, slow, alns):
        assert f.shape == (len(a),)
        np.testing.assert_allclose(f, s, atol=1e-6)
        assert ((f >= 0) & (f <= 1)).all()
