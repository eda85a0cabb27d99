"""Model transfer (docs/translation.md, the baseline), the engine behind ``xfast model-transfer``.

The NER model applied to the receiving words directly, through the same cached stage
(``ner-receiving``) that gives the projection pipelines their ``ner`` candidates, so a
language's words are tagged once for both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from xfast.pipelines.ray_engine import RaySettings
from xfast.pipelines.run import check_name
from xfast.pipelines.runner import (ModelOptions, add_common_arguments, default_ignore, describe, describe_model,
                                    file_sha256, map_label_set, metrics_row, options_of, print_result,
                                    ray_settings_of, start_run, versions, write_json, write_labels)
from xfast.pipelines.stages import receiving_ner
from xfast.report import write_metrics_csv

__all__ = ["model_transfer", "add_arguments", "main"]


def model_transfer(input: str | Path, lang: str, out_dir: str | Path, *, ner_model="xlmr-large-conll03",
                   options: ModelOptions | None = None, cache: str | Path | None = None, shard_size: int = 256,
                   dataset: str = "", label_set: set[str] | None = None, ignore: tuple[str, ...] | None = None,
                   label_names: list[str] | None = None, limit: int | None = None, progress: bool = True,
                   compat: bool = False, overwrite: bool = False,
                   ray: RaySettings | None = None) -> dict:
    """Tag the receiving words with the NER model and write ``<lang>.model_transfer.conll``.

    ``ner_model``: registry name, local directory or a loaded Tagger. ``compat``: truncate
    sentences at the model's limit as the reference does (docs/translation.md). ``label_set``: types kept
    in the output (default: the gold data's); ``ignore``: types scored as O (default: DATE for
    MasakhaNER). ``overwrite`` replaces another run's outputs in ``out_dir`` (else that is an
    error). ``ray``: the tagger's missing shards are worked on a Ray cluster (docs/ray.md). Returns ``{"results", "timings", "qa", "outputs"}``; ``results`` holds one metrics
    row when the input has gold labels.
    """
    t0 = time.perf_counter()
    check_name("lang", lang)  # it names the output
    run = start_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                    label_names=label_names, limit=limit, progress=progress, command="model-transfer",
                    settings={"lang": lang, "ner_model": describe_model(ner_model), "dataset": dataset,
                              "ignore": ignore, "compat": compat}, overwrite=overwrite, ray=ray)
    out, report, models, words, gold, keep = run.out, run.report, run.models, run.words, run.gold, run.keep
    ignore = default_ignore(dataset) if ignore is None else tuple(ignore)
    ents, key = receiving_ner(models, ner_model, words, truncate=compat, **run.common)
    from xfast.io import labels_of

    pred = map_label_set([labels_of(e, len(w)) for e, w in zip(ents, words)], keep)
    path = out / f"{lang}.model_transfer.conll"
    with report.stage("write"):
        write_labels(path, words, pred)
    report.sentences_out = len(words)
    results = []
    if gold is not None:
        with report.stage("evaluate"):
            results.append(metrics_row(gold, pred, ignore=ignore, lang=lang, dataset=dataset,
                                       variant=describe("model_transfer", "", ""),
                                       extra={"xfast_ner_model": models.describe(ner_model),
                                              "xfast_sentences": len(words)}))
        write_metrics_csv(out / "metrics.csv", results, dataset=dataset)
    report.timings["total"] = time.perf_counter() - t0
    qa = report.summary()
    qa["engine"] = run.engine()
    qa["cache"] = run.cache_stats.as_dict()
    write_json(out / "qa.json", qa)
    write_json(out / "manifest.json", {
        "command": "model-transfer", "inputs": {str(input): file_sha256(input)}, "lang": lang,
        "ner_model": models.describe(ner_model), "options": models.options, "dataset": dataset,
        "label_set": sorted(keep) if keep is not None else None, "ignore": list(ignore),
        "cache": {"dir": str(run.cache), "stages": {"ner-receiving": key}}, "shard_size": shard_size,
        "versions": versions(), "run_key": run.key, "outputs": {"model_transfer": str(path)}})
    run.finish()
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {"model_transfer": str(path)}}


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast model-transfer`` options."""
    add_common_arguments(p)
    p.add_argument("--compat", action="store_true",
                   help="truncate long sentences at the model's limit, as the paper's code does")
    p.epilog = ("example: xfast model-transfer --input masakhaner2/hau.test.txt --lang hau "
                "--dataset masakhaner2 --out runs/hau-mt")


def main(args: argparse.Namespace) -> int:
    """Run ``xfast model-transfer``."""
    from xfast.models.flores import is_known

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
