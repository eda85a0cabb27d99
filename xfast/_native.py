"""The one kernel loader: each compiled kernel or its plain-Python twin, chosen by one rule.

Every kernel ``csrc/<name>.pyx`` is built as the extension ``<owner>.<name>`` beside the
module that owns it (setup.py's ``OWNERS``), with a twin ``<owner>.<name>_py`` of the same
signatures and results. Each owner calls :func:`load` once at its module top::

    _kernel = load("xfast.align", "_align")

The rule, the same for every kernel:

- ``XFAST_PURE_PYTHON=1`` selects every twin (the test oracle; no compiler needed);
- otherwise the compiled extension, and the twin only when the extension is *missing* (not
  built, or built for another Python): an ImportError raised while the extension itself loads
  (a broken build, a missing symbol, an import inside it that fails) propagates, so a broken
  install is never silently replaced by code 10-100x slower.

Numba kernels are compiled when first used, not imported: their owner asks
:func:`use_numba` once instead. Every choice is recorded; :func:`implementations` reads them
(tests and benchmarks print which code ran).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["ENV", "COMPILED", "CHOSEN", "load", "use_numba", "pure_python", "implementations"]

#: The environment variable that selects every plain-Python twin (when set to ``1``).
ENV = "XFAST_PURE_PYTHON"
#: What :func:`implementations` says of a kernel that runs compiled.
COMPILED = "compiled"

#: kernel (``"xfast.align._align"``) -> ``"compiled"``, ``"python (XFAST_PURE_PYTHON=1)"``
#: or ``"python (not built)"``; filled as the owners are imported.
CHOSEN: dict[str, str] = {}


def pure_python() -> bool:
    """Whether ``XFAST_PURE_PYTHON=1`` asks for the plain-Python twins."""
    return os.environ.get(ENV) == "1"


def load(owner: str, name: str) -> ModuleType:
    """The kernel module ``owner.name`` (``load("xfast.align", "_align")``): the compiled
    extension, or its twin ``owner.name_py`` under ``XFAST_PURE_PYTHON=1`` or when the
    extension is not built. An ImportError raised from inside the extension propagates."""
    kernel = f"{owner}.{name}"
    if pure_python():
        return _twin(kernel, f"python ({ENV}=1)")
    try:
        module = importlib.import_module(kernel)
    except ModuleNotFoundError as err:
        if err.name != kernel:  # something the extension imports is missing: not ours to hide
            raise
        return _twin(kernel, "python (not built)")
    CHOSEN[kernel] = COMPILED
    return module


def use_numba(kernel: str) -> bool:
    """Whether to run the Numba form of ``kernel`` (``"xfast.align.scores.link_scores"``,
    compiled when first called) rather than its twin; the twin only under
    ``XFAST_PURE_PYTHON=1`` (Numba is a dependency, never missing)."""
    CHOSEN[kernel] = f"python ({ENV}=1)" if pure_python() else COMPILED
    return CHOSEN[kernel] == COMPILED


def implementations() -> dict[str, str]:
    """Which code runs each kernel loaded so far: ``{"xfast.align._align": "compiled", ...}``."""
    return dict(sorted(CHOSEN.items()))


def _twin(kernel: str, why: str) -> ModuleType:
    module = importlib.import_module(kernel + "_py")
    CHOSEN[kernel] = why
    return module
