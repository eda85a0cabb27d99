"""The alignment kernel's pass levels this CPU runs, for tests that check each of them."""

from __future__ import annotations

import pytest

import xfast.align as xa
from xfast.align import _align_py


def simd_levels() -> list[int]:
    """0 portable scans, 1 AVX2, 2 AVX-512, as far as the CPU goes (none without the extension)."""
    if xa._kernel is _align_py:
        return []
    before = xa._kernel._simd()
    top = xa._kernel._simd(2)
    xa._kernel._simd(before)
    return list(range(top + 1))


@pytest.fixture(params=simd_levels() or [pytest.param(0, marks=pytest.mark.skip("extension not built"))],
                ids=lambda lv: f"simd{lv}")
def simd_level(request):
    """The kernel with its passes capped at one level, as on a CPU that has no better."""
    before = xa._kernel._simd()
    assert xa._kernel._simd(request.param) == request.param
    yield request.param
    xa._kernel._simd(before)
