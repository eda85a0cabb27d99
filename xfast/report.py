"""Reports: human-readable tables for scores, and metrics CSVs in the paper's own layout."""

from __future__ import annotations

import csv
from pathlib import Path

from xfast.io.files import atomic_open

__all__ = ["format_scores", "format_table", "write_metrics_csv", "reference_layout"]

_METRICS = ("f1", "number", "precision", "recall")
_OVERALL = ("overall_accuracy", "overall_f1", "overall_precision", "overall_recall", "proj_ratio")
_DESCRIBE = ("pipeline_type", "dataset", "lang", "task", "eval_type", "aligner", "candidate_matching",
             "candidate_selection")


def _typed(types: tuple[str, ...]) -> list[str]:
    return [f"{t}_{m}" for t in types for m in _METRICS]


#: the columns of the paper's results CSVs (``reference-results/*_metrics.csv``), in their order;
#: ``""`` is the MasakhaNER file's unnamed index column
_LAYOUTS = {
    "masakhaner2": ["", "Duration", "Run ID", "Name", "Status", *_typed(("LOC", "ORG", "PER")), *_OVERALL,
                    "slurm_job", *_DESCRIBE],
    "europarl": ["Duration", "Run ID", "Name", "Status", *_typed(("LOC", "MISC", "ORG", "PER")), *_OVERALL,
                 "lang", "slurm_job", "task", "pipeline_type", "eval_type", "dataset", "aligner",
                 "candidate_matching", "candidate_selection"],
    "xtreme": ["Duration", "Run ID", "Name", "Status", *_typed(("LOC", "ORG", "PER")), *_OVERALL, "slurm_job",
               *_DESCRIBE],
}


def reference_layout(dataset: str) -> list[str]:
    """The paper's CSV columns for ``dataset`` (MasakhaNER's when the name is not known)."""
    name = dataset.lower()
    for key, aliases in (("europarl", ("europarl",)), ("xtreme", ("xtreme", "panx", "pan-x", "wikiann"))):
        if any(a in name for a in aliases):
            return list(_LAYOUTS[key])
    return list(_LAYOUTS["masakhaner2"])


def write_metrics_csv(path: str | Path, rows: list[dict], *, dataset: str = "") -> None:
    """Metrics rows as CSV: the paper's columns for ``dataset`` in its order, so rows append to
    its results files as they are, then xfast's own columns. Its index and ``Status``
    (``FINISHED``) are filled; ``Duration``, ``Run ID``, ``Name`` and ``slurm_job`` describe the
    paper's experiment tracker and stay blank (a rerun writes the same bytes)."""
    cols = reference_layout(dataset)
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    fixed = {"Status": "FINISHED"}
    with atomic_open(path) as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="", lineterminator="\n")
        w.writeheader()
        for i, r in enumerate(rows):
            w.writerow({**({"": i} if "" in cols else {}), **fixed, **r})


def format_table(header: list[str], rows: list[list[object]]) -> str:
    """Left-align the first column, right-align the rest; floats with 4 decimals."""
    cells = [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_scores(result: dict[str, float]) -> str:
    """A per-type precision/recall/F1 table with the overall row and token accuracy."""
    types = sorted(k[: -len("_number")] for k in result if k.endswith("_number"))
    rows: list[list[object]] = [
        [t, result[f"{t}_precision"], result[f"{t}_recall"], result[f"{t}_f1"], result[f"{t}_number"]]
        for t in types
    ]
    rows.append(["overall", result["overall_precision"], result["overall_recall"], result["overall_f1"],
                 sum(int(result[f"{t}_number"]) for t in types)])
    out = format_table(["type", "precision", "recall", "f1", "number"], rows)
    out += f"\ntoken accuracy {result['overall_accuracy']:.4f}"
    if "proj_ratio" in result:
        out += (f"\nproj_ratio     {result['proj_ratio']:.4f}  (predicted entities per gold entity, averaged over "
                "sentences; above 1 when more are predicted than exist)")
    return out
