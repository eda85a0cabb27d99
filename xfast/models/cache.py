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
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path

from xfast.errors import ModelError, XfastError, msg

__all__ = ["cache_dir", "content_hash", "package_versions", "atomic_dir"]

#: packages whose versions change what an export contains
_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime")
_CHUNK = 1 << 22
# (path, size, mtime_ns) -> sha256 of the bytes: hashing a 500 MB weight file once per
# process, not once per lookup; persisted in the cache so a new process skips it too
_memo: dict[str, str] = {}


def quiet() -> bool:
    """Whether notices about building and exporting models are silenced (``xfast ... --quiet``
    sets ``XFAST_QUIET=1``)."""
    return os.environ.get("XFAST_QUIET") == "1"


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


#: Manifest file of every tagger/translator export (kind, key, source, settings).
EXPORT_MANIFEST = "xfast-export.json"


def cached_export(kind: str, hf_dir: str | Path, out_dir: str | Path | None, *, marker: str,
                  settings: dict, key_extra: dict, build: Callable[[Path, Path], None]) -> Path:
    """Build (or reuse) an export of the Hugging Face directory ``hf_dir``.

    The key hashes the source files, the package versions, ``kind`` and ``key_extra``; without
    ``out_dir`` the export lives in the cache as ``exports/<kind>-<key>``. An existing export
    whose ``marker`` file exists and whose manifest has the same key is returned as it is;
    otherwise ``build(hf_dir, tmp)`` writes it into a temporary directory, which gets the
    manifest (``settings`` included) and is renamed into place. Failures other than xfast's
    own become :class:`ModelError` [E432].
    """
    hf_dir = Path(hf_dir)
    if not (hf_dir / "config.json").is_file():
        raise ModelError(msg("E401", name=str(hf_dir), reason="no config.json: not a Hugging Face model directory"))
    key = content_hash(hf_dir, extra={"kind": kind, **key_extra})
    out = Path(out_dir) if out_dir is not None else cache_dir() / "exports" / f"{kind}-{key}"
    if _export_ok(out, marker, key):
        return out
    if out.exists():
        if not (out / EXPORT_MANIFEST).is_file():  # not an export: never delete what xfast did not make
            raise ModelError(msg("E414", what=f"{kind} to {out}",
                                 reason="the directory exists and is not an xfast export; choose another --out"))
        shutil.rmtree(out)
    try:
        with atomic_dir(out) as tmp:
            build(hf_dir, tmp)
            manifest = {"kind": kind, "key": key, "source": str(hf_dir), **settings}
            (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=1))
    except XfastError:
        raise
    except Exception as exc:
        raise ModelError(msg("E432", what=kind, path=str(hf_dir), reason=f"{type(exc).__name__}: {exc}")) from exc
    return out


def _export_ok(out: Path, marker: str, key: str) -> bool:
    try:
        return (out / marker).is_file() and json.loads((out / EXPORT_MANIFEST).read_text())["key"] == key
    except (OSError, ValueError, KeyError):
        return False
