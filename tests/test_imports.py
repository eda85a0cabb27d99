"""Every module imports on its own, in any order, and ``import xfast`` stays light.

Each order runs in a fresh interpreter: an import circle that a warm ``sys.modules`` hides, or a
module that only works after another was imported first, fails here.
"""

import json
import random
import subprocess
import sys

import pytest

from tests._structure import read

MODULES = sorted(m for m in read() if not m.endswith("__main__"))  # __main__ runs the CLI
#: runtimes that cost seconds to import or are optional extras: never loaded by ``import xfast``
HEAVY = ("torch", "onnxruntime", "ctranslate2", "transformers", "numba", "scipy", "fastapi", "ray", "pyarrow",
         "matplotlib", "tokenizers")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_module_imports_in_a_shuffled_order(seed):
    order = MODULES[:]
    random.Random(seed).shuffle(order)
    _run(f"import importlib\nfor m in {order!r}:\n    importlib.import_module(m)")


def test_each_module_imports_alone():
    """Each module first in its own interpreter (batched: one process imports one module, then
    reports, so a failure names its module)."""
    code = ("import importlib, json, subprocess, sys\n"
            f"bad = {{}}\nfor m in {MODULES!r}:\n"
            "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)\n"
            "    if r.returncode:\n        bad[m] = r.stderr.strip().splitlines()[-1]\n"
            "print(json.dumps(bad))")
    assert json.loads(_run(code)) == {}


def test_import_xfast_loads_no_heavy_runtime():
    loaded = json.loads(_run(f"import sys, json, xfast\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"))
    assert loaded == []


def test_public_names_keep_their_earlier_homes():
    """Names docs/api.md showed at their earlier paths still import from there, as the same objects."""
    from xfast.pipelines.engines.ray import RaySettings
    from xfast.pipelines.ray_engine import RaySettings as OldRaySettings
    from xfast.pipelines.runner import ProjectionConfig as OldConfig
    from xfast.project.config import ProjectionConfig

    assert OldConfig is ProjectionConfig and OldRaySettings is RaySettings
