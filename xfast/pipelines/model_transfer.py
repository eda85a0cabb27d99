"""Model transfer (docs/translation.md, the baseline), the engine behind ``xfast model-transfer``.

The NER model applied to the receiving words directly, through the same cached stage
(``ner-receiving``) that gives the projection pipelines their ``ner`` candidates, so a
language's words are tagged once for both; window by window (a shard, or a few on Ray), the
output appended and the scores counted as each window is done.
"""

from __future__ import annotations

import time
from pathlib import Path

from xfast.evaluate import ScoreCounts
from xfast.io import labels_of
from xfast.pipelines.context import OutputFiles, map_label_set, open_run, write_labels
from xfast.pipelines.engines.ray import RaySettings
from xfast.pipelines.loaders import ModelOptions, describe_model
from xfast.pipelines.manifest import default_ignore, describe, file_sha256, metrics_row, versions, write_summaries
from xfast.pipelines.rundir import check_name
from xfast.pipelines.stages.corpus import receiving_ner

__all__ = ["model_transfer"]


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
    run = open_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                   label_names=label_names, limit=limit, progress=progress, command="model-transfer",
                   settings={"lang": lang, "ner_model": describe_model(ner_model), "dataset": dataset,
                             "ignore": ignore, "compat": compat}, overwrite=overwrite, ray=ray)
    out, report, models, keep = run.out, run.report, run.models, run.keep
    ignore = default_ignore(dataset) if ignore is None else tuple(ignore)
    path = out / f"{lang}.model_transfer.conll"
    counts = ScoreCounts()
    with OutputFiles(run) as files:
        fh = files.open(path)
        for start, sents in run.windows():
            words = [s.tokens for s in sents]
            ents, key = receiving_ner(run.ctx, models, ner_model, words, truncate=compat, start=start,
                                      root=run.scan.words_key)
            pred = map_label_set([labels_of(e, len(w)) for e, w in zip(ents, words)], keep)
            with report.stage("write"):
                write_labels(fh, words, pred)
            if run.gold:
                with report.stage("evaluate"):
                    counts.absorb(ScoreCounts.of_labels([s.labels for s in sents], pred, ignore=ignore))
    report.sentences_out = run.n
    results = []
    if run.gold:
        results.append(metrics_row(counts, lang=lang, dataset=dataset, variant=describe("model_transfer", "", ""),
                                   extra={"xfast_ner_model": models.describe(ner_model), "xfast_sentences": run.n}))
    report.timings["total"] = time.perf_counter() - t0
    qa = {**report.summary(), "engine": run.engine(), "cache": run.ctx.cache_stats.as_dict()}
    write_summaries(out, qa=qa, metrics=results, dataset=dataset, manifest={
        "command": "model-transfer", "inputs": {str(input): file_sha256(input)}, "lang": lang,
        "ner_model": models.describe(ner_model), "options": models.options, "dataset": dataset,
        "label_set": sorted(keep) if keep is not None else None, "ignore": list(ignore),
        "cache": {"dir": str(run.ctx.cache), "stages": {"ner-receiving": key}}, "shard_size": shard_size,
        "versions": versions(), "run_key": run.key, "outputs": {"model_transfer": str(path)}})
    run.finish()
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {"model_transfer": str(path)}}
