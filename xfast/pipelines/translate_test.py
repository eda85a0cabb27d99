"""Translate-test (docs/translation.md), the engine behind ``xfast translate-test``.

*src2tgt*: receiving words → detokenize → NLLB to English (greedy, ``max_length`` 200) →
split (docs/translation.md, ``side="mt"``) → English NER → align English↔receiving → project.
*tgt2tgt*: the English NER entities → EasyProject marker back-translation into the receiving
language (docs/translation.md) → align back-translation↔receiving → project.

Every model output is a cached stage (:mod:`xfast.pipelines.stagecache`): ``translate``,
``ner-en``, ``backtranslate``, ``ner-receiving`` (the ``ner`` candidates and the model-transfer
baseline) and ``align`` (one cache per mode and extraction method). Per language each is
computed once and reused by every projection variant, within a run and across runs; a killed
run resumes from its finished shards with byte-identical output. Outputs: one CoNLL file per
variant (``<lang>.<mode>.<align method>.<method>.conll``), ``metrics.csv`` (one row per
variant, the reference results' columns), ``manifest.json`` and ``qa.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from xfast.errors import ParameterError, msg
from xfast.io import labels_of
from xfast.models.flores import flores_code
from xfast.pipelines.context import Run, check_methods, map_label_set, open_run, write_labels
from xfast.pipelines.engines.ray import RaySettings
from xfast.pipelines.loaders import (ModelOptions, align_languages, default_align_methods, describe_model,
                                     pipeline_aligner)
from xfast.pipelines.manifest import default_ignore, describe, file_sha256, metrics_row, versions, write_summaries
from xfast.pipelines.rundir import check_name
from xfast.pipelines.stages.corpus import (align_stage, backtranslate_stage, english_ner_stage, fail_empty,
                                           receiving_ner, translate_stage, words_key)
from xfast.pipelines.stages.projection import project_variants
from xfast.project.config import ProjectionConfig
from xfast.text import detokenize

__all__ = ["translate_test"]


@dataclass
class _Sides:
    """What the translation stages give the projection: per mode the labeled words, their
    entities and the stage key they come from; the NER candidates on the receiving words; the
    cache keys, QA additions and splitter names to report."""

    labeled: dict[str, tuple[list, list, str]] = field(default_factory=dict)
    candidates: list | None = None
    stages: dict[str, str] = field(default_factory=dict)
    qa: dict[str, object] = field(default_factory=dict)
    splitters: dict[str, str] = field(default_factory=dict)


def translate_test(input: str | Path, lang: str, out_dir: str | Path, *, modes: tuple[str, ...] = ("src2tgt",),
                   methods: tuple[str, ...] = ("heuristic", "ngram-greedy"), translator="nllb-600m",
                   easyproject_translator="nllb-3.3b-easyproject", ner_model="xlmr-large-conll03",
                   aligner="e5-small", align_methods: tuple[str, ...] | None = None,
                   options: ModelOptions | None = None, config: ProjectionConfig | None = None,
                   threshold: float = 0.5, baseline: bool = False, cache: str | Path | None = None,
                   shard_size: int = 256, dataset: str = "", label_set: set[str] | None = None,
                   ignore: tuple[str, ...] | None = None, label_names: list[str] | None = None,
                   limit: int | None = None, progress: bool = True, overwrite: bool = False,
                   ray: RaySettings | None = None, host_workers: int = 1) -> dict:
    """Run translate-test on a test set in language ``lang`` (ISO or FLORES-200 code).

    Models are registry names, local directories or loaded objects (``Translator``,
    ``Tagger``, ``Aligner``); ``aligner="translator"`` aligns with the encoder of ``translator``
    itself (docs/alignment.md). ``align_methods``: extraction methods run on one encoding
    (default: the given Aligner's method, else ``softmax`` for a translator's encoder and
    ``itermax`` for others; ``softmax`` is AWESoME's). ``baseline`` adds the
    model-transfer row. ``label_set``: types kept in outputs (default: the gold data's);
    ``ignore``: types scored as O (default: DATE for MasakhaNER). ``overwrite`` replaces another
    run's outputs in ``out_dir`` (else that is an error). ``ray``: the model stages' missing
    shards are worked on a Ray cluster (docs/ray.md; same outputs). ``host_workers``: threads
    that project shards at once (same outputs). Returns ``{"results",
    "timings", "qa", "outputs"}``; ``results`` holds one metrics row per variant when the input
    has gold labels.
    """
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
    run = open_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                   label_names=label_names, limit=limit, progress=progress, command="translate-test",
                   settings={"lang": lang, "modes": modes, "methods": methods, "align_methods": align_methods,
                             "models": [describe_model(m) for m in (translator, easyproject_translator, ner_model)],
                             "aligner": getattr(aligner, "settings", describe_model(aligner)), "config": cfg,
                             "threshold": threshold, "baseline": baseline, "dataset": dataset, "ignore": ignore},
                   overwrite=overwrite, ray=ray)
    ignore = default_ignore(dataset) if ignore is None else tuple(ignore)
    sides = _translated(run, lang, modes, translator, easyproject_translator, ner_model, cfg, threshold,
                        need_candidates=baseline or any(m.startswith("ner-") for m in methods))
    preds = _projected(run, lang, sides, aligner, align_methods, methods, cfg, shard_size, host_workers)
    outputs, mt_labels = _written(run, lang, preds, sides.candidates if baseline else None)
    results = _scored(run, lang, preds, mt_labels, aligner, cfg, ignore, dataset) if run.gold is not None else []
    if results:
        outputs["metrics"] = run.out / "metrics.csv"
    report, models = run.report, run.models
    report.timings["total"] = time.perf_counter() - t0
    report.encoder.update(models.runtime_stats())
    qa = {**report.summary(), "engine": run.engine(), **sides.qa, "splitters": sides.splitters,
          "cache": run.ctx.cache_stats.as_dict()}
    manifest = {
        "command": "translate-test", "inputs": {str(input): file_sha256(input)}, "lang": lang, "flores": flores,
        "modes": list(modes), "methods": list(methods), "align_methods": list(align_methods),
        "models": {"translator": models.describe(translator),
                   "easyproject_translator": models.describe(easyproject_translator) if "tgt2tgt" in modes else None,
                   "ner": models.describe(ner_model), "aligner": models.describe(aligner)},
        "options": options, "config": cfg, "threshold": threshold, "dataset": dataset,
        "label_set": sorted(run.keep) if run.keep is not None else None, "ignore": list(ignore),
        "splitters": sides.splitters, "cache": {"dir": str(run.ctx.cache), "stages": sides.stages},
        "shard_size": shard_size, "versions": versions(), "run_key": run.key,
        "outputs": {k: str(v) for k, v in outputs.items()},
    }
    write_summaries(run.out, qa=qa, manifest=manifest, metrics=results, dataset=dataset)
    run.finish()
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {k: str(v) for k, v in outputs.items()}}


def _translated(run: Run, lang: str, modes: tuple[str, ...], translator, easyproject_translator, ner_model,
                cfg: ProjectionConfig, threshold: float, *, need_candidates: bool) -> _Sides:
    """Translation to English and English NER (both modes), the NER candidates on the receiving
    words when a method or the baseline needs them, and the marker back-translation (tgt2tgt)."""
    ctx, models, words, report = run.ctx, run.models, run.words, run.report
    wkey = words_key(words)
    sides = _Sides()
    mt, tr_stats, sides.stages["translate"] = translate_stage(
        ctx, models, translator, lambda lo, hi: [detokenize(w, lang) for w in words[lo:hi]], len(words), lang,
        "en", wkey)
    fail_empty(report, "translate", words, mt)
    sides.qa["translator"] = tr_stats
    en_words, en_ents, sides.splitters["mt"], sides.stages["ner-en"] = english_ner_stage(
        ctx, models, ner_model, mt, sides.stages["translate"], truncate=cfg.compat)
    if need_candidates:
        sides.candidates, sides.stages["ner-receiving"] = receiving_ner(ctx, models, ner_model, words,
                                                                        truncate=cfg.compat)
    if "src2tgt" in modes:
        sides.labeled["src2tgt"] = (en_words, en_ents, sides.stages["ner-en"])
    if "tgt2tgt" in modes:
        bt_words, bt_ents, ep_stats, ep_tr, sides.splitters["back"], sides.stages["backtranslate"] = \
            backtranslate_stage(ctx, models, easyproject_translator, en_words, en_ents, lang, sides.stages["ner-en"],
                                threshold=threshold, compat=cfg.compat)
        fail_empty(report, "backtranslate", mt, [" ".join(w) for w in bt_words])
        sides.qa["easyproject"] = ep_stats
        sides.qa["easyproject_translator"] = ep_tr
        sides.labeled["tgt2tgt"] = (bt_words, bt_ents, sides.stages["backtranslate"])
    return sides


def _projected(run: Run, lang: str, sides: _Sides, aligner, align_methods: tuple[str, ...],
               methods: tuple[str, ...], cfg: ProjectionConfig, shard_size: int,
               workers: int) -> dict[tuple[str, str, str], list[list[str]]]:
    """Labels of every ``(mode, extraction method, projection method)``: each mode's labeled
    side aligned with the receiving words once, every method projected over that alignment."""
    words, wkey = run.words, words_key(run.words)
    preds: dict[tuple[str, str, str], list[list[str]]] = {}
    for mode, (lab_words, lab_ents, up) in sides.labeled.items():
        langs = align_languages(aligner, "en" if mode == "src2tgt" else lang, lang)
        alns, keys = align_stage(run.ctx, run.models, aligner, lab_words, words, align_methods,
                                 {"labeled": up, "receiving": wkey}, compat=cfg.compat, stage="align", langs=langs)
        for am, key in keys.items():
            sides.stages[f"align/{mode}/{am}"] = key
        for (am, m), labels in project_variants(mode, lab_ents, alns, words, methods, cfg, run.report, lang=lang,
                                                candidates=sides.candidates, shard_size=shard_size,
                                                keep=run.keep, workers=workers).items():
            preds[(mode, am, m)] = labels
    return preds


def _written(run: Run, lang: str, preds: dict, baseline: list | None) -> tuple[dict[str, Path], list | None]:
    """Write one CoNLL file per variant (and the model-transfer baseline from ``baseline``, the
    receiving NER entities); returns ``(outputs, the baseline's labels or None)``."""
    outputs: dict[str, Path] = {}
    mt_labels = None
    with run.report.stage("write"):
        for (mode, am, m), labels in preds.items():
            outputs[f"{mode}/{am}/{m}"] = path = run.out / f"{lang}.{mode}.{am}.{m}.conll"
            write_labels(path, run.words, labels)
        if baseline is not None:
            mt_labels = map_label_set([labels_of(e, len(w)) for e, w in zip(baseline, run.words)], run.keep)
            outputs["model_transfer"] = path = run.out / f"{lang}.model_transfer.conll"
            write_labels(path, run.words, mt_labels)
    run.report.sentences_out = len(run.words)
    return outputs, mt_labels


def _scored(run: Run, lang: str, preds: dict, mt_labels: list | None, aligner, cfg: ProjectionConfig,
            ignore: tuple[str, ...], dataset: str) -> list[dict]:
    """One metrics row per variant (and the baseline), in the paper's results columns."""
    gold, n, models = run.gold, len(run.words), run.models
    results = []
    with run.report.stage("evaluate"):
        for (mode, am, m), labels in preds.items():
            results.append(metrics_row(gold, labels, ignore=ignore, lang=lang, dataset=dataset,
                                       variant=describe(mode, am, m), extra={
                                           "xfast_mode": mode, "xfast_align_method": am, "xfast_method": m,
                                           "xfast_aligner_model": models.describe(aligner),
                                           "xfast_layer": models.aligner_fields(aligner)["layer"],
                                           "xfast_compat": cfg.compat, "xfast_sentences": n}))
        if mt_labels is not None:
            results.append(metrics_row(gold, mt_labels, ignore=ignore, lang=lang, dataset=dataset,
                                       variant=describe("model_transfer", "", ""),
                                       extra={"xfast_mode": "model_transfer", "xfast_compat": cfg.compat,
                                              "xfast_sentences": n}))
    return results
