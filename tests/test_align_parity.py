"""xfast.align extraction against its peers on hypothesis-generated matrices (SPEC §2).

fwd / rev / inter / itermax: the pairs of PyPI simalign 0.4's own functions. mwmf: the total
weight of simalign's networkx matching (small matrices; larger ones against scipy).
softmax: an independent numpy reading of SPEC §2. Every example also runs the batch paths
(list and padded) and the plain-Python twin, which must give the very same pairs.

Matrices are drawn as (shape, kind, seed) and built with numpy, so 1x1 ... 150x150 stay cheap;
past 128 columns the float kernels leave their register-resident passes for the general ones.
Every pass level this CPU can run is checked too, chosen by hand with ``_simd``: the portable
scans (0), the AVX2 passes (1), the AVX-512 passes (2).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xfast.align as xa
from tests._simd import simd_levels
from tests.oracles import align_oracle
from xfast.align import _align_py

simalign = pytest.importorskip("simalign.simalign")
SA = simalign.SentenceAligner

KINDS = ("uniform", "ties", "constant_rows", "near_ties", "cosine", "float64_signed",
         "constant", "distorted", "float32_signed", "signed_late", "signed_zeros")


def make_matrix(m: int, n: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((m, n), dtype=np.float32)
    if kind == "ties":
        return rng.integers(0, rng.integers(1, 4), (m, n)).astype(np.float32)
    if kind == "constant_rows":
        rows = rng.integers(0, 3, (m, 1)).astype(np.float32) / 2
        return np.repeat(rows, n, axis=1)
    if kind == "near_ties":
        steps = rng.integers(0, 3, (m, n)).astype(np.float32)
        return np.float32(0.5) + steps * np.float32(2.0**-24)
    if kind == "cosine":
        d = int(rng.integers(1, 9))
        x = rng.standard_normal((m, d)).astype(np.float32)
        y = rng.standard_normal((n, d)).astype(np.float32)
        return SA.get_similarity(x, y)
    if kind == "float64_signed":
        return rng.standard_normal((m, n)) * 10
    if kind == "constant":
        return np.full((m, n), rng.random(), dtype=np.float32)
    if kind == "float32_signed":
        return rng.standard_normal((m, n)).astype(np.float32)
    if kind == "signed_late":
        # >= 0 but for a few cells in later rows: the kernels' integer pass gives up midway
        s = rng.random((m, n), dtype=np.float32)
        rows = rng.integers(m // 2, m, 2)
        s[rows, rng.integers(0, n, 2)] *= -1
        return s
    if kind == "signed_zeros":
        # -0.0 == 0.0 for argmax: ties between them go to the first index
        return rng.choice(np.array([-0.0, 0.0, 0.0, 0.5, -0.5], dtype=np.float32), (m, n))
    # a float32 similarity with SimAlign's float64 distortion
    return SA.apply_distortion(rng.random((m, n), dtype=np.float32), float(rng.random()))


def to_pairs(mat: np.ndarray) -> np.ndarray:
    return np.argwhere(mat > 0).astype(np.int32).reshape(-1, 2)


def twin(sim: np.ndarray, method: str, **kw) -> np.ndarray:
    code, max_count, w1, w2, threshold = xa._check_params(
        method, kw.get("max_count", 2), kw.get("alpha", 0.9), kw.get("threshold", 1e-3))
    pairs, _, status = _align_py.extract_list([xa._as_float(sim, "sim")], code, max_count,
                                              w1, w2, threshold)
    assert status == -1
    return pairs


def same_through_batches(mats: list[np.ndarray], method: str, expected: list, **kw) -> None:
    got = xa.extract_batch(mats, method, **kw)
    assert len(got) == len(mats)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    if all(m.dtype == np.float32 for m in mats):
        mm = max(m.shape[0] for m in mats)
        nn = max(m.shape[1] for m in mats)
        padded = np.full((len(mats), mm, nn), np.nan, dtype=np.float32)  # padding never read
        for b, m in enumerate(mats):
            padded[b, : m.shape[0], : m.shape[1]] = m
        lengths = np.array([m.shape for m in mats], dtype=np.int64)
        for g, e in zip(xa.extract_batch(padded, method, lengths=lengths, **kw), expected):
            np.testing.assert_array_equal(g, e)


sizes = st.integers(1, 150)
matrices = st.tuples(sizes, sizes, st.sampled_from(KINDS), st.integers(0, 2**32 - 1))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(matrices, min_size=1, max_size=6))
def test_simalign_methods_match_simalign(specs):
    """fwd, rev, inter and itermax give exactly simalign's pairs, ties included."""
    mats = [make_matrix(*spec) for spec in specs]
    fwd_rev = [SA.get_alignment_matrix(s) for s in mats]
    expected = {
        "fwd": [to_pairs(f) for f, _ in fwd_rev],
        "rev": [to_pairs(r) for _, r in fwd_rev],
        "inter": [to_pairs(f * r) for f, r in fwd_rev],
        "itermax": [to_pairs(SA.iter_max(s)) for s in mats],
    }
    for method, exp in expected.items():
        for s, e in zip(mats, exp):
            np.testing.assert_array_equal(xa.extract(s, method), e, err_msg=f"{method} {s.shape}")
        np.testing.assert_array_equal(twin(mats[0], method), exp[0], err_msg=f"twin {method}")
        same_through_batches(mats, method, exp)


