"""``xfast compare``: xfast's metrics rows beside the paper's published results rows.

Both sides are CSVs in the paper's results layout (``metrics.csv`` of a run folder,
docs/qa.md; the paper's ``*_metrics.csv``). Rows join on :data:`JOIN_KEY`; every row of
either side ends up in the comparison, those without a partner marked as such (docs/compare.md).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xfast.errors import DataError, ParameterError, check_choice, msg

__all__ = ["JOIN_KEY", "COLUMNS", "LANG_MATCHES", "FIGURES", "Comparison", "compare", "format_comparison",
           "write_compare_csv", "plot_comparison", "write_comparison"]

#: the columns both sides are joined on
JOIN_KEY = ("dataset", "lang", "pipeline_type", "aligner", "candidate_matching", "candidate_selection", "eval_type")
#: the columns of ``compare.csv``, in order
COLUMNS = ("status", *JOIN_KEY, "method", "variant", "run", "xfast_f1", "paper_f1", "diff", "xfast_precision",
           "xfast_recall", "paper_precision", "paper_recall", "reference_lang", "lang_match", "run_file",
           "run_line", "reference_file", "reference_line", "note")
#: ``exact``: languages join only when spelled alike; ``flores``: exact first, else by FLORES-200 code
LANG_MATCHES = ("flores", "exact")
#: compare.png: ``auto`` draws it when matplotlib is installed, ``always`` requires it, ``never`` skips it
FIGURES = ("auto", "always", "never")
MATCHED, XFAST_ONLY, REFERENCE_ONLY = "matched", "xfast only", "reference only"

#: the figure's size in inches and its resolution: compare.png is 1100 x 550 pixels
FIGURE_SIZE = (11.0, 5.5)
FIGURE_DPI = 100


@dataclass
class _Row:
    file: str
    line: int
    values: dict[str, str]
    f1: float | None
    precision: float | None
    recall: float | None
    run: str = ""

    def key(self, lang: str | None = None) -> tuple[str, ...]:
        return tuple(lang if (c == "lang" and lang is not None) else self.values[c] for c in JOIN_KEY)


@dataclass
class Comparison:
    """The joined rows (``compare.csv``'s, :data:`COLUMNS`) in printed order: matched, then
    xfast only, then reference only; ``notes``: duplicate keys and hints, one line each;
    ``runs``: the run folders (or files) as given."""

    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Rows with this ``status`` (``matched``, ``xfast only``, ``reference only``)."""
        return sum(r["status"] == status for r in self.rows)

    def __repr__(self) -> str:
        return (f"Comparison(matched={self.count(MATCHED)}, xfast_only={self.count(XFAST_ONLY)}, "
                f"reference_only={self.count(REFERENCE_ONLY)})")


def _number(text: str, path: str, line: int, column: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(path, line, msg("E116", column=column, value=text))
    return value


def _read(path: Path, what: str, run: str = "") -> list[_Row]:
    """The rows of one metrics CSV; E101/E110/E111 (unreadable), E115 (a join column missing),
    E116 (a score that is not a number), E109 (a row longer than the header), E117 (no header)."""
    from xfast.io.files import lines

    name = str(path)
    reader = csv.reader(t + "\n" for _, t in lines(path))
    try:
        header = next(reader, None)
        if not header:
            raise DataError(name, 1, msg("E117", what=what, reason="it has no header line"))
        missing = [c for c in (*JOIN_KEY, "overall_f1") if c not in header]
        if missing:
            raise DataError(name, 1, msg("E115", missing=missing, what=what, required=[*JOIN_KEY, "overall_f1"]))
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                raise DataError(name, reader.line_num, msg("E109", expected=len(header), got=len(cells)))
            values = dict(zip(header, cells))
            values.update({c: "" for c in header[len(cells):]})
            values.update({c: values[c].strip() for c in JOIN_KEY})
            f1, p, r = (_number(values.get(c, ""), name, reader.line_num, c)
                        for c in ("overall_f1", "overall_precision", "overall_recall"))
            rows.append(_Row(name, reader.line_num, values, f1, p, r, run))
    except csv.Error as err:
        raise DataError(name, reader.line_num, msg("E117", what=what, reason=str(err))) from None
    return rows


def _run_file(run: str | Path) -> Path:
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.csv"
        if not path.is_file():
            raise DataError(run, None, msg("E114"))
    elif not path.exists():
        raise DataError(run, None, msg("E113"))
    return path


def _norm_lang(lang: str) -> str:
    from xfast.models.flores import flores_code

    try:
        return flores_code(lang)
    except ParameterError:
        return lang.strip().lower()


def _method(values: dict[str, str]) -> str:
    return " ".join(values[c] for c in ("pipeline_type", "aligner", "candidate_matching", "candidate_selection")
                    if values[c])


def _variants(rows: list[_Row]) -> dict[int, str]:
    """For rows of one run sharing a join key: the ``xfast_*`` settings that tell them apart
    (their line when none does), keyed by ``id`` of the row."""
    groups: dict[tuple, list[_Row]] = {}
    for r in rows:
        groups.setdefault((r.file, r.key()), []).append(r)
    out = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        cols = sorted({c for r in group for c in r.values if c.startswith("xfast_")})
        differ = [c for c in cols if len({r.values.get(c, "") for r in group}) > 1]
        for r in group:
            out[id(r)] = (", ".join(f"{c[len('xfast_'):]}={r.values.get(c, '')}" for c in differ)
                          or f"line {r.line}")
    return out


def compare(runs: Sequence[str | Path], references: Sequence[str | Path], *, lang_match: str = "flores") -> Comparison:
    """Join the ``metrics.csv`` rows of ``runs`` (run folders, or metrics CSV files) with the
    rows of the ``references`` CSVs on :data:`JOIN_KEY`.

    Languages join exactly first; with ``lang_match="flores"`` a row with no exact partner then
    joins by FLORES-200 code (``de`` = ``deu`` = ``deu_Latn``). A key with several reference rows
    gives one compare row per pair, with a note; no row of either side is left out.
    """
    check_choice("lang_match", lang_match, LANG_MATCHES)
    if not runs or not references:
        raise ParameterError(msg("E202", name="runs" if not runs else "references",
                                 expected="at least one file", value=list(runs or references)))
    ours = [r for run in runs for r in _read(_run_file(run), "metrics", str(run))]
    theirs = [r for ref in references for r in _read(Path(ref), "reference")]
    exact: dict[tuple, list[_Row]] = {}
    normal: dict[tuple, list[_Row]] = {}
    for r in theirs:
        exact.setdefault(r.key(), []).append(r)
        normal.setdefault(r.key(_norm_lang(r.values["lang"])), []).append(r)
    variants = _variants(ours)
    out = Comparison(runs=[str(run) for run in runs])
    used: set[int] = set()
    matched, alone = [], []
    for r in ours:
        how, partners = "exact", exact.get(r.key(), [])
        if not partners and lang_match == "flores":
            how, partners = "flores", normal.get(r.key(_norm_lang(r.values["lang"])), [])
        note = ""
        if r.values.get("xfast_filter"):  # scored on the sentences a filter kept, unlike the reference
            note = (f"filtered run (--filter {r.values['xfast_filter']}): scored on the "
                    f"{r.values.get('xfast_sentences_kept', '?')} sentences kept, the reference on all")
            line = f"{r.values['dataset']} {r.values['lang']} {_method(r.values)}: {note}"
            if line not in out.notes:
                out.notes.append(line)
        if len(partners) > 1:
            where = ", ".join(f"{p.file}:{p.line}" for p in partners)
            note = "; ".join(filter(None, [note, f"{len(partners)} reference rows share this key ({where}): "
                                                  "one compare row each"]))
            line = f"{r.values['dataset']} {r.values['lang']} {_method(r.values)}: {note}"
            if line not in out.notes:
                out.notes.append(line)
        for p in partners:
            used.add(id(p))
            matched.append(_joined(MATCHED, r, p, variants.get(id(r), ""), how, note))
        if not partners:
            alone.append(_joined(XFAST_ONLY, r, None, variants.get(id(r), ""), "", ""))
    rest = sorted((_joined(REFERENCE_ONLY, None, p, "", "", "") for p in theirs if id(p) not in used),
                  key=lambda j: (j["dataset"], j["lang"], j["method"], j["reference_file"], j["reference_line"]))
    out.rows = matched + alone + rest
    if any(not r["dataset"] for r in alone):
        out.notes.append("xfast rows with an empty dataset join no reference row: give the pipeline --dataset "
                         "(the reference's name, e.g. europarl, masakhaner2, xtreme)")
    return out


def _joined(status: str, ours: _Row | None, theirs: _Row | None, variant: str, how: str, note: str) -> dict:
    side = ours or theirs
    assert side is not None
    diff = None if ours is None or theirs is None or None in (ours.f1, theirs.f1) else ours.f1 - theirs.f1
    return {"status": status, **{c: side.values[c] for c in JOIN_KEY}, "method": _method(side.values),
            "variant": variant, "run": ours.run if ours else "",
            "xfast_f1": ours.f1 if ours else None, "paper_f1": theirs.f1 if theirs else None, "diff": diff,
            "xfast_precision": ours.precision if ours else None, "xfast_recall": ours.recall if ours else None,
            "paper_precision": theirs.precision if theirs else None,
            "paper_recall": theirs.recall if theirs else None,
            "reference_lang": theirs.values["lang"] if theirs else "", "lang_match": how,
            "run_file": ours.file if ours else "", "run_line": ours.line if ours else None,
            "reference_file": theirs.file if theirs else "", "reference_line": theirs.line if theirs else None,
            "note": note}


def write_compare_csv(path: str | Path, comparison: Comparison) -> None:
    """``compare.csv``: :data:`COLUMNS`, one row per compare row; a missing side's cells empty."""
    from xfast.io.files import atomic_open

    with atomic_open(path) as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in comparison.rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})


