"""``xfast demo``: the main job on the embedded default, offline (Europarl-NER en -> de, es, it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xfast.cli._args import QUANTIZE, QUANTIZE_HELP, add_backend_argument, add_device_argument
from xfast.io.readers import count_sentences
from xfast.pipelines.demo import demo, demo_data
from xfast.report import format_table

NAME = "demo"
HELP = "project Europarl-NER English entities onto de/es/it with the embedded aligner"
EPILOG = "example: xfast demo --limit 100 --out runs/demo"


def add_arguments(d: argparse.ArgumentParser) -> None:
    """The ``xfast demo`` options."""
    d.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    d.add_argument("--quantize", choices=QUANTIZE, default=None, help=QUANTIZE_HELP)
    add_device_argument(d, default="auto", where="where the encoder runs")
    add_backend_argument(d)
    d.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N sentences (default: all 799)")
    d.add_argument("--quiet", action="store_true", help="no progress bars or notices, only the result")
    d.add_argument("--out", default=None, metavar="DIR",
                   help="keep the run folder here (outputs, metrics.csv, qa.json) for xfast compare "
                        "(default: a temporary folder, removed)")
    d.add_argument("--overwrite", action="store_true", help="replace another run's outputs in --out")



def run(args: argparse.Namespace) -> int:
    """Run ``xfast demo``."""
    return run_demo(json_out=args.json, quantize=args.quantize, limit=args.limit, quiet=args.quiet,
                    device=args.device, out_dir=args.out, overwrite=args.overwrite, backend=args.backend)


def run_demo(*, json_out: bool = False, quantize: str | None = None, limit: int | None = None,
             quiet: bool = False, device: str = "auto", out_dir: str | Path | None = None,
             overwrite: bool = False, backend: str | None = None) -> int:
    """The ``xfast demo`` command: print the table (or one JSON object); return the exit code."""
    res = demo(quantize=quantize, limit=limit, progress=not (json_out or quiet), device=device, out_dir=out_dir,
               overwrite=overwrite, backend=backend)
    failed = res["qa"]["sentences"]["failed"]
    if json_out:
        print(json.dumps(res))
        return 1 if failed else 0
    rows = [[r["lang"], r["method"], r["overall_precision"], r["overall_recall"], r["overall_f1"],
             r["paper_mbert_f1"]] for r in res["results"]]
    n = res["qa"]["sentences"]["in"]
    total = count_sentences(demo_data("europarl/en.conll"))
    part = f"{n} of its {total} sentences: the paper's F1 is over all of them" if n < total else f"{n} sentences"
    print(f"\nEuroparl-NER test ({part}), English gold entities projected with the embedded "
          "e5-small aligner (layer 8, itermax, subwords)" + (f", {quantize} encoder" if quantize else "") + ":\n")
    print(format_table(["lang", "method", "precision", "recall", "f1", "paper mBERT f1"], rows))
    print("\nwall time per stage (s):")
    print(format_table(["stage", "seconds"], [[k, float(v)] for k, v in res["timings"].items()]))
    if out_dir is not None:
        print(f"\nrun folder: {out_dir} (metrics.csv, qa.json, the projected files); set it beside the paper "
              "with: xfast compare " + f"{out_dir} --reference europarlner_metrics.csv --out DIR")
    if failed:
        print(f"\n{failed} sentences failed: see the QA summary", file=sys.stderr)
    return 1 if failed else 0
