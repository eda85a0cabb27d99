"""How xfast talks to Ray: starting or joining a cluster (Ray's token authentication
included), Ray's own lines on stderr, and a worker's failure turned into an xfast error that
names its shard and its cause.

:mod:`xfast.pipelines.engines.ray` calls these; nothing here imports Ray at module level (it is
an optional extra): the functions that need it take the ``ray`` module, and the worker-side
classes import it where they run.

- :func:`start` / :func:`join`: ``ray.init`` with Ray's start-up lines held back where asked,
  and a join that fails because the cluster wants a token says what to set ([E532]).
- :func:`dropping_benign_lines`: this process's stderr passed through a filter that drops the
  one error-level line Ray's C++ core prints for every Ray Data actor pool that may restart
  (:data:`BENIGN`), so that a healthy run prints no error.
- :class:`ShardGuard`: wraps a pipeline's worker class in the actor pool: a Python exception
  (in its constructor or on a shard) comes back as a row naming the shard, the node and the
  exception's type and first line ([E533]); a shard whose worker dies more often than
  ``tries`` allows is refused ([E534]). Ray Data restarts a dead actor and retries its shard
  by itself; counting the tries per shard (:class:`ShardAttempts`) replaces the restart cap
  that Ray Data only takes through its deprecated ``ray_remote_args``.
- :func:`reason_of`: what any other Ray exception says, without Ray's retry-configuration hint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from xfast.errors import ParameterError, msg

__all__ = ["start", "join", "join_error", "dropping_benign_lines", "BENIGN", "ShardGuard", "ShardAttempts",
           "failure_of", "reason_of", "LOGS"]

#: where a node keeps Ray's logs by default (a worker names its own node's)
LOGS = "/tmp/ray/session_latest/logs"

#: a line of Ray's C++ log: ``[2026-01-01 12:00:00,000 W 123 456] file.cc:1: ...`` (group 1: its level)
_RAY_LINE = re.compile(r"\[\d{4}-\d\d-\d\d [\d:,.]+ ([DIWEF]) \d+ \d+\] ")

#: Ray Data creates its pool's actors with constructor arguments in the object store (its own
#: context and UDF, held for the job's life) and Ray's core logs this at error level for any actor
#: that may restart (ray-project/ray#57733): true of every Ray Data actor pool, not a fault of the run
BENIGN = re.compile(rb"\[[^\]\n]*\] core_worker\.cc:\d+: Actor with class name: '[^'\n]*' and ID: '\w+' has "
                    rb"constructor arguments in the object store and max_restarts > 0\.[^\n]*")


# --------------------------------------------------------------------------- starting and joining


class _Held:
    """fd 2 (this process's and its children's stderr) written into a temporary file while the
    block runs; on leaving, its lines go to the real stderr, less those ``keep`` refuses.
    ``text``: everything that was written."""

    def __init__(self, keep: Callable[[str], bool] = lambda line: True) -> None:
        self.keep, self.text = keep, ""

    def __enter__(self) -> _Held:
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        for line in self.text.splitlines(keepends=True):
            if self.keep(line):
                sys.stderr.write(line)
        sys.stderr.flush()


def _no_notice(line: str) -> bool:
    """Not one of Ray's C++ lines at info or warning level."""
    m = _RAY_LINE.match(line)
    return not (m and m.group(1) in "DIW")


@contextlib.contextmanager
def _backend_level(hush: bool) -> Iterator[None]:
    """``--quiet``: Ray's C++ core logs only fatal errors in this process and those it starts,
    unless ``RAY_BACKEND_LOG_LEVEL`` says otherwise."""
    saved = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    if hush:
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        yield
    finally:
        if hush and saved is None:
            os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)


def start(ray, init: dict, *, hush: bool) -> None:
    """``ray.init(**init)`` for a new local cluster; ``hush`` (``--quiet``): Ray's start-up lines
    at info and warning level are held back (anything else printed meanwhile is passed on)."""
    with _backend_level(hush), (_Held(_no_notice) if hush else contextlib.nullcontext()):
        ray.init(**init)


