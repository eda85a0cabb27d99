"""An output folder that a run owns: resumable shards, final files, and no stale outputs.

A run writes its results shard by shard (``shard_size`` consecutive sentences) into
``OUT/.xfast-run/``: each shard's part of every output file, then a state file with the
run's cumulative counts after it. Every file is written under a temporary name and renamed,
and the state file is written last, so a shard either exists whole or not at all. A run
killed at any moment and started again with the same command finds the finished shards,
continues after the last one from its saved counts and ends with byte-identical outputs.
When every shard is done, each output is assembled from its parts (again by rename), the
summary files are written, and the shard folder is removed.

What a run is, is its key: a hash of its inputs' bytes, settings, models and versions.
``manifest.json`` records it. A folder that holds another run's outputs (another key, or a
manifest without one) is refused unless ``overwrite=True``, which first removes that run's
files (those its manifest or shard folder lists, nothing else); a file at one of this run's
output paths that no run recorded is refused the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from xfast.errors import OutputError, ParameterError, PipelineError, msg, short
from xfast.io.files import atomic_open, make_dirs
from xfast.io.parquet import append_parquet
from xfast.pipelines.manifest import write_json

__all__ = ["RunDir", "run_key", "check_name", "STATE_DIR"]

STATE_DIR = ".xfast-run"
SUMMARY_FILES = ("manifest.json", "metrics.json", "metrics.csv", "qa.json", "run.json")


_PLAIN_NAME = re.compile(r"[\w-][\w.-]{0,99}")


def check_name(param: str, name: object) -> str:
    """``name`` when it is a plain name that may become part of a file name inside a run's
    folder (letters, digits, ``_``, ``-`` and ``.``, not first; at most 100 characters; a
    language code is one), else :class:`ParameterError` [E215] naming ``param``: a name such as
    ``../x`` or ``de/../../x`` would write outside the folder, an empty one a hidden file."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
        raise ParameterError(msg("E215", name=param, value=short(name) if isinstance(name, str) else name))
    return name


def run_key(fields: dict) -> str:
    """A stable hash of everything a run's outputs depend on."""
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class RunDir:
    """The output folder of one run: ``outputs`` maps names to file paths inside ``out``."""

    def __init__(self, out: str | Path, key: str, outputs: dict[str, Path], *, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.key = key
        self.outputs = {k: Path(v) for k, v in outputs.items()}
        self.overwrite = overwrite
        self.state_dir = self.out / STATE_DIR

    # ------------------------------------------------------------------ opening
    def open(self) -> tuple[int, dict | None]:
        """Prepare the folder; returns ``(finished shards, state after the last of them)``.

        Raises :class:`PipelineError` [E521] when the folder holds another run's outputs
        (or files this run would overwrite) and ``overwrite`` is False.
        """
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(self.out, "exists and is not a folder")
        theirs = self._other_run()
        if theirs is not None:
            if not self.overwrite:
                raise PipelineError(msg("E521", path=self.out, what=theirs[0]))
            self._remove(theirs[1])
        strays = [p for p in self._mine() if p.exists()]
        if strays and not self.overwrite and not self._own_complete_run():
            raise PipelineError(msg("E521", path=self.out, what=f"{strays[0].name}, which no xfast run recorded"))
        make_dirs(self.out)
        record = self.state_dir / "run.json"
        if record.is_file():
            return self._finished()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        write_json(record, {"key": self.key, "outputs": {k: v.name for k, v in self.outputs.items()}})
        return 0, None

    def _mine(self) -> list[Path]:
        return list(self.outputs.values()) + [self.out / f for f in SUMMARY_FILES]

    def _own_complete_run(self) -> bool:
        manifest = self.out / "manifest.json"
        return manifest.is_file() and _read_json(manifest).get("run_key") == self.key

    def _other_run(self) -> tuple[str, list[Path]] | None:
        """``(description, its files)`` of another run in the folder, else None."""
        record = self.state_dir / "run.json"
        if record.is_file():
            rec = _read_json(record)
            if rec.get("key") != self.key:
                files = [self.out / n for n in rec.get("outputs", {}).values()] + [self.state_dir]
                return "an unfinished run with other inputs or settings", files
        elif self.state_dir.exists():
            return "an unfinished run's shards", [self.state_dir]
        manifest = self.out / "manifest.json"
        if manifest.is_file():
            man = _read_json(manifest)
            if man.get("run_key") != self.key:
                files = [Path(p) for p in man.get("outputs", {}).values() if isinstance(p, str)]
                files = [self.out / p.name for p in files]
                return ("the outputs of another run (other inputs or settings)",
                        files + [self.out / f for f in SUMMARY_FILES] + [self.state_dir])
        return None

    def _remove(self, files: Iterable[Path]) -> None:
        for p in files:
            if p.is_dir() and p.name == STATE_DIR:
                shutil.rmtree(p)
            elif p.is_file() and p.parent == self.out:
                p.unlink()

    def _finished(self) -> tuple[int, dict | None]:
        n = 0
        state = None
        while (self._state_path(n)).is_file():
            state = _read_json(self._state_path(n))
            n += 1
        return n, state

    # ------------------------------------------------------------------ shards
    def _state_path(self, index: int) -> Path:
        return self.state_dir / f"shard-{index:06d}.json"

    def _part(self, index: int, name: str) -> Path:
        return self.state_dir / f"shard-{index:06d}" / self.outputs[name].name

    def commit(self, index: int, parts: dict[str, bytes], state: dict) -> None:
        """Write shard ``index``: every output's part, then its state (the commit mark)."""
        for name, data in parts.items():
            with atomic_open(self._part(index, name), "wb") as fh:
                fh.write(data)
        write_json(self._state_path(index), state)

    def finish(self, n_shards: int) -> None:
        """Assemble every output from its ``n_shards`` parts (each file renamed into place);
        Parquet parts become one Parquet file with their rows in shard order."""
        for name, path in self.outputs.items():
            parts = [p for i in range(n_shards) if (p := self._part(i, name)).is_file()]
            with atomic_open(path, "wb") as fh:
                if path.suffix == ".parquet":  # one file of the parts' rows, not their bytes end to end
                    append_parquet(parts, fh)
                    continue
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, fh, 1 << 20)

    def close(self) -> None:
        """Remove the shards once the outputs and summaries are in place."""
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _read_json(path: Path) -> dict:
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}