LEVELS = simd_levels()




def test_simd_levels_dispatch():
    """The default level is the best the CPU has; -1 only asks."""
    if not LEVELS:
        pytest.skip("extension not built")
    assert xa._kernel._simd() == xa._kernel._simd(-1) == LEVELS[-1]
    assert xa._kernel._simd(99) == LEVELS[-1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(matrices, min_size=1, max_size=4))
def test_each_simd_level_matches_simalign(simd_level, specs):
    """fwd, rev, inter and itermax give simalign's pairs at every level the CPU has: the
    portable scans (CPUs without AVX2), the AVX2 passes, the AVX-512 passes."""
    assert xa._kernel._simd() == simd_level
    mats = [make_matrix(*spec) for spec in specs]
    for s in mats:
        f, r = SA.get_alignment_matrix(s)
        for method, e in (("fwd", f), ("rev", r), ("inter", f * r), ("itermax", SA.iter_max(s))):
            np.testing.assert_array_equal(xa.extract(s, method), to_pairs(e),
                                          err_msg=f"{method} {s.shape}")


# a block's last lane, the next block's first, the register-resident limit (128) and past it
EDGE_N = (1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 200)


@pytest.mark.parametrize("kind", ("uniform", "ties", "near_ties", "constant", "float64_signed",
                                  "float32_signed", "signed_late", "signed_zeros"))
