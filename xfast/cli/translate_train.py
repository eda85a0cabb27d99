"""``xfast translate-train``."""

from __future__ import annotations

import argparse
import sys

from xfast.cli._args import (add_common_arguments, add_filter_argument, add_projection_arguments, config_of,
                             options_of, print_json, ray_settings_of)
from xfast.models.flores import partition
from xfast.pipelines.translate_train import TRAIN_MODES, translate_train
from xfast.report import format_table

NAME = "translate-train"
HELP = "translate labeled English data and project its labels"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast translate-train`` options."""
    add_common_arguments(p, train=True)
    p.epilog = ("example: xfast translate-train --input en.train.conll --lang de yo --out runs/train "
                "--mode plain marker")
    p.add_argument("--mode", nargs="+", default=["plain"], choices=TRAIN_MODES,
                   help="plain: translate and align; marker: EasyProject marker translation")
    p.add_argument("--translator", default="nllb-600m", help="plain translator (registry name or local directory)")
    p.add_argument("--easyproject-translator", default="nllb-3.3b-easyproject",
                   help="marker translator (registry name or local directory)")
    p.add_argument("--threshold", type=float, default=0.5, help="EasyProject match threshold")
    add_projection_arguments(p)
    add_filter_argument(p)


def run(args: argparse.Namespace) -> int:
    """Run ``xfast translate-train``; 1 when some sentences failed, else 0."""
    ok, skipped = partition(list(args.lang))
    if skipped and ok:
        for lang, why in skipped.items():
            print(f"xfast: warning: skipping {lang}: {why}", file=sys.stderr)
        print(f"xfast: running {', '.join(ok)}", file=sys.stderr)
    res = translate_train(args.input, args.lang, args.out, modes=tuple(args.mode), methods=tuple(args.method),
                          translator=args.translator, easyproject_translator=args.easyproject_translator,
                          ner_model=args.ner_model, aligner=args.aligner,
                          align_methods=tuple(args.align_method) if args.align_method else None,
                          options=options_of(args), config=config_of(args), threshold=args.threshold,
                          cache=args.cache, shard_size=args.shard_size,
                          label_set=set(args.label_set) if args.label_set is not None else None,
                          label_names=args.label_names, limit=args.limit, progress=not args.quiet,
                          overwrite=args.overwrite, ray=ray_settings_of(args), filters=tuple(args.filter),
                          host_workers=args.host_workers)
    if args.json:
        print_json(res)
    else:
        rows = [[r["lang"], r["mode"], r.get("align_method", ""), r.get("method", ""), r["entities_in"],
                 r["entities_out"], r["entity_ratio"]] for r in res["results"]]
        print(format_table(["lang", "mode", "align", "method", "entities in", "out", "ratio"], rows))
    return 1 if res["qa"]["sentences"]["failed"] else 0
