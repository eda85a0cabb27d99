"""``xfast evaluate``: score predicted labels against gold (seqeval's default mode)."""

from __future__ import annotations

import argparse
import json
import sys

from xfast.errors import DataError, msg
from xfast.evaluate import ignore_types, proj_ratio, scores
from xfast.io import read_parallel
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
    g, p = [], []
    differ, first = 0, None
    for gold, pred in read_parallel([args.gold, args.pred], labels=[True, True]):  # E104 on counts
        if len(gold) != len(pred):
            raise DataError(args.pred, pred.line, msg(
                "E108", what=f"the length of the sentence at {args.gold}:{gold.line}",
                ng=len(gold), np=len(pred)))
        for k, (a, b) in enumerate(zip(gold.tokens, pred.tokens)):
            if a != b:
                differ += 1
                first = first or (pred.line + k if pred.line else None)
        g.append(gold.labels)
        p.append(pred.labels)
    if differ:
        where = f" (the first at {args.pred}:{first})" if first else ""
        print(f"xfast: warning: {differ} tokens differ between gold and prediction{where}; "
              "the labels are scored position by position", file=sys.stderr)
    result = scores(g, p, ignore=args.ignore)
    result["proj_ratio"] = proj_ratio(ignore_types(g, args.ignore), ignore_types(p, args.ignore))
    if args.json:
        print(json.dumps(result))
    else:
        print(format_scores(result))
    return 0
