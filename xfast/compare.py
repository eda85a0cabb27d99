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

from xfast._optional import available, require
from xfast.errors import DataError, ParameterError, check_choice, msg
from xfast.io.files import atomic_open, lines, make_dirs
from xfast.models.flores import flores_code
from xfast.report import format_table

__all__ = ["JOIN_KEY", "COLUMNS", "LANG_MATCHES", "FIGURES", "Comparison", "compare", "format_comparison",
           "write_compare_csv", "plot_comparison", "write_comparison"]

#: the columns both sides are joined on
JOIN_KEY = ("dataset", "lang", "pipeline_type", "aligner", "candidate_matching", "candidate_selection", "eval_type")
#: the columns of ``compare.csv``, in order
COLUMNS = ("status", *JOIN_KEY, "method", "variant", "run", "xfast_f1", "paper_f1", "diff", "xfast_precision",
           "xfast_recall", "paper_precision", "paper_recall", "xfast_entities", "paper_entities", "xfast_sentences",
           "reference_lang", "lang_match", "run_file", "run_line", "reference_file", "reference_line", "note")
#: ``exact``: languages join only when spelled alike; ``flores``: exact first, else by FLORES-200 code
LANG_MATCHES = ("flores", "exact")
#: compare.png: ``auto`` draws it when matplotlib is installed, ``always`` requires it, ``never`` skips it
FIGURES = ("auto", "always", "never")
MATCHED, XFAST_ONLY, REFERENCE_ONLY = "matched", "xfast only", "reference only"

#: the figure's size in inches and its resolution: compare.png is 1100 x 550 pixels
FIGURE_SIZE = (11.0, 5.5)
FIGURE_DPI = 100
#: the difference panel shows at least +-this, so that a difference of 0.01 is a fifth of its half
DIFF_SPAN = 0.025


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

    def entities(self, types: set[str]) -> int | None:
        """Gold entities the row was scored on: the sum of its ``TYPE_number`` cells over
        ``types`` (None when a cell is empty or not a number)."""
        try:
            return round(sum(float(self.values[f"{t}_number"]) for t in types))
        except (KeyError, ValueError):
            return None


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
    part: dict[str, list[_Row]] = {}  # per run, its rows scored on other gold entities than the paper's
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
        scored = _scored_note(r, partners[0]) if partners else ""
        if scored:
            note = "; ".join(filter(None, [note, scored]))
            part.setdefault(r.run or r.file, []).append(r)
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
    for run, rows in part.items():
        sentences = {r.values.get("xfast_sentences", "").strip() for r in rows} - {""}
        on = f" ({', '.join(sorted(sentences))} sentences)" if sentences else ""
        out.notes.append(f"{run}: {len(rows)} matched rows were scored on other gold entities than the paper's{on}, "
                         "as a run with --limit is: their F1s are not comparable row for row (the entities column: "
                         "xfast's of the paper's)")
    if any(not r["dataset"] for r in alone):
        out.notes.append("xfast rows with an empty dataset join no reference row: give the pipeline --dataset "
                         "(the reference's name, e.g. europarl, masakhaner2, xtreme)")
    return out


def _types(ours: _Row | None, theirs: _Row | None) -> set[str]:
    """The entity types whose gold counts (``TYPE_number``) both rows have, or the one row has."""
    def of(row: _Row) -> set[str]:
        return {c[:-len("_number")] for c, v in row.values.items() if c.endswith("_number") and v.strip()}

    if ours is None or theirs is None:
        return of(ours or theirs)
    return of(ours) & of(theirs)


def _count(text: str) -> int | None:
    try:
        return round(float(text))
    except ValueError:
        return None


def _scored_note(ours: _Row, theirs: _Row) -> str:
    """A note when the xfast row was scored on other gold entities than the paper's row (a run
    over part of the test set, with ``--limit``, or over another one), else ""."""
    types = _types(ours, theirs)
    mine, paper = ours.entities(types), theirs.entities(types)
    if not types or mine is None or paper is None or mine == paper:
        return ""
    sentences = ours.values.get("xfast_sentences", "").strip()
    on = f" in {sentences} sentences" if sentences else ""
    return (f"not the paper's test set: xfast scored {mine} gold entities{on}, the paper {paper} (a run with "
            "--limit covers only part of it): the F1s are not comparable row for row")