def format_comparison(comparison: Comparison) -> str:
    """The printed report: matched rows with both F1s and their difference, xfast rows with no
    partner, reference rows with no partner for the runs' languages (a count for the rest)."""
    from xfast.report import format_table

    def table(rows: list[dict], cols: list[str]) -> str:
        cols = [c for c in cols if c != "run" or len(comparison.runs) > 1]
        cols = [c for c in cols if c != "variant" or any(r["variant"] for r in rows)]
        cells = [["" if r[c] is None else r[c] for c in cols] for r in rows]
        return format_table(cols, cells)

    langs = {_norm_lang(r["lang"]) for r in comparison.rows if r["status"] != REFERENCE_ONLY}
    rest = [r for r in comparison.rows if r["status"] == REFERENCE_ONLY]
    shown = [r for r in rest if _norm_lang(r["lang"]) in langs]
    parts = []
    for title, rows, cols in [
        ("matched", [r for r in comparison.rows if r["status"] == MATCHED],
         ["lang", "method", "variant", "run", "xfast_f1", "paper_f1", "diff"]),
        ("xfast rows with no reference partner", [r for r in comparison.rows if r["status"] == XFAST_ONLY],
         ["dataset", "lang", "method", "variant", "run", "xfast_f1"]),
        ("reference rows with no xfast partner, for the runs' languages", shown,
         ["dataset", "lang", "method", "paper_f1"]),
    ]:
        parts.append(f"{title} ({len(rows)})" + (":\n\n" + table(rows, cols) if rows else ""))
    if len(shown) < len(rest):
        parts.append(f"+ {len(rest) - len(shown)} reference rows for other languages (all in compare.csv)")
    parts.extend(f"note: {n}" for n in comparison.notes)
    return "\n\n".join(parts)


