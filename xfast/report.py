"""Human-readable tables for scores and run reports."""

from __future__ import annotations

__all__ = ["format_scores", "format_table"]


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
        out += f"\nproj_ratio     {result['proj_ratio']:.4f}"
    return out
