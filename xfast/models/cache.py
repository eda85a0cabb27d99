"""The model cache: where converted and exported models live, and how they are keyed.

Every artefact xfast derives from a model (the rebuilt e5-small, ONNX encoders, int8
variants) lives in its own directory under :func:`cache_dir`, named by a hash of the input
files' bytes and of the versions of the packages that produced it. A directory is written
under a temporary name and renamed when complete, so a killed run never leaves a half
export that a later run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

__all__ = ["cache_dir", "content_hash", "package_versions", "atomic_dir"]

#: packages whose versions change what an export contains
_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime")
_CHUNK = 1 << 22
# (path, size, mtime_ns) -> sha256 of the bytes: hashing a 500 MB weight file once per
# process, not once per lookup; persisted in the cache so a new process skips it too
_memo: dict[str, str] = {}


def cache_dir() -> Path:
    """Root of xfast's cache: ``$XFAST_CACHE`` or ``~/.cache/xfast`` (created on demand)."""
    root = os.environ.get("XFAST_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "xfast"
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape an export (``"none"`` if absent)."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def _memo_file() -> Path:
    return cache_dir() / "file-hashes.json"


def _load_memo() -> None:
    if _memo:
        return
    with contextlib.suppress(OSError, ValueError):
        _memo.update(json.loads(_memo_file().read_text()))


def _file_hash(path: Path) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    _load_memo()
    if key in _memo:
        return _memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    _memo[key] = digest = h.hexdigest()
    if st.st_size > (1 << 24):  # only big files are worth a disk write
        with contextlib.suppress(OSError):
            tmp = _memo_file().with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(_memo))
            os.replace(tmp, _memo_file())
    return digest


def _files(paths: Iterable[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()))
        else:
            out.append(p)
    return out


def content_hash(path_or_paths: str | Path | Iterable[str | Path], *, extra: object = None) -> str:
    """Hex digest of the files' bytes (directories: every file under them, by relative
    name) plus :func:`package_versions` and ``extra`` (any JSON-able value, e.g. a layer).
    """
    if isinstance(path_or_paths, (str, Path)):
        roots = [Path(path_or_paths)]
    else:
        roots = [Path(p) for p in path_or_paths]
    h = hashlib.sha256()
    for root in roots:
        for f in _files([root]):
            rel = f.relative_to(root).as_posix() if root.is_dir() else f.name
            h.update(rel.encode() + b"\0" + _file_hash(f).encode() + b"\0")
    h.update(json.dumps([package_versions(), extra], sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``final``; on success rename it to ``final``.

    On an exception the temporary directory is removed and ``final`` is untouched. If another
    process finished ``final`` first, its copy wins and ours is discarded.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a cache directory is not
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
