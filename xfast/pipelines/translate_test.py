"""Translate-test (docs/translation.md), the engine behind ``xfast translate-test``.

*src2tgt*: receiving words → detokenize → NLLB to English (greedy, ``max_length`` 200) →
split (docs/translation.md, ``side="mt"``) → English NER → align English↔receiving → project.
*tgt2tgt*: the English NER entities → EasyProject marker back-translation into the receiving
language (docs/translation.md) → align back-translation↔receiving → project.

Every model output is a cached stage (:mod:`xfast.pipelines.cache`): ``translate``,
``ner-en``, ``backtranslate``, ``ner-receiving`` (the ``ner`` candidates and the model-transfer
baseline) and ``align`` (one cache per mode and extraction method). Per language each is
computed once and reused by every projection variant, within a run and across runs; a killed
run resumes from its finished shards with byte-identical output. Outputs: one CoNLL file per
variant (``<lang>.<mode>.<align method>.<method>.conll``), ``metrics.csv`` (one row per
variant, the reference results' columns), ``manifest.json`` and ``qa.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from xfast.errors import ParameterError, msg
from xfast.pipelines.ray_engine import RaySettings
from xfast.pipelines.run import check_name
from xfast.pipelines.runner import (MODES, ModelOptions, ProjectionConfig, add_common_arguments,
                                    add_projection_arguments, align_languages, check_methods, config_of,
                                    default_align_methods, default_ignore, describe, pipeline_aligner,
                                    describe_model, file_sha256, map_label_set, metrics_row, options_of, print_result,
                                    ray_settings_of, start_run, versions, words_key, write_json, write_labels)
from xfast.pipelines.stages import (align_stage, backtranslate_stage, english_ner_stage, fail_empty,
                                    project_variants, receiving_ner, translate_stage)
from xfast.report import write_metrics_csv

__all__ = ["translate_test", "add_arguments", "main"]

Entity = tuple[int, int, str]


def translate_test(input: str | Path, lang: str, out_dir: str | Path, *, modes: tuple[str, ...] = ("src2tgt",),
                   methods: tuple[str, ...] = ("heuristic", "ngram-greedy"), translator="nllb-600m",
                   easyproject_translator="nllb-3.3b-easyproject", ner_model="xlmr-large-conll03",
                   aligner="e5-small", align_methods: tuple[str, ...] | None = None,
                   options: ModelOptions | None = None, config: ProjectionConfig | None = None,
                   threshold: float = 0.5, baseline: bool = False, cache: str | Path | None = None,
                   shard_size: int = 256, dataset: str = "", label_set: set[str] | None = None,
                   ignore: tuple[str, ...] | None = None, label_names: list[str] | None = None,
                   limit: int | None = None, progress: bool = True, overwrite: bool = False,
                   ray: RaySettings | None = None) -> dict:
    """Run translate-test on a test set in language ``lang`` (ISO or FLORES-200 code).

    Models are registry names, local directories or loaded objects (``Translator``,
    ``Tagger``, ``Aligner``); ``aligner="translator"`` aligns with the encoder of ``translator``
    itself (docs/alignment.md). ``align_methods``: extraction methods run on one encoding
    (default: the given Aligner's method, else ``softmax`` for a translator's encoder and
    ``itermax`` for others; ``softmax`` is AWESoME's). ``baseline`` adds the
    model-transfer row. ``label_set``: types kept in outputs (default: the gold data's);
    ``ignore``: types scored as O (default: DATE for MasakhaNER). ``overwrite`` replaces another
    run's outputs in ``out_dir`` (else that is an error). ``ray``: the model stages' missing
    shards are worked on a Ray cluster (docs/ray.md; same outputs). Returns ``{"results",
    "timings", "qa", "outputs"}``; ``results`` holds one metrics row per variant when the input
    has gold labels.
    """
    from xfast.models.flores import flores_code
    from xfast.text import detokenize

    t0 = time.perf_counter()
    check_name("lang", lang)  # it names the outputs
    cfg = (config or ProjectionConfig()).check()
    options = options or ModelOptions()
    aligner = pipeline_aligner(aligner, translator)
    if align_methods is None:
        align_methods = default_align_methods(aligner)
    modes, methods, align_methods = tuple(modes), tuple(methods), tuple(align_methods)
    check_methods(methods, align_methods, modes, getattr(aligner, "token_type", options.token_type))
    flores = flores_code(lang)  # E402 before any work
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise ParameterError(msg("E202", name="shard_size", expected="an int >= 1", value=shard_size))
    run = start_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                    label_names=label_names, limit=limit, progress=progress, command="translate-test",
                    settings={"lang": lang, "modes": modes, "methods": methods, "align_methods": align_methods,
                              "models": [describe_model(m) for m in (translator, easyproject_translator, ner_model)],
                              "aligner": getattr(aligner, "settings", describe_model(aligner)), "config": cfg,
                              "threshold": threshold, "baseline": baseline, "dataset": dataset, "ignore": ignore},
                    overwrite=overwrite, ray=ray)
    out, report, models, common = run.out, run.report, run.models, run.common
    words, gold, keep = run.words, run.gold, run.keep
    ignore = default_ignore(dataset) if ignore is None else tuple(ignore)
    n = len(words)
    wkey = words_key(words)
    stages: dict[str, object] = {}
    qa_extra: dict[str, object] = {}

    # translation to English and English NER: shared by both modes
    mt, tr_stats, stages["translate"] = translate_stage(
        models, translator, lambda lo, hi: [detokenize(w, lang) for w in words[lo:hi]], n, lang, "en", wkey,
        **common)
    fail_empty(report, "translate", words, mt)
    qa_extra["translator"] = tr_stats
    en_words, en_ents, en_splitter, stages["ner-en"] = english_ner_stage(models, ner_model, mt, stages["translate"],
                                                                       truncate=cfg.compat, **common)
    splitters = {"mt": en_splitter}
    candidates = None
    if baseline or any(m.startswith("ner-") for m in methods):
        candidates, stages["ner-receiving"] = receiving_ner(models, ner_model, words, truncate=cfg.compat,
                                                            **common)

    labeled: dict[str, tuple[list, list, str]] = {}
    if "src2tgt" in modes:
        labeled["src2tgt"] = (en_words, en_ents, stages["ner-en"])
    if "tgt2tgt" in modes:
        bt_words, bt_ents, ep_stats, ep_tr, splitters["back"], stages["backtranslate"] = backtranslate_stage(
            models, easyproject_translator, en_words, en_ents, lang, stages["ner-en"], threshold=threshold,
            compat=cfg.compat, **common)
        fail_empty(report, "backtranslate", mt, [" ".join(w) for w in bt_words])
        qa_extra["easyproject"] = ep_stats
        qa_extra["easyproject_translator"] = ep_tr
        labeled["tgt2tgt"] = (bt_words, bt_ents, stages["backtranslate"])

    preds: dict[tuple[str, str, str], list[list[str]]] = {}
    for mode, (lab_words, lab_ents, up) in labeled.items():
        langs = align_languages(aligner, "en" if mode == "src2tgt" else lang, lang)
        alns, keys = align_stage(models, aligner, lab_words, words, align_methods, {"labeled": up, "receiving": wkey},
                                 compat=cfg.compat, stage="align", langs=langs, **common)
        for am, key in keys.items():
            stages[f"align/{mode}/{am}"] = key
        for (am, m), labels in project_variants(mode, lab_ents, alns, words, methods, cfg, report, lang=lang,
                                                candidates=candidates, shard_size=shard_size, keep=keep).items():
            preds[(mode, am, m)] = labels

    outputs: dict[str, Path] = {}
    with report.stage("write"):
        for (mode, am, m), labels in preds.items():
            outputs[f"{mode}/{am}/{m}"] = path = out / f"{lang}.{mode}.{am}.{m}.conll"
            write_labels(path, words, labels)
        if baseline:
            from xfast.io import labels_of

            mt_labels = map_label_set([labels_of(e, len(w)) for e, w in zip(candidates, words)], keep)
            outputs["model_transfer"] = path = out / f"{lang}.model_transfer.conll"
            write_labels(path, words, mt_labels)
    report.sentences_out = n

    results = []
    aligner_name = models.describe(aligner)
    if gold is not None:
        with report.stage("evaluate"):
            for (mode, am, m), labels in preds.items():
                results.append(metrics_row(gold, labels, ignore=ignore, lang=lang, dataset=dataset,
                                           variant=describe(mode, am, m), extra={
                                               "xfast_mode": mode, "xfast_align_method": am, "xfast_method": m,
                                               "xfast_aligner_model": aligner_name,
                                               "xfast_layer": models.aligner_fields(aligner)["layer"],
                                               "xfast_compat": cfg.compat, "xfast_sentences": n}))
            if baseline:
                results.append(metrics_row(gold, mt_labels, ignore=ignore, lang=lang, dataset=dataset,
                                           variant=describe("model_transfer", "", ""),
                                           extra={"xfast_mode": "model_transfer", "xfast_compat": cfg.compat,
                                                  "xfast_sentences": n}))
            write_metrics_csv(out / "metrics.csv", results, dataset=dataset)
            outputs["metrics"] = out / "metrics.csv"

    report.timings["total"] = time.perf_counter() - t0
    report.encoder.update(models.runtime_stats())
    qa = report.summary()
    qa["engine"] = run.engine()
    qa.update(qa_extra)
    qa["splitters"] = splitters
    qa["cache"] = run.cache_stats.as_dict()
    write_json(out / "qa.json", qa)
    manifest = {
        "command": "translate-test", "inputs": {str(input): file_sha256(input)}, "lang": lang, "flores": flores,
        "modes": list(modes), "methods": list(methods), "align_methods": list(align_methods),
        "models": {"translator": models.describe(translator),
                   "easyproject_translator": models.describe(easyproject_translator) if "tgt2tgt" in modes else None,
                   "ner": models.describe(ner_model), "aligner": aligner_name},
        "options": options, "config": cfg, "threshold": threshold, "dataset": dataset,
        "label_set": sorted(keep) if keep is not None else None, "ignore": list(ignore), "splitters": splitters,
        "cache": {"dir": str(run.cache), "stages": stages}, "shard_size": shard_size, "versions": versions(),
        "run_key": run.key, "outputs": {k: str(v) for k, v in outputs.items()},
    }
    write_json(out / "manifest.json", manifest)
    run.finish()
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {k: str(v) for k, v in outputs.items()}}


# --------------------------------------------------------------------------- CLI


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


def main(args: argparse.Namespace) -> int:
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
                         overwrite=args.overwrite, ray=ray_settings_of(args))
    return print_result(res, args)
