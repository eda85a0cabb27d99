"""What a finished run leaves beside its outputs: ``manifest.json`` (inputs, settings, models,
versions and the run key), ``qa.json``, ``metrics.csv``/``metrics.json`` (one row per variant,
the paper's results layout, docs/qa.md) and ``run.json`` (this process's timings).

:func:`write_summaries` is the one writer of those files for every pipeline.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np

from xfast import __version__
from xfast.evaluate import ScoreCounts
from xfast.io.files import atomic_open
from xfast.io.readers import input_files
from xfast.report import write_metrics_csv

__all__ = ["file_sha256", "versions", "write_json", "default_ignore", "describe", "metrics_row", "write_summaries"]

def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks; for an input of several shards (a
    folder or a glob pattern, :func:`~xfast.io.readers.input_files`), SHA-256 of its shards'
    digests in reading order (their contents and order count, not their names)."""
    files = input_files(path)
    if len(files) > 1 or files[0] != Path(path):
        return hashlib.sha256("\n".join(_sha256(f) for f in files).encode("ascii")).hexdigest()
    return _sha256(path)


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of xfast, Python and the packages that decide results."""
    out = {"xfast": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "onnxruntime", "ctranslate2", "tokenizers", "transformers", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=1, default=_jsonable)
        fh.write("\n")


def _jsonable(obj: object):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def default_ignore(dataset: str) -> tuple[str, ...]:
    """Types ignored at evaluation by default: DATE for MasakhaNER (docs/evaluation.md), else none."""
    return ("DATE",) if "masakhaner" in dataset.lower() else ()


def describe(mode: str, align_method: str, method: str) -> dict[str, str]:
    """The reference CSV's descriptor columns of a pipeline variant.

    ``mode`` is ``src2tgt``, ``tgt2tgt`` or ``model_transfer``; ``method`` a projection method.
    """
    if mode == "model_transfer":
        return {"pipeline_type": "model_transfer", "aligner": "", "candidate_matching": "",
                "candidate_selection": ""}
    aligner = "awesome" if align_method == "softmax" else "simalign"
    if method == "heuristic":
        kind = "align_src" if mode == "src2tgt" else "align_tgt"
        return {"pipeline_type": kind, "aligner": aligner, "candidate_matching": "", "candidate_selection": ""}
    selection, matching = method.split("-")
    return {"pipeline_type": "candidates" if mode == "src2tgt" else "backtrans_candidates", "aligner": aligner,
            "candidate_matching": "argmax" if matching == "greedy" else matching,
            "candidate_selection": "dummy" if selection == "ngram" else selection}


def metrics_row(counts: ScoreCounts, *, lang: str, dataset: str, variant: dict[str, str],
                extra: dict | None = None) -> dict:
    """Scores (docs/evaluation.md) and ``proj_ratio`` of ``counts`` (gold against predictions,
    absorbed window by window from :meth:`~xfast.evaluate.ScoreCounts.of_labels` with the types
    to ignore) plus the descriptor columns, as one CSV row."""
    row = counts.result()
    row.update({"lang": lang, "task": "pipeline_eval", "eval_type": "compare_to_original", "dataset": dataset})
    row.update(variant)
    row.update(extra or {})
    return row


def write_summaries(out: Path, *, qa: dict, manifest: dict, metrics: list[dict] | None = None, dataset: str = "",
                    metrics_json: list[dict] | None = None, run: dict | None = None) -> None:
    """Write a finished run's summary files into ``out``: ``qa.json`` and ``manifest.json``;
    ``metrics.csv`` when there are ``metrics`` rows (the paper's columns for ``dataset``);
    ``metrics.json`` when ``metrics_json`` rows are given; ``run.json`` when ``run`` is."""
    if metrics:
        write_metrics_csv(out / "metrics.csv", metrics, dataset=dataset)
    if metrics_json:
        write_json(out / "metrics.json", metrics_json)
    write_json(out / "qa.json", qa)
    write_json(out / "manifest.json", manifest)
    if run is not None:
        write_json(out / "run.json", run)