def _series(rows: list[dict], runs: int) -> tuple[list[tuple[str, str]], list[dict]]:
    """Languages (x groups) and bar series of the matched rows: per method, xfast's (one per
    run and variant), then the paper's (one per reference row of a duplicated key)."""
    groups = sorted({(r["dataset"], r["lang"]) for r in rows})
    series: dict[str, dict] = {}

    def put(label: str, source: str, method: str, group: tuple[str, str], value: float | None, line: int) -> None:
        s = series.setdefault(label, {"label": label, "source": source, "method": method, "values": {}})
        name = "/".join(group) if len({d for d, _ in groups}) > 1 else group[1]
        if s["values"].get(name, value) != value:  # two values for one bar: keep both, apart
            put(f"{label} (line {line})", source, method, group, value, line)
        else:
            s["values"][name] = value

    for m in sorted({r["method"] for r in rows}):
        mine = [r for r in rows if r["method"] == m]
        for r in mine:
            extra = (f" [{r['variant']}]" if r["variant"] else "") + (f" ({r['run']})" if runs > 1 else "")
            put(f"{m}{extra}: xfast", "xfast", m, (r["dataset"], r["lang"]), r["xfast_f1"], r["run_line"])
        for r in mine:
            put(f"{m}: paper", "paper", m, (r["dataset"], r["lang"]), r["paper_f1"], r["reference_line"])
    names = ["/".join(g) if len({d for d, _ in groups}) > 1 else g[1] for g in groups]
    return names, list(series.values())


