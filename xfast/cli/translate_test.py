"""``xfast translate-test``."""

from __future__ import annotations

import argparse
from xfast.cli._args import (add_common_arguments, add_projection_arguments, config_of, options_of, print_result,
                             ray_settings_of)
from xfast.pipelines.context import MODES
from xfast.pipelines.translate_test import translate_test

NAME = "translate-test"
HELP = "translate-test pipeline (src2tgt / tgt2tgt) with NLLB and English NER"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast translate-test`` options."""
    add_common_arguments(p)
    p.epilog = ("example: xfast translate-test --input masakhaner2/hau.test.txt --lang hau --dataset masakhaner2 "
                "--out runs/hau --mode src2tgt tgt2tgt --baseline")
    p.add_argument("--mode", nargs="+", default=["src2tgt"], choices=MODES,
                   help="src2tgt: tag the English translation; tgt2tgt: also back-translate with markers")
    p.add_argument("--translator", default="nllb-600m", help="registry name or local CTranslate2/HF directory")
    p.add_argument("--easyproject-translator", default="nllb-3.3b-easyproject",
                   help="marker translator for tgt2tgt (registry name or local directory)")
    p.add_argument("--threshold", type=float, default=0.5, help="EasyProject match threshold")
    p.add_argument("--baseline", action="store_true", help="also write and score model transfer")
    add_projection_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run ``xfast translate-test``; 1 when some sentences failed, else 0."""
    res = translate_test(args.input, args.lang, args.out, modes=tuple(args.mode), methods=tuple(args.method),
                         translator=args.translator, easyproject_translator=args.easyproject_translator,
                         ner_model=args.ner_model, aligner=args.aligner,
                         align_methods=tuple(args.align_method) if args.align_method else None,
                         options=options_of(args), config=config_of(args), threshold=args.threshold,
                         baseline=args.baseline, cache=args.cache, shard_size=args.shard_size, dataset=args.dataset,
                         label_set=set(args.label_set) if args.label_set is not None else None,
                         ignore=tuple(args.ignore) if args.ignore is not None else None,
                         label_names=args.label_names, limit=args.limit, progress=not args.quiet,
                         overwrite=args.overwrite, ray=ray_settings_of(args), host_workers=args.host_workers)
    return print_result(res, args)