def join(ray, address: str, init: dict, *, hush: bool) -> None:
    """``ray.init(address=address, **init)``. Ray's own lines are held while it joins: passed on
    when it worked (less info and warning ones with ``hush``), dropped when it failed, since
    they repeat one reason for up to 20 s; that reason, and what to do about it, is the
    :class:`ParameterError` raised: [E532] for a cluster that wants Ray's token, else [E206]."""
    held = _Held(_no_notice if hush else lambda line: True)
    with _backend_level(hush):
        try:
            with held:
                try:
                    ray.init(address=address, **init)
                except Exception:
                    held.keep = lambda line: not _RAY_LINE.match(line)
                    raise
        except Exception as err:  # noqa: BLE001 - any failure to join is the user's to fix
            raise ParameterError(join_error(address, err, held.text)) from None


def _token_source() -> str | None:
    """Where Ray would read this process's token from, in its own order; None when nowhere."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return path if Path(path).expanduser().is_file() else None
    home = Path.home() / ".ray" / "auth_token"
    return str(home) if home.is_file() else None


def join_error(address: str, err: BaseException, printed: str) -> str:
    """The message for a failed join: [E532] when the cluster refused for its token (Ray's
    ``InvalidAuthToken`` or ``AuthenticationError``), else [E206] with Ray's reason."""
    refused = type(err).__name__ == "AuthenticationError" or re.search(r"InvalidAuthToken|Unauthenticated",
                                                                        f"{printed}\n{err}")
    if not refused:
        return msg("E206", address=address, reason=reason_of(err))
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    source = _token_source()
    if mode == "token":
        why = (f"it refused the token from {source}" if source else "RAY_AUTH_MODE=token, but no token was found")
    else:
        why = ("with an explicit address Ray sends its token only when RAY_AUTH_MODE=token"
               + (f" (a token is in {source}, not sent)" if source else ", and this machine has no token"))
    return msg("E532", address=address, why=why)


# --------------------------------------------------------------------------- stderr while Ray works


@contextlib.contextmanager
def dropping_benign_lines(pattern: re.Pattern = BENIGN) -> Iterator[None]:
    """This process's stderr (fd 2, where Ray's C++ core logs) passed through a thread that
    drops whole lines matching ``pattern`` and passes everything else on unchanged, a partial
    line (a progress bar's redraw) at once unless it may be the start of one of Ray's lines.
    Only this process's own writes go through it (Ray's processes started before keep the real
    stderr). A no-op where fd 2 cannot be piped (not POSIX)."""
    if os.name != "posix":
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)
    thread = threading.Thread(target=_pass_lines, args=(r, real, pattern), name="xfast-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer gone, the thread passes what is left and ends
        thread.join(timeout=5)
        if not thread.is_alive():
            os.close(real)


def _pass_lines(r: int, out: int, pattern: re.Pattern) -> None:
    held = b""
    try:
        while True:
            ready, _, _ = select.select([r], [], [], 0.2 if held else None)
            if not ready:  # a partial line that waited long enough
                _write(out, held)
                held = b""
                continue
            chunk = os.read(r, 1 << 16)
            if not chunk:
                return
            *lines, held = (held + chunk).split(b"\n")
            for line in lines:
                m = pattern.search(line)
                if m is None:
                    _write(out, line + b"\n")
                elif line[:m.start()].strip():  # keep what came before it on the line (a bar)
                    _write(out, line[:m.start()])
            if held and not held.lstrip(b"\r").startswith(b"["):
                _write(out, held)
                held = b""
    except OSError:
        return
    finally:
        if held:
            _write(out, held)
        os.close(r)


def _write(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data):]


# --------------------------------------------------------------------------- a worker's failures


class ShardAttempts:
    """A small Ray actor that counts the tries of each shard (a worker that dies is restarted by
    Ray and its shard tried again, in another process: only something outside it can count)."""

    def __init__(self) -> None:
        self.tries: dict[int, int] = {}

    def begin(self, shard: int) -> int:
        """Count one more try of ``shard``; returns how many there have been."""
        self.tries[shard] = self.tries.get(shard, 0) + 1
        return self.tries[shard]


