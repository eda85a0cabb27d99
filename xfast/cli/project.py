"""``xfast project``: project a labeled side's entities onto parallel receiving sides."""

from __future__ import annotations

import argparse
import sys

from xfast.cli._args import (add_encoder_arguments, add_engine_arguments, add_filter_argument, aligner_kwargs_of,
                             named_paths, print_json, ray_settings_of)
from xfast.pipelines.manifest import default_ignore
from xfast.pipelines.parallel import OUTPUT_FORMATS, project_parallel
from xfast.project.config import PROJECTION_METHODS, ProjectionConfig
from xfast.report import format_table

NAME = "project"
HELP = "project labels from a labeled side onto receiving sides"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast project`` options."""
    p.epilog = ("example: xfast project --labeled en.conll --receiving de=de.conll es=es.txt "
                "--out runs/europarl --method heuristic ngram-greedy")
    p.add_argument("--labeled", required=True,
                   help="file whose entities are projected (CoNLL, JSONL or Parquet with tokens and ner_tags; or a "
                        "folder or quoted glob of Parquet/Arrow shards)")
    p.add_argument("--receiving", required=True, nargs="+", metavar="[NAME=]PATH",
                   help="receiving sides (CoNLL, JSONL, Parquet, or .txt/.tok one sentence per line)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--method", nargs="+", default=["heuristic", "ngram-greedy"], choices=PROJECTION_METHODS,
                   help="projection methods, each written to NAME.METHOD.conll")
    p.add_argument("--candidates", nargs="*", default=[], metavar="[NAME=]PATH",
                   help="CoNLL files with NER entities of the receiving sides (ner-* methods)")
    add_encoder_arguments(p)
    p.add_argument("--labeled-lang", default="en",
                   help="language of the labeled side, read by NLLB encoders (receiving sides: their NAME)")
    p.add_argument("--token-type", default="bpe", choices=["bpe", "word"],
                   help="align subwords (bpe) or subword-averaged words")
    p.add_argument("--batch-size", type=int, default=512, help="sentences per batch through the stages")
    p.add_argument("--host-workers", type=int, default=None, metavar="N",
                   help="threads for the host stages (tokenizing, alignment, projection, writing) of different "
                        "batches; the outputs are the same for any N (default: the cores but one when the encoder "
                        "runs on a GPU, else 1: on a CPU the encoder uses the cores)")
    p.add_argument("--shard-size", type=int, default=None,
                   help="sentences per output shard, the unit a killed run resumes from "
                        "(a multiple of --batch-size; default 16 batches)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another run's outputs in --out (else that is an error)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N sentences of every file (default: all)")
    p.add_argument("--length-ratio", type=float, default=0.8,
                   help="heuristic: keep a span longer than this share of its entity, in (0, 1]")
    p.add_argument("--merge-distance", type=int, default=1, help="heuristic: merge spans this close (0: never)")
    p.add_argument("--min-words", type=int, default=1, help="n-gram candidates: fewest words")
    p.add_argument("--max-words", type=int, default=0, help="n-gram candidates: most words (0: the sentence)")
    p.add_argument("--label-set", nargs="+", default=None, metavar="TYPE",
                   help="entity types written out; others become O (default: all)")
    p.add_argument("--ignore", nargs="*", default=None, metavar="TYPE",
                   help="types scored as O (default: DATE when --dataset names masakhaner*, else none)")
    p.add_argument("--dataset", default="",
                   help="dataset name in metrics.csv, as the paper's results name it (europarl, masakhaner2, xtreme); "
                        "xfast compare joins on it (default: empty, which joins no reference row)")
    p.add_argument("--write-alignments", action="store_true", help="also write NAME.align.txt (Pharaoh, scored)")
    p.add_argument("--compat", action="store_true", help="reproduce the paper's code's quirks (see docs)")
    p.add_argument("--output-format", default="conll", choices=OUTPUT_FORMATS,
                   help="labeled outputs as CoNLL, or as Parquet with tokens and ner_tags columns")
    p.add_argument("--label-ids", action="store_true",
                   help="with --output-format parquet: ner_tags as ClassLabel ids, the names in the file's Hugging "
                        "Face metadata (the labeled input's ClassLabel names, else O and B-/I- of its types, sorted)")
    add_filter_argument(p)
    add_engine_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``xfast project``; 1 when some sentences failed, else 0."""
    aligner = dict(aligner_kwargs_of(args), token_type=args.token_type, compat=args.compat)
    cfg = ProjectionConfig(length_ratio=args.length_ratio, merge_distance=args.merge_distance,
                           min_words=args.min_words, max_words=args.max_words, compat=args.compat)
    res = project_parallel(args.labeled, named_paths(args.receiving, "receiving"), args.out, aligner=aligner,
                           methods=tuple(args.method), config=cfg,
                           candidates=named_paths(args.candidates, "candidates"), batch_size=args.batch_size,
                           shard_size=args.shard_size, overwrite=args.overwrite,
                           write_alignments=args.write_alignments,
                           label_set=set(args.label_set) if args.label_set else None,
                           ignore=tuple(args.ignore) if args.ignore is not None else default_ignore(args.dataset),
                           progress=not args.quiet,
                           output_format=args.output_format, engine=args.engine, ray=ray_settings_of(args),
                           filters=tuple(args.filter),
                           device=args.device, dataset=args.dataset, labeled_lang=args.labeled_lang,
                           limit=args.limit, host_workers=args.host_workers, label_ids=args.label_ids)
    if args.json:
        print_json(res)
    else:
        rows = [[r["lang"], r["method"], r["overall_precision"], r["overall_recall"], r["overall_f1"],
                 r["proj_ratio"]] for r in res["results"]]
        if rows:
            print(format_table(["side", "method", "precision", "recall", "f1", "proj_ratio"], rows))
        failed = res["qa"]["sentences"]["failed"]
        print(f"{res['qa']['sentences']['out']} sentences, {failed} failed; outputs in {args.out}",
              file=sys.stderr)
    return 1 if res["qa"]["sentences"]["failed"] else 0