def _joined(status: str, ours: _Row | None, theirs: _Row | None, variant: str, how: str, note: str) -> dict:
    side = ours or theirs
    assert side is not None
    diff = None if ours is None or theirs is None or None in (ours.f1, theirs.f1) else ours.f1 - theirs.f1
    types = _types(ours, theirs)
    return {"status": status, **{c: side.values[c] for c in JOIN_KEY}, "method": _method(side.values),
            "variant": variant, "run": ours.run if ours else "",
            "xfast_f1": ours.f1 if ours else None, "paper_f1": theirs.f1 if theirs else None, "diff": diff,
            "xfast_precision": ours.precision if ours else None, "xfast_recall": ours.recall if ours else None,
            "paper_precision": theirs.precision if theirs else None,
            "paper_recall": theirs.recall if theirs else None,
            "xfast_entities": ours.entities(types) if ours and types else None,
            "paper_entities": theirs.entities(types) if theirs and types else None,
            "xfast_sentences": _count(ours.values.get("xfast_sentences", "")) if ours else None,
            "reference_lang": theirs.values["lang"] if theirs else "", "lang_match": how,
            "run_file": ours.file if ours else "", "run_line": ours.line if ours else None,
            "reference_file": theirs.file if theirs else "", "reference_line": theirs.line if theirs else None,
            "note": note}


def write_compare_csv(path: str | Path, comparison: Comparison) -> None:
    """``compare.csv``: :data:`COLUMNS`, one row per compare row; a missing side's cells empty."""
    with atomic_open(path) as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in comparison.rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})


def format_comparison(comparison: Comparison) -> str:
    """The printed report: matched rows with both F1s and their difference, xfast rows with no
    partner, reference rows with no partner for the runs' languages (a count for the rest)."""
    def table(rows: list[dict], cols: list[str]) -> str:
        cols = [c for c in cols if c != "run" or len(comparison.runs) > 1]
        cols = [c for c in cols if c != "variant" or any(r["variant"] for r in rows)]
        # gold entities scored, where xfast's differ from the paper's (a part of the test set)
        part = {id(r): f"{r['xfast_entities']} of {r['paper_entities']}" for r in rows
                if None not in (r["xfast_entities"], r["paper_entities"])
                and r["xfast_entities"] != r["paper_entities"]}
        if part and "diff" in cols:
            cols.append("entities")

        def cell(r: dict, c: str) -> object:
            value = part.get(id(r), "") if c == "entities" else r[c]
            return "" if value is None else value

        return format_table(cols, [[cell(r, c) for c in cols] for r in rows])

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


def _xfast_method(values: dict[str, str]) -> str:
    """A reference row's method in xfast's words (the inverse of the mapping in docs/qa.md):
    ``heuristic``, ``ngram-greedy``, ``ner-bipartite`` ..., ``tgt2tgt`` before a back-translated
    variant, then the extraction (``SimAlign`` or ``AWESoME``); ``model-transfer``; a kind xfast
    does not run keeps the paper's words."""
    kind = values["pipeline_type"]
    if kind == "model_transfer":
        return "model-transfer"
    if kind in ("align_src", "align_tgt"):
        name = "heuristic"
    elif kind in ("candidates", "backtrans_candidates"):
        selection = {"dummy": "ngram"}.get(values["candidate_selection"], values["candidate_selection"])
        matching = {"argmax": "greedy"}.get(values["candidate_matching"], values["candidate_matching"])
        name = f"{selection}-{matching}"
    else:
        return _method(values)
    if kind in ("align_tgt", "backtrans_candidates"):
        name = f"tgt2tgt {name}"
    aligner = {"simalign": "SimAlign", "awesome": "AWESoME"}.get(values["aligner"], values["aligner"])
    return f"{name}, {aligner}" if aligner else name


def _series(rows: list[dict], runs: int) -> tuple[list[tuple[str, str]], list[dict]]:
    """Languages (x groups) and bar series of the matched rows: per method, xfast's (one per
    run and variant, with its differences to the paper), then the paper's (one per reference
    row of a duplicated key). ``label`` names a series in the paper's words, ``legend`` in
    xfast's (:func:`_xfast_method`)."""
    groups = sorted({(r["dataset"], r["lang"]) for r in rows})
    series: dict[str, dict] = {}

    def put(label: str, legend: str, source: str, r: dict, line: int) -> None:
        value = r[f"{source}_f1"]
        s = series.setdefault(label, {"label": label, "legend": legend, "source": source, "method": r["method"],
                                      "values": {}, **({"diffs": {}} if source == "xfast" else {})})
        group = (r["dataset"], r["lang"])
        name = "/".join(group) if len({d for d, _ in groups}) > 1 else group[1]
        if s["values"].get(name, value) != value:  # two values for one bar: keep both, apart
            put(f"{label} (line {line})", f"{legend} (line {line})", source, r, line)
            return
        s["values"][name] = value
        if source == "xfast":  # against the first reference row of a duplicated key
            s["diffs"].setdefault(name, r["diff"])

    for m in sorted({r["method"] for r in rows}):
        mine = [r for r in rows if r["method"] == m]
        ours = _xfast_method(mine[0])
        for r in mine:
            extra = (f" [{r['variant']}]" if r["variant"] else "") + (f" ({r['run']})" if runs > 1 else "")
            put(f"{m}{extra}: xfast", f"{ours}{extra}: xfast", "xfast", r, r["run_line"])
        for r in mine:
            put(f"{m}: paper", f"{ours}: paper", "paper", r, r["reference_line"])
    names = ["/".join(g) if len({d for d, _ in groups}) > 1 else g[1] for g in groups]
    return names, list(series.values())