def test_each_simd_level_block_edges(simd_level, kind):
    """Every column count around the 8- and 16-lane blocks and the register-resident limit,
    m = 1 too: simalign's pairs, and the same through a padded batch."""
    for n in EDGE_N:
        mats = [make_matrix(m, n, kind, 1000 * n + m) for m in (1, 2, 3, 9)]
        for s in mats:
            f, r = SA.get_alignment_matrix(s)
            for method, e in (("fwd", f), ("rev", r), ("inter", f * r), ("itermax", SA.iter_max(s))):
                np.testing.assert_array_equal(xa.extract(s, method), to_pairs(e),
                                              err_msg=f"{method} {s.shape}")
        same_through_batches(mats, "itermax", [to_pairs(SA.iter_max(s)) for s in mats])


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_each_simd_level_reports_nonfinite(simd_level, dtype):
    """A NaN or +-inf anywhere (first cell, a tail lane, past the register-resident limit)
    is reported at every level; huge finite values are not."""
    rng = np.random.default_rng(5)
    for m, n in ((1, 1), (3, 7), (5, 8), (4, 9), (2, 17), (6, 64), (2, 129), (3, 200)):
        for value in (np.nan, -np.nan, np.inf, -np.inf):
            for i, j in ((0, 0), (m - 1, n - 1), (m // 2, n // 2), (m - 1, 0)):
                s = rng.random((m, n)).astype(dtype)
                s[i, j] = value
                for method in ("fwd", "rev", "inter", "itermax"):
                    with pytest.raises(ValueError, match="E302"):
                        xa.extract(s, method)
        # finite values whose sums overflow: the exact check clears them
        s = np.full((m, n), 3e38, dtype=dtype)
        s[m - 1, n - 1] = 3.3e38
        for s in (s, -s):
            f, r = SA.get_alignment_matrix(s)
            np.testing.assert_array_equal(xa.extract(s, "inter"), to_pairs(f * r))
            np.testing.assert_array_equal(xa.extract(s, "fwd"), to_pairs(f))


@settings(max_examples=200, deadline=None)
@given(matrices, st.integers(1, 5))
def test_itermax_max_count_matches_simalign(spec, max_count):
    """itermax's round count follows simalign's max_count."""
    s = make_matrix(*spec)
    expected = to_pairs(SA.iter_max(s, max_count=max_count))
    np.testing.assert_array_equal(xa.extract(s, "itermax", max_count=max_count), expected)
    np.testing.assert_array_equal(twin(s, "itermax", max_count=max_count), expected)


def weight(sim: np.ndarray, pairs: np.ndarray) -> float:
    return float(np.asarray(sim, dtype=np.float64)[pairs[:, 0], pairs[:, 1]].sum())


@settings(max_examples=800, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from(("uniform", "ties", "cosine")),
       st.integers(0, 2**32 - 1))
def test_mwmf_reaches_networkx_weight(m, n, kind, seed):
    """mwmf: a matching of min(m, n) pairs with the weight of simalign's networkx matching.

    SimAlign builds its graph from the nonzero cells only, so the matrices here are > 0.
    """
    s = make_matrix(m, n, kind, seed) + np.float32(0.25)
    reference = to_pairs(SA.get_max_weight_match(s))
    got = xa.extract(s, "mwmf")
    assert len(got) == len(reference) == min(m, n)
    assert len(set(got[:, 0])) == len(set(got[:, 1])) == len(got)
    assert weight(s, got) == pytest.approx(weight(s, reference), rel=1e-9, abs=1e-9)
    np.testing.assert_array_equal(twin(s, "mwmf"), got)


@settings(max_examples=600, deadline=None)
@given(matrices)
def test_mwmf_reaches_scipy_weight(spec):
    """mwmf on 1x1 ... 120x120 (any sign): the optimum of scipy's linear_sum_assignment."""
    from scipy.optimize import linear_sum_assignment

    s = make_matrix(*spec)
    rows, cols = linear_sum_assignment(np.asarray(s, dtype=np.float64), maximize=True)
    got = xa.extract(s, "mwmf")
    assert len(got) == min(s.shape)
    assert len(set(got[:, 0])) == len(set(got[:, 1])) == len(got)
    best = float(np.asarray(s, dtype=np.float64)[rows, cols].sum())
    assert weight(s, got) == pytest.approx(best, rel=1e-9, abs=1e-9)
    same_through_batches([s], "mwmf", [got])


@settings(max_examples=1500, deadline=None)
@given(matrices, st.floats(0.1, 30), st.sampled_from((1e-3, 0.0, 0.05, 0.3)))
def test_softmax_matches_numpy_reading(spec, scale, threshold):
    """softmax: the cells of an independent numpy reading of SPEC §2 (float64)."""
    m, n, kind, seed = spec
    s = make_matrix(m, n, kind, seed) * np.float32(scale)
    if align_oracle.near_threshold(s, threshold):
        return  # a probability on the threshold itself: last-bit rounding decides
    expected = np.array(align_oracle.softmax_pairs(s, threshold), dtype=np.int32).reshape(-1, 2)
    np.testing.assert_array_equal(xa.softmax_extract(s, threshold), expected)
    np.testing.assert_array_equal(twin(s, "softmax", threshold=threshold), expected)
    same_through_batches([s], "softmax", [expected], threshold=threshold)
