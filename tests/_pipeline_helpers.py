"""What the pipeline tests share: the shared data directory and short slices of its test sets."""

from __future__ import annotations

from pathlib import Path

from xfast.io import read_conll, write_conll

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def head_conll(source: Path, n: int, out: Path) -> Path:
    """Write the first ``n`` sentences of CoNLL ``source`` to ``out``; returns ``out``."""
    write_conll(out, (s for _, s in zip(range(n), read_conll(source))))
    return out