def plot_comparison(path: str | Path, comparison: Comparison) -> dict:
    """Draw ``compare.png`` (matplotlib's Agg canvas, no global state): overall F1 of the
    matched rows, grouped by language, xfast's bar (solid) beside the paper's (hatched) per
    method. Returns ``{"path", "size_px": [w, h], "langs", "series": [{"label", "source",
    "method", "values": {lang: f1}}]}``, the bars as drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from xfast.io.files import atomic_open

    rows = [r for r in comparison.rows if r["status"] == MATCHED]
    langs, series = _series(rows, len(comparison.runs))
    fig = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(s["method"] for s in series))}
    width = 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i, lang in enumerate(langs)
              if s["values"].get(lang) is not None]
        ys = [s["values"][lang] for lang in langs if s["values"].get(lang) is not None]
        paper = s["source"] == "paper"
        bars = ax.bar(xs, ys, width, label=s["label"], color=colours[s["method"]], alpha=0.45 if paper else 1.0,
                      hatch="//" if paper else None, edgecolor=colours[s["method"]], linewidth=0.8)
        if len(langs) * len(series) <= 40:  # values on the bars while they fit
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylim(0, 1)
    ax.set_ylabel("overall F1")
    ax.set_xlabel("language")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(f"overall F1, xfast (solid) beside the paper (hatched): {len(rows)} matched rows\n"
                 f"{comparison.count(XFAST_ONLY)} xfast and {comparison.count(REFERENCE_ONLY)} reference rows "
                 "without a partner are listed in compare.csv", fontsize=10)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", metadata={"Software": None})
    w, h = (round(v * FIGURE_DPI) for v in FIGURE_SIZE)
    return {"path": str(path), "size_px": [w, h], "langs": langs, "series": series}


def write_comparison(out_dir: str | Path, comparison: Comparison, *, figure: str = "auto") -> dict:
    """Write ``compare.csv`` and, unless ``figure="never"``, ``compare.png`` into ``out_dir``
    (files of an earlier comparison there are replaced). ``"auto"`` leaves the figure out
    without matplotlib; ``"always"`` raises :class:`ParameterError` [E204] then. Returns
    ``{"outputs": {"csv", "png"}, "figure": plot_comparison's description or None,
    "figure_skipped": why or None}``."""
    from importlib.util import find_spec

    from xfast.io.files import make_dirs

    check_choice("figure", figure, FIGURES)
    has_mpl = find_spec("matplotlib") is not None
    if figure == "always" and not has_mpl:
        raise ParameterError(msg("E204", what="the comparison figure", missing="matplotlib", extra="plot"))
    out = Path(out_dir)
    make_dirs(out)
    write_compare_csv(out / "compare.csv", comparison)
    drawn, skipped = None, None
    if figure == "never":
        skipped = "--figure never"
    elif not has_mpl:
        skipped = 'the figure needs matplotlib: pip install "xfast[plot]"'
    elif not comparison.count(MATCHED):
        skipped = "no row found a partner, so there is nothing to draw"
    else:
        drawn = plot_comparison(out / "compare.png", comparison)
    if drawn is None:  # an earlier comparison's figure would not match this compare.csv
        (out / "compare.png").unlink(missing_ok=True)
    return {"outputs": {"csv": str(out / "compare.csv"), "png": drawn["path"] if drawn else None},
            "figure": drawn, "figure_skipped": skipped}
