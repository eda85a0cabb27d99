"""An installed xfast writes nothing into its own package folder, and the ``xfast`` command works
from any folder, a clone's parent included (where a folder named ``xfast`` is not the package)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import xfast

PACKAGE = Path(xfast.__file__).resolve().parent
XFAST = Path(sys.executable).with_name("xfast")


def _package_files() -> set[Path]:
    return {p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix != ".pyc"}


def test_numba_kernels_cache_under_xfast_cache(tmp_path):
    """Numba's compiled kernels go to ``$XFAST_CACHE/numba``, never beside the package's source
    (a ``__pycache__`` folder left in site-packages shadows the next, editable, install)."""
    before = _package_files()
    code = ("import numpy as np; from xfast.align.scores import link_scores; "
            "s = [np.ones((2, 4), np.float32)]; w = [np.arange(2)]; "
            "print(link_scores(s, w, s, w, [np.array([[0, 1]])])[0][0])")
    env = {**os.environ, "XFAST_CACHE": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("XFAST_PURE_PYTHON", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert np.isclose(float(out.stdout), 1.0)
    assert list((tmp_path / "cache" / "numba").rglob("*.nbi")), "no Numba index under XFAST_CACHE"
    assert _package_files() == before, sorted(map(str, _package_files() - before))
    assert not [p for p in PACKAGE.rglob("*") if p.suffix in (".nbi", ".nbc")]


def test_command_from_a_clone_parent(tmp_path):
    """From the parent of a clone named ``xfast`` (a folder without ``__init__.py``), the command
    still runs the installed package."""
    clone = tmp_path / "xfast"
    (clone / "xfast").mkdir(parents=True)
    (clone / "setup.py").write_text("", encoding="utf-8")
    env = {**os.environ, "XFAST_QUIET": "1"}
    out = subprocess.run([str(XFAST), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and xfast.__version__ in out.stdout, out.stderr
