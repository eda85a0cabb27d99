"""The extraction passes' instruction-set level: chosen once per process at import, by
``XFAST_SIMD`` or by timing AVX-512 against AVX2 where the CPU has both (every level gives the
same pairs: tests/test_align_parity.py runs each one)."""

import json
import os
import subprocess
import sys

import pytest

from tests._simd import simd_levels

LEVELS = simd_levels()
needs_kernel = pytest.mark.skipif(not LEVELS, reason="the compiled alignment kernel is not built")


def _choice(**env) -> tuple[dict, str]:
    run = subprocess.run([sys.executable, "-c", "import json, xfast.align as a; print(json.dumps(a.simd()))"],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(run.stdout), run.stderr


@needs_kernel
@pytest.mark.parametrize("name", ["portable", "avx2", "avx512"])
def test_xfast_simd_names_a_level_up_to_the_cpus_best(name):
    got, _ = _choice(XFAST_SIMD=name)
    wanted = {"portable": 0, "avx2": 1, "avx512": 2}[name]
    assert got["chosen_by"] == "XFAST_SIMD" and got["level"] == min(wanted, max(LEVELS))


@needs_kernel
def test_auto_times_both_levels_where_the_cpu_has_avx512():
    got, _ = _choice(XFAST_SIMD="auto")
    if max(LEVELS) < 2:
        assert got == {"level": max(LEVELS), "name": ["portable", "avx2"][max(LEVELS)], "chosen_by": "the CPU's best"}
        return
    assert got["chosen_by"] == "timing" and set(got["seconds"]) == {"avx2", "avx512"}
    faster = min(got["seconds"], key=got["seconds"].get)
    assert got["name"] == faster or got["seconds"]["avx2"] >= 0.97 * got["seconds"]["avx512"]


@needs_kernel
def test_an_unknown_value_warns_and_times_instead():
    got, err = _choice(XFAST_SIMD="sse9")
    assert "XFAST_SIMD='sse9'" in err and got["chosen_by"] in ("timing", "the CPU's best")


def test_without_the_kernel_there_is_no_level():
    got, _ = _choice(XFAST_PURE_PYTHON="1")
    assert got == {"level": None, "name": "python", "chosen_by": "no compiled kernel"}
