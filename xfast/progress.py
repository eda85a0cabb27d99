"""Progress on stderr, one behaviour for every pipeline: a tqdm bar on a terminal (or in a
notebook); elsewhere (a log file, a pipe, a batch job) a plain line at most every
:data:`LOG_INTERVAL_S` seconds and one final line, instead of a ``\\r`` update per batch.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

__all__ = ["progress_bar", "LOG_INTERVAL_S"]

#: seconds between two progress lines when stderr is not a terminal
LOG_INTERVAL_S = 30.0

_clock = time.monotonic


def progress_bar(desc: str, total: int, *, unit: str, initial: int = 0, enabled: bool = True,
                 transient: bool = False):
    """A progress counter of ``total`` ``unit``\\ s (``"pair"``, ``"sent"``) that starts at
    ``initial``: ``update(n)``, a settable ``n``, ``refresh()``, ``close()``, and a ``with``
    block that closes it. Shown as ``desc: n/total units (pct%), rate units/s, elapsed`` with
    the time left; ``transient``: a terminal bar is cleared when done. Nothing is shown when
    ``enabled`` is False."""
    if enabled and _interactive():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=not transient,
                    bar_format="{l_bar}{bar}| {n:,.0f}/{total:,} " + unit + "s [{elapsed}<{remaining}, {rate_fmt}]")
    return _Lines(desc, total, unit, initial, enabled)


def _interactive() -> bool:
    """Whether a redrawn bar can be seen: stderr is a terminal, or this is a notebook."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False
    from tqdm import autonotebook, std

    return autonotebook.tqdm is not std.tqdm


class _Lines:
    """The progress of a run whose stderr is a log: a line at most every
    :data:`LOG_INTERVAL_S` seconds, and the final line once when closed without an error."""

    def __init__(self, desc: str, total: int, unit: str, initial: int, enabled: bool) -> None:
        self.desc, self.total, self.unit, self.n = desc, total, unit, initial
        self._start_n, self._enabled, self._closed = initial, enabled, False
        self._t0 = self._last = _clock()

    def update(self, n: float = 1) -> None:
        """Add ``n`` done."""
        self.n += n
        self.refresh()

    def refresh(self) -> None:
        """Print a line if the last one is at least :data:`LOG_INTERVAL_S` old."""
        now = _clock()
        if self._enabled and not self._closed and now - self._last >= LOG_INTERVAL_S:
            self._last = now
            self._print(now, final=False)

    def close(self) -> None:
        """Print the final line (once)."""
        if self._enabled and not self._closed:
            self._print(_clock(), final=True)
        self._closed = True

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        self._closed = True  # an error says the rest

    def _print(self, now: float, *, final: bool) -> None:
        elapsed = max(now - self._t0, 1e-9)
        rate = (self.n - self._start_n) / elapsed
        units = f"{self.unit}s"
        line = f"{self.desc}: {self.n:,.0f}/{self.total:,} {units}"
        if self.total:
            line += f" ({100 * self.n / self.total:.0f}%)"
        line += f", {rate:,.1f} {units}/s, {_duration(elapsed)}"
        if not final and rate > 0 and self.total > self.n:
            line += f", about {_duration((self.total - self.n) / rate)} left"
        print(line, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