def plot_comparison(path: str | Path, comparison: Comparison) -> dict:
    """Draw ``compare.png`` (matplotlib's Agg canvas, no global state): above, overall F1 of the
    matched rows, grouped by language, each xfast series' bar (solid, a colour of its own)
    beside the paper's (hatched; in its xfast series' colour when one series has that method,
    else grey); below, xfast's F1 minus the paper's on an axis of at least +-:data:`DIFF_SPAN`,
    so that a difference of 0.01 shows. The legend names methods as xfast does. Returns
    ``{"path", "size_px": [w, h], "langs", "diff_ylim": [lo, hi], "series": [{"label",
    "legend", "source", "method", "colour", "values": {lang: f1}, "diffs" (xfast series):
    {lang: xfast - paper}}]}``, the bars as drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # the plot extra: imported only to draw

    rows = [r for r in comparison.rows if r["status"] == MATCHED]
    langs, series = _series(rows, len(comparison.runs))
    ours = [s for s in series if s["source"] == "xfast"]
    for i, s in enumerate(ours):
        s["colour"] = f"C{i % 10}"
    for s in series:
        if s["source"] == "paper":
            partners = [o for o in ours if o["method"] == s["method"]]
            s["colour"] = partners[0]["colour"] if len(partners) == 1 else "0.45"
    fig = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax, dax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    width = 0.8 / max(len(series), 1)

    def offsets(k: int, values: dict) -> tuple[list[float], list[float]]:
        xs = [i + (k - (len(series) - 1) / 2) * width for i, lang in enumerate(langs) if values.get(lang) is not None]
        return xs, [values[lang] for lang in langs if values.get(lang) is not None]

    few = len(langs) * len(series) <= 40  # values on the bars while they fit
    spread = max((abs(v) for s in ours for v in s["diffs"].values() if v is not None), default=0.0)
    span = max(DIFF_SPAN, 1.3 * spread)
    for k, s in enumerate(series):
        paper = s["source"] == "paper"
        bars = ax.bar(*offsets(k, s["values"]), width, label=s["legend"], color=s["colour"],
                      alpha=0.45 if paper else 1.0, hatch="//" if paper else None, edgecolor=s["colour"], linewidth=0.8)
        if few:
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        if not paper:
            diffs = dax.bar(*offsets(k, s["diffs"]), width, color=s["colour"])
            if few:
                dax.bar_label(diffs, fmt="%+.3f", fontsize=7, padding=1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("overall F1")
    dax.set_ylim(-span, span)
    dax.axhline(0, color="0.3", linewidth=0.8)
    dax.set_ylabel("xfast - paper")
    dax.set_xticks(range(len(langs)), langs)
    dax.set_xlabel("language")
    for a in (ax, dax):
        a.grid(axis="y", alpha=0.3)
        a.set_axisbelow(True)
    ax.set_title(f"overall F1, xfast (solid) beside the paper (hatched): {len(rows)} matched rows\n"
                 f"{comparison.count(XFAST_ONLY)} xfast and {comparison.count(REFERENCE_ONLY)} reference rows "
                 "without a partner are listed in compare.csv", fontsize=10)
    fig.legend(loc="outside lower center", ncols=min(4, max(2, len(series))), fontsize=8, frameon=False)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", metadata={"Software": None})
    w, h = (round(v * FIGURE_DPI) for v in FIGURE_SIZE)
    return {"path": str(path), "size_px": [w, h], "langs": langs, "diff_ylim": [-span, span], "series": series}


def write_comparison(out_dir: str | Path, comparison: Comparison, *, figure: str = "auto") -> dict:
    """Write ``compare.csv`` and, unless ``figure="never"``, ``compare.png`` into ``out_dir``
    (files of an earlier comparison there are replaced). ``"auto"`` leaves the figure out
    without matplotlib; ``"always"`` raises :class:`ParameterError` [E204] then. Returns
    ``{"outputs": {"csv", "png"}, "figure": plot_comparison's description or None,
    "figure_skipped": why or None}``."""
    check_choice("figure", figure, FIGURES)
    has_mpl = available("matplotlib")
    if figure == "always":
        require("matplotlib", what="the comparison figure", extra="plot")
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
