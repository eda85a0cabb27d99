"""``xfast compare``: xfast runs' metrics rows beside the paper's published results rows."""

from __future__ import annotations

import argparse
import json
import sys

from xfast.compare import MATCHED, REFERENCE_ONLY, XFAST_ONLY, compare, format_comparison, write_comparison

NAME = "compare"
HELP = "set xfast runs' metrics.csv rows beside the paper's results rows (table, compare.csv, compare.png)"
EPILOG = "example: xfast compare runs/demo --reference europarlner_metrics.csv --out runs/compare"


def add_arguments(c: argparse.ArgumentParser) -> None:
    """The ``xfast compare`` options."""
    c.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run folders of xfast project, translate-test, model-transfer or demo --out (their "
                        "metrics.csv), or metrics CSV files")
    c.add_argument("--reference", action="append", required=True, metavar="CSV", default=argparse.SUPPRESS,
                   help="a results CSV of the paper (e.g. europarlner_metrics.csv); repeat for several")
    c.add_argument("--out", required=True, metavar="DIR", default=argparse.SUPPRESS,
                   help="folder for compare.csv and compare.png (replaced)")
    c.add_argument("--lang-match", choices=["flores", "exact"], default="flores",
                   help="flores: a language with no exact partner joins by FLORES-200 code (de = deu = deu_Latn); "
                        "exact: only as spelled")
    c.add_argument("--figure", choices=["auto", "always", "never"], default="auto",
                   help="compare.png: auto draws it when matplotlib is installed (xfast[plot]), always requires "
                        "it, never skips it")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")


def run(args: argparse.Namespace) -> int:
    """Run ``xfast compare``."""
    result = compare(args.runs, args.reference, lang_match=args.lang_match)
    written = write_comparison(args.out, result, figure=args.figure)
    if args.json:
        counts = {k: result.count(s) for k, s in
                  (("matched", MATCHED), ("xfast_only", XFAST_ONLY), ("reference_only", REFERENCE_ONLY))}
        print(json.dumps({"counts": counts, "rows": result.rows, "notes": result.notes, **written}))
        return 0
    print(format_comparison(result))
    print(f"\nwritten: {written['outputs']['csv']}" + (f", {written['outputs']['png']}" if written["figure"] else ""))
    if written["figure_skipped"] and args.figure != "never":
        print(f"xfast: warning: no compare.png: {written['figure_skipped']}", file=sys.stderr)
    return 0
