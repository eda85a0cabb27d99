"""``xfast models``: the model registry, exports, and the tiny offline models."""

from __future__ import annotations

import argparse
import json

from xfast.models import commands
from xfast.testing.tiny import build_tiny

NAME = "models"
HELP = "model registry, exports and the tiny offline models"


def add_arguments(m: argparse.ArgumentParser) -> None:
    """The ``xfast models`` actions and their options."""
    msub = m.add_subparsers(dest="models_cmd", required=True, metavar="ACTION")
    ml = msub.add_parser("list", help="show the registry")
    ml.add_argument("--json", action="store_true", help="print one JSON object")
    mt = msub.add_parser("tiny", help="build tiny random models and their exports into OUT (offline trials, tests)")
    mt.add_argument("out", help="output directory")
    mt.add_argument("--json", action="store_true", help="print the paths as one JSON object")
    mx = msub.add_parser("export", help="export a local Hugging Face model directory")
    mx.add_argument("src", help="local HF model directory")
    mx.add_argument("--kind", choices=["encoder", "tagger", "translator"], required=True,
                    help="what the model is used as")
    mx.add_argument("--layer", type=int, default=None,
                    help="encoder: cut after this layer (default: 8; an NLLB checkpoint's encoder: its last)")
    mx.add_argument("--out", default=None, help="output directory (default: the cache)")
    mx.add_argument("--quantize", choices=["int8", "float16", "float32"], default=None,
                    help="encoder: int8 or float16; tagger: int8; translator: int8, float16 or float32")


def run(args: argparse.Namespace) -> int:
    """Run ``xfast models ACTION``."""
    if args.models_cmd == "tiny":
        paths = build_tiny(args.out)
        if args.json:
            print(json.dumps({k: str(v) for k, v in paths.items()}))
        else:
            for k, v in paths.items():
                print(f"{k:14s} {v}")
        return 0
    if args.models_cmd == "list":
        return commands.cmd_list(json=args.json)
    return commands.cmd_export(args.src, args.kind, args.layer, args.out, args.quantize)
