"""The machine, the table and the files of ``xfast bench-reference``."""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["COLUMNS", "PACKAGES", "format_table", "machine", "write_outputs"]

#: the CSV columns, in order (a row may lack the F1 and file columns)
COLUMNS = ("stage", "items", "total", "equal", "reference_s", "xfast_s", "speedup", "reference_f1", "xfast_f1",
           "files_identical", "reference_batch", "note")
#: versions recorded beside the table
PACKAGES = ("xfast", "simalign", "torch", "transformers", "tokenizers", "onnxruntime", "numpy", "scipy",
            "networkx", "scikit-learn", "seqeval", "datasets", "evaluate", "awesome-align", "mlflow")


def _cpu() -> tuple[str, list[str]]:
    """CPU model name and its AVX2 / AVX-512 flags (Linux /proc/cpuinfo; elsewhere the platform's
    processor string and no flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    name, flags = "", []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key == "flags" and not flags:
            flags = sorted(f for f in value.split() if f == "avx2" or f.startswith("avx512"))
    return name or platform.machine(), flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """CPU (model name, AVX2 / AVX-512 flags, cores this process may use), Python and package
    versions."""
    name, flags = _cpu()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": name, "cpu_flags": flags, "cores": cores, "python": sys.version.split()[0],
            "platform": platform.platform(), "packages": {p: _version(p) for p in PACKAGES if _version(p)}}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_table(result: dict) -> str:
    """The rows as one table (stage, items, equal/total, reference s, xfast s, speed-up, notes),
    then the skipped stages and what was run where."""
    head = ("stage", "items", "equal/total", "reference s", "xfast s", "speed-up", "notes")
    lines = []
    for row in result["rows"]:
        notes = []
        if "reference_f1" in row:
            notes.append(f"F1 {row['reference_f1']:.4f} / {row['xfast_f1']:.4f}")
        if "files_identical" in row:
            notes.append("label files identical" if row["files_identical"] else "label files differ")
        if row.get("note"):
            notes.append(row["note"])
        speed = "-" if row["speedup"] is None else f"{row['speedup']:.1f}x"
        lines.append((row["stage"], row["items"], f"{row['equal']}/{row['total']}", _seconds(row["reference_s"]),
                      _seconds(row["xfast_s"]), speed, "; ".join(notes)))
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head) - 1)]
    out = []
    for k, cells in enumerate([head, *lines]):
        left = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        out.append("  ".join(left + [cells[-1]]).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths) + "  -----")
    for skip in result["skipped"]:
        out.append(f"skipped {skip['stage']}: {skip['reason']}")
    m, ref = result["machine"], result["reference"]
    out.append(f"\nCPU: {m['cpu']} ({m['cores']} cores; {' '.join(m['cpu_flags']) or 'no AVX2/AVX-512'})")
    out.append(f"reference: {ref['path']} at {ref['commit'] or 'an unknown commit (no .git)'}; "
               f"simalign {m['packages'].get('simalign', '?')} {ref['simalign']}")
    for note in ref["placeholders"]:
        out.append(f"placeholder: {note}")
    s = result["settings"]
    out.append(f"encoder: {s['model']} (layer {s['layer']}, bpe, float32, CPU); {s['pairs']} pairs "
               f"en->{s['lang']} from {s['data']}")
    return "\n".join(out)


def write_outputs(result: dict, out: Path) -> dict[str, str]:
    """``bench-reference.json`` (everything) and ``bench-reference.csv`` (the rows) under ``out``;
    their paths are added to ``result`` as ``outputs`` first, so the JSON file holds them too."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench-reference.json", "csv": out / "bench-reference.csv"}
    result["outputs"] = {k: str(v) for k, v in paths.items()}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["rows"])
    return {k: str(v) for k, v in paths.items()}
