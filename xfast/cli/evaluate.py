"""``xfast evaluate``: score predicted labels against gold (seqeval's default mode)."""

from __future__ import annotations

import argparse
import json
import sys

from xfast.evaluate import evaluate_files
from xfast.report import format_scores

NAME = "evaluate"
HELP = "score predicted CoNLL/JSONL labels against gold (seqeval default mode)"
EPILOG = "example: xfast evaluate --gold de.conll --pred runs/europarl/de.heuristic.conll --ignore DATE"


def add_arguments(e: argparse.ArgumentParser) -> None:
    """The ``xfast evaluate`` options."""
    e.add_argument("--gold", required=True, help="gold CoNLL or JSONL file")
    e.add_argument("--pred", required=True, help="predicted CoNLL or JSONL file, same sentences")
    e.add_argument("--ignore", nargs="*", default=[], metavar="TYPE", help="entity types scored as O (e.g. DATE)")
    e.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run ``xfast evaluate``."""
    result, differ, first = evaluate_files(args.gold, args.pred, ignore=args.ignore)
    if differ:
        where = f" (the first at {args.pred}:{first})" if first else ""
        print(f"xfast: warning: {differ} tokens differ between gold and prediction{where}; "
              "the labels are scored position by position", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_scores(result))
    return 0
