"""The one place that imports optional extras (pyarrow, ray, fastapi, matplotlib, ...).

An optional package is imported where a feature needs it, through :func:`require`, which says
how to install it when it is missing ([E204] with the ``pip install "xfast[extra]"`` line);
:func:`available` asks without importing. ``import xfast`` loads none of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from xfast.errors import ParameterError, msg

__all__ = ["require", "available"]


def require(module: str, *, what: str, extra: str) -> ModuleType:
    """``module`` imported (``require("pyarrow.parquet", what="Parquet files", extra="parquet")``),
    or :class:`~xfast.errors.ParameterError` [E204]: ``what`` needs the missing package,
    installed with ``pip install "xfast[extra]"``."""
    top = module.partition(".")[0]
    if not available(top):
        raise ParameterError(msg("E204", what=what, missing=top, extra=extra))
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = (getattr(err, "name", None) or module).partition(".")[0]
        raise ParameterError(msg("E204", what=what, missing=missing, extra=extra)) from None


def available(module: str) -> bool:
    """Whether ``module`` (a top-level package name) is installed, without importing it."""
    return importlib.util.find_spec(module) is not None
