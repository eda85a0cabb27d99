"""File primitives shared by the readers and writers: line-wise decoding and atomic writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from xfast.errors import DataError, OutputError, XfastError, msg

__all__ = ["lines", "atomic_open", "make_dirs", "open_input"]


def open_input(path: str | Path):
    """``open(path, "rb")``; a missing or unreadable file is a :class:`DataError` naming it."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(path, None, msg("E110")) from None
    except IsADirectoryError:
        raise DataError(path, None, msg("E111", reason="it is a folder")) from None
    except OSError as err:
        raise DataError(path, None, msg("E111", reason=err.strerror or str(err))) from None


def make_dirs(path: str | Path) -> None:
    """``mkdir -p``; failing is an :class:`OutputError` naming the path and the reason."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(path, "exists and is not a folder") from None
    except OSError as err:
        raise OutputError(err.filename or path, err.strerror or str(err)) from None


def lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)``, decoding UTF-8 line by line (a leading BOM is skipped).

    A decoding error is a :class:`DataError` naming the file and the line.
    """
    with open_input(path) as fh:
        for no, raw in enumerate(fh, 1):
            if no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield no, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(path, no, msg("E101", encoding="UTF-8", reason=err.reason)) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, tmp_dir: str | Path | None = None) -> Iterator[TextIO]:
    """Open ``path`` for writing (``"w"`` text, ``"wb"`` bytes) under a temporary name; rename
    it into place on success, with the permissions the umask gives a new file.

    A killed or failing writer never leaves a half-written file at ``path``. ``tmp_dir``: where
    the temporary file lives (default: beside ``path``; on the same file system), for a writer
    that keeps it open long and wants what a kill leaves somewhere it is cleaned up.
    """
    path = Path(path)
    make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=tmp_dir or path.parent)
    except OSError as err:
        raise OutputError(path, err.strerror or str(err)) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        if mode == "wb":
            with os.fdopen(fd, "wb") as fh:
                yield fh
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                yield fh
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError) and not isinstance(err, XfastError):
            raise OutputError(path, err.strerror or str(err)) from None
        raise
