"""``xfast model-transfer``."""

from __future__ import annotations

import argparse
import sys

from xfast.cli._args import add_common_arguments, options_of, print_result, ray_settings_of
from xfast.models.flores import is_known
from xfast.pipelines.model_transfer import model_transfer
from xfast.pipelines.rundir import check_name

NAME = "model-transfer"
HELP = "apply the NER model to the target words directly"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast model-transfer`` options."""
    add_common_arguments(p, translator=False)
    p.add_argument("--compat", action="store_true",
                   help="truncate long sentences at the model's limit, as the paper's code does")
    p.epilog = ("example: xfast model-transfer --input masakhaner2/hau.test.txt --lang hau "
                "--dataset masakhaner2 --out runs/hau-mt")


def run(args: argparse.Namespace) -> int:
    """Run ``xfast model-transfer``."""
    check_name("lang", args.lang)  # before the warning: a name that is refused needs none
    if not is_known(args.lang):
        print(f"xfast: warning: {args.lang!r} is not a language code xfast knows; it only names the outputs "
              "and metrics rows here", file=sys.stderr)
    res = model_transfer(args.input, args.lang, args.out, ner_model=args.ner_model, options=options_of(args),
                         cache=args.cache, shard_size=args.shard_size, dataset=args.dataset,
                         label_set=set(args.label_set) if args.label_set is not None else None,
                         ignore=tuple(args.ignore) if args.ignore is not None else None,
                         label_names=args.label_names, limit=args.limit, progress=not args.quiet,
                         compat=args.compat, overwrite=args.overwrite, ray=ray_settings_of(args))
    return print_result(res, args)
