"""The one kernel loader (xfast/_native.py): every kernel owner follows XFAST_PURE_PYTHON, a
missing extension falls back to its twin, and a broken one is never silently replaced."""

import ast
import json
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest

from xfast import _native
from xfast._optional import available, require
from xfast.errors import ParameterError

REPO = Path(__file__).resolve().parents[1]
#: the modules that own a kernel, each loading it once at its top
OWNERS = ["xfast.align", "xfast.align.scores", "xfast.project", "xfast.io", "xfast.evaluate", "xfast.models.encoder"]
NUMBA = "xfast.align.scores.link_scores"


def _setup_kernels() -> dict[str, str]:
    """setup.py's OWNERS table: kernel stem -> owning package."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "OWNERS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no OWNERS table")


KERNELS = sorted(f"{pkg}.{stem}" for stem, pkg in _setup_kernels().items())


def _chosen(pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != _native.ENV}
    if pure:
        env[_native.ENV] = "1"
    code = (f"import importlib, json\nfor m in {OWNERS!r}:\n    importlib.import_module(m)\n"
            "from xfast._native import implementations\nprint(json.dumps(implementations()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_every_kernel_of_setup_py_is_loaded_through_the_loader():
    assert set(_chosen(pure=True)) == {*KERNELS, NUMBA}


def test_without_the_variable_each_built_kernel_runs_compiled():
    want = {k: _native.COMPILED if find_spec(k) is not None else "python (not built)" for k in KERNELS}
    assert _chosen(pure=False) == {**want, NUMBA: _native.COMPILED}


def test_xfast_pure_python_selects_every_twin():
    assert _chosen(pure=True) == {k: "python (XFAST_PURE_PYTHON=1)" for k in [*KERNELS, NUMBA]}


def test_the_owners_hold_the_module_the_loader_chose():
    code = textwrap.dedent("""
        import json, xfast.align as A, xfast.project as P, xfast.io.conll as C, xfast.evaluate as E
        import xfast.models.encoder as M
        print(json.dumps([A._kernel.__name__, A._sim.__name__, P._K.__name__, C._K.__name__,
                          E._kernel.__name__, M._pack.__name__, M._wordcache.__name__]))
    """)
    env = {**os.environ, _native.ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert all(name.endswith("_py") for name in json.loads(out.stdout))


# ------------------------------------------------------------------ the rule, on fake kernels
@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A package ``fakeowner_<n>`` on sys.path; ``make(kernel_source)`` writes its ``_k``
    (None: not built) beside the twin ``_k_py`` and returns the package name."""
    made = []

    def make(source: str | None) -> str:
        name = f"fakeowner_{tmp_path.name}_{len(made)}".replace("-", "_")
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "_k_py.py").write_text("WHO = 'twin'\n")
        if source is not None:
            (pkg / "_k.py").write_text(source)
        made.append(name)
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(_native.ENV, raising=False)
    yield make
    for name in made:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]
        for key in [k for k in _native.CHOSEN if k.startswith(name + ".")]:
            del _native.CHOSEN[key]


def test_a_built_kernel_is_loaded(fake):
    owner = fake("WHO = 'compiled'\n")
    assert _native.load(owner, "_k").WHO == "compiled"
    assert _native.implementations()[f"{owner}._k"] == "compiled"


def test_a_missing_kernel_falls_back_to_its_twin(fake):
    owner = fake(None)
    assert _native.load(owner, "_k").WHO == "twin"
    assert _native.implementations()[f"{owner}._k"] == "python (not built)"


def test_the_variable_selects_the_twin_of_a_built_kernel(fake, monkeypatch):
    owner = fake("WHO = 'compiled'\n")
    monkeypatch.setenv(_native.ENV, "1")
    assert _native.load(owner, "_k").WHO == "twin"
    assert _native.implementations()[f"{owner}._k"] == "python (XFAST_PURE_PYTHON=1)"


@pytest.mark.parametrize("source", [
    "raise ImportError('undefined symbol: simd_kernel_avx2')\n",  # what a broken build raises
    "import xfast_no_such_module_inside\n",                        # something the kernel needs is missing
    "from xfast.errors import no_such_name\n",                     # an import inside it fails
])
def test_a_broken_kernel_is_not_replaced_by_its_twin(fake, source):
    owner = fake(source)
    with pytest.raises(ImportError):
        _native.load(owner, "_k")
    assert f"{owner}._k" not in _native.implementations()


# ------------------------------------------------------------------ optional extras
def test_require_imports_an_installed_package():
    assert require("json", what="JSON", extra="none").dumps([1]) == "[1]"
    assert available("json") and not available("xfast_no_such_extra")


def test_require_says_how_to_install_a_missing_extra():
    with pytest.raises(ParameterError, match=r'\[E204\] the widget needs the package .xfast_no_such_extra.: '
                                             r'pip install "xfast\[widgets\]"'):
        require("xfast_no_such_extra.sub", what="the widget", extra="widgets")