class ShardGuard:
    """A pipeline's worker class (``worker(**kwargs)``, called with a batch of tasks that each
    have a ``shard``) inside the actor pool, so that a failure comes back as a result: every
    row it returns has an ``error`` column, ``""`` when the shard worked, else the JSON of
    the error's catalogue code and fields (see :func:`failure_of`). The worker's traceback goes
    to the Ray worker's log (stderr) on its node."""

    def __init__(self, worker: type, kwargs: dict, attempts, tries: int) -> None:
        import ray  # an optional extra, present wherever this runs

        self.attempts, self.tries, self.ray = attempts, tries, ray
        self.node = ray.util.get_node_ip_address()
        try:
            self.logs = str(Path(ray.get_runtime_context().get_temp_dir()) / "session_latest" / "logs")
        except Exception:  # noqa: BLE001 - only for the message
            self.logs = LOGS
        self.inner, self.broken = None, ""
        try:
            self.inner = worker(**kwargs)
        except Exception as err:  # noqa: BLE001 - reported with every shard this actor is given
            traceback.print_exc()
            self.broken = f"the worker could not start: {_describe(err)}"

    def __call__(self, batch: dict) -> dict:
        shards = [int(s) for s in batch["shard"]]
        for s in shards:
            n = self.ray.get(self.attempts.begin.remote(s))
            if n > self.tries:
                return self._failed(batch, {"code": "E534", "shard": s, "died": n - 1, "logs": self.logs})
        if self.broken:
            return self._failed(batch, {"code": "E533", "shard": shards[0], "node": self.node,
                                        "reason": self.broken, "logs": self.logs})
        try:
            out = dict(self.inner(batch))
        except Exception as err:  # noqa: BLE001 - the driver reports it, naming the shard
            traceback.print_exc()
            return self._failed(batch, {"code": "E533", "shard": shards[0], "node": self.node,
                                        "reason": _describe(err), "logs": self.logs})
        out["error"] = np.array([""] * len(shards), dtype=object)
        return out

    @staticmethod
    def _failed(batch: dict, fields: dict) -> dict:
        n = len(batch["shard"])
        return {"shard": batch["shard"], "error": np.array([json.dumps(fields)] * n, dtype=object)}


def failure_of(row: dict) -> str | None:
    """The message of a :class:`ShardGuard` row's failure ([E533] or [E534]), or None."""
    text = row.get("error")
    if not text:
        return None
    fields = json.loads(text)
    return msg(fields.pop("code"), **fields)


def _describe(err: BaseException) -> str:
    """``Type: first line of the message`` (the message alone when it is empty)."""
    line = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
    return f"{type(err).__name__}: {line[:500]}" if line else type(err).__name__


#: lines Ray adds to an exception that say nothing of its cause
_RAY_BOILERPLATE = re.compile(r"^(To change retry attempts|Failed to apply UDF transform|UDF failed to process|"
                              r"The above exception|During handling|Traceback|File |\^|~|\.\.\.)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reason_of(err: BaseException) -> str:
    """What a Ray exception says about its cause: the innermost exception Ray kept
    (``RayTaskError.cause``, ``__cause__``), as ``Type: message``; where only a worker's
    traceback text is left, its first exception line. Never Ray's retry-configuration hint."""
    seen = 0
    while seen < 10:
        inner = getattr(err, "cause", None) or err.__cause__
        if not isinstance(inner, BaseException):
            break
        err, seen = inner, seen + 1
    lines = [ln.strip() for ln in _ANSI.sub("", str(err)).splitlines()]
    lines = [ln for ln in lines if ln and not _RAY_BOILERPLATE.match(ln) and not ln.startswith("ray::")]
    raised = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failed|Warning)"
                                             r"\b(\(\w+\))?:", ln)]
    if raised:  # a traceback's text: its first exception is the cause
        return raised[0][:500]
    line = lines[0][:500] if lines else ""
    return f"{type(err).__name__}: {line}" if line else type(err).__name__
