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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from xfast.evaluate import ScoreCounts
from xfast.io import labels_of
from xfast.models.flores import flores_code
from xfast.pipelines.context import MODES, OutputFiles, Run, check_methods, map_label_set, open_run, write_labels
from xfast.pipelines.engines.ray import RaySettings
from xfast.pipelines.loaders import (ModelOptions, align_languages, default_align_methods, describe_model,
                                     pipeline_aligner)
from xfast.pipelines.manifest import default_ignore, describe, file_sha256, metrics_row, versions, write_summaries
from xfast.pipelines.rundir import check_name
from xfast.pipelines.qa import ReportSections
from xfast.pipelines.stagecache import StageContext
from xfast.pipelines.stages.corpus import (align_stage, backtranslate_stage, english_ner_stage, fail_empty,
                                           receiving_ner, translate_stage, translator_stats)
from xfast.pipelines.stages.projection import project_variants
from xfast.project.config import ProjectionConfig
from xfast.text import detokenize

__all__ = ["translate_test"]


@dataclass(frozen=True)
class _Plan:
    """What a translate-test run does: the receiving language, the modes (``labeled``: those
    that run, in the order their outputs are written), the methods, the models and settings."""

    lang: str
    labeled: tuple[str, ...]
    methods: tuple[str, ...]
    align_methods: tuple[str, ...]
    translator: object
    easyproject_translator: object
    ner_model: object
    aligner: object
    cfg: ProjectionConfig
    threshold: float
    baseline: bool
    ignore: tuple[str, ...]
    dataset: str
    shard_size: int
    workers: int

    @property
    def candidates(self) -> bool:
        """Whether the NER candidates on the receiving words are needed (a method or the baseline)."""
        return self.baseline or any(m.startswith("ner-") for m in self.methods)


@dataclass
class _Sides:
    """What the run's stages report beside their outputs: the cache keys, QA additions and
    splitter names, and the report sections (failures in whole-input order)."""

    stages: dict[str, str] = field(default_factory=dict)
    qa: dict[str, object] = field(default_factory=dict)
    splitters: dict[str, str] = field(default_factory=dict)
    sections: ReportSections = field(default_factory=ReportSections)


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
    run = open_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                   label_names=label_names, limit=limit, progress=progress, command="translate-test",
                   settings={"lang": lang, "modes": modes, "methods": methods, "align_methods": align_methods,
                             "models": [describe_model(m) for m in (translator, easyproject_translator, ner_model)],
                             "aligner": getattr(aligner, "settings", describe_model(aligner)), "config": cfg,
                             "threshold": threshold, "baseline": baseline, "dataset": dataset, "ignore": ignore},
                   overwrite=overwrite, ray=ray)
    plan = _Plan(lang, tuple(m for m in MODES if m in modes), methods, align_methods, translator,
                 easyproject_translator, ner_model, aligner, cfg, threshold, baseline,
                 default_ignore(dataset) if ignore is None else tuple(ignore), dataset, shard_size, host_workers)
    ignore = plan.ignore
    sides = _Sides()
    _translated(run, plan, sides)
    outputs, counts = _projected(run, plan, sides)
    sides.sections.merge_into(run.report)
    results = _scored(run, plan, counts) if run.gold else []
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


def _stages(ctx: StageContext, run: Run, plan: _Plan, sides: _Sides, start: int,
            words: list[list[str]]) -> tuple[list[str], dict, list | None, dict]:
    """The translation stages of the window of receiving ``words`` from sentence ``start`` on:
    translation to English and English NER (both modes), the NER candidates on the receiving
    words when needed, the marker back-translation (tgt2tgt). Returns ``(translations,
    {mode: (labeled words, entities)}, candidates or None, the window's translator and
    EasyProject counts)``."""
    models, lang = run.models, plan.lang
    mt, tr, sides.stages["translate"] = translate_stage(
        ctx, models, plan.translator, lambda lo, hi: [detokenize(w, lang) for w in words[lo - start:hi - start]],
        len(words), lang, "en", run.scan.words_key, start=start)
    en_words, en_ents, sides.splitters["mt"], sides.stages["ner-en"] = english_ner_stage(
        ctx, models, plan.ner_model, mt, sides.stages["translate"], truncate=plan.cfg.compat, start=start)
    candidates = None
    if plan.candidates:
        candidates, sides.stages["ner-receiving"] = receiving_ner(ctx, models, plan.ner_model, words,
                                                                  truncate=plan.cfg.compat, start=start,
                                                                  root=run.scan.words_key)
    labeled, counts = {}, {"translator": tr}
    if "src2tgt" in plan.labeled:
        labeled["src2tgt"] = (en_words, en_ents)
    if "tgt2tgt" in plan.labeled:
        bt_words, bt_ents, counts["easyproject"], counts["easyproject_translator"], sides.splitters["back"], \
            sides.stages["backtranslate"] = backtranslate_stage(
                ctx, models, plan.easyproject_translator, en_words, en_ents, lang, sides.stages["ner-en"],
                threshold=plan.threshold, compat=plan.cfg.compat, start=start)
        labeled["tgt2tgt"] = (bt_words, bt_ents)
    return mt, labeled, candidates, counts


def _translated(run: Run, plan: _Plan, sides: _Sides) -> None:
    """Every window through the translation stages (:func:`_stages`), their failures and counts
    reported; the outputs stay in the stage cache for :func:`_projected`. They all run before any
    alignment, so a translator whose encoder aligns is loaded once."""
    tr_stats, ep_stats, ep_tr = {}, Counter(), {}
    for start, sents in run.windows():
        words = [s.tokens for s in sents]
        mt, labeled, _, counts = _stages(run.ctx, run, plan, sides, start, words)
        fail_empty(sides.sections("translate"), "translate", words, mt, start)
        tr_stats = translator_stats([tr_stats, counts["translator"]])
        if "tgt2tgt" in labeled:
            fail_empty(sides.sections("backtranslate"), "backtranslate", mt,
                       [" ".join(w) for w in labeled["tgt2tgt"][0]], start)
            ep_stats.update(counts["easyproject"])
            ep_tr = translator_stats([ep_tr, counts["easyproject_translator"]])
    sides.qa["translator"] = tr_stats
    if "tgt2tgt" in plan.labeled:
        sides.qa["easyproject"] = dict(ep_stats)
        sides.qa["easyproject_translator"] = ep_tr


def _projected(run: Run, plan: _Plan, sides: _Sides) -> tuple[dict[str, Path], dict[str, ScoreCounts]]:
    """Window by window: the translation stages read back from the cache, each mode's labeled
    side aligned with the receiving words once and every method projected over that alignment;
    one CoNLL file per ``(mode, extraction method, projection method)`` (and the model-transfer
    baseline from the NER candidates) appended to, and scored when the input has gold labels.
    Returns ``(outputs, {output: score counts})``."""
    report, lang = run.report, plan.lang
    paths = {f"{mode}/{am}/{m}": run.out / f"{lang}.{mode}.{am}.{m}.conll"
             for mode in plan.labeled for am in plan.align_methods for m in plan.methods}
    if plan.baseline:
        paths["model_transfer"] = run.out / f"{lang}.model_transfer.conll"
    counts = {name: ScoreCounts() for name in paths}
    with OutputFiles(run) as files:
        fhs = {name: files.open(path) for name, path in paths.items()}
        for start, sents in run.windows():
            words = [s.tokens for s in sents]
            with report.stage("reread cached stages"):
                _, labeled, candidates, _ = _stages(run.replay(), run, plan, sides, start, words)
            preds = _window_labels(run, plan, sides, start, words, labeled, candidates)
            with report.stage("write"):
                for name, labels in preds.items():
                    write_labels(fhs[name], words, labels)
            if run.gold:
                with report.stage("evaluate"):
                    gold = [s.labels for s in sents]
                    for name, labels in preds.items():
                        counts[name].absorb(ScoreCounts.of_labels(gold, labels, ignore=plan.ignore))
    report.sentences_out = run.n
    return paths, counts


def _window_labels(run: Run, plan: _Plan, sides: _Sides, start: int, words: list[list[str]], labeled: dict,
                   candidates: list | None) -> dict[str, list[list[str]]]:
    """The labels of every output for one window: each mode aligned and projected, and the
    baseline (the NER candidates, label set applied)."""
    preds: dict[str, list[list[str]]] = {}
    for mode, (lab_words, lab_ents) in labeled.items():
        up = sides.stages["ner-en" if mode == "src2tgt" else "backtranslate"]
        alns, keys = align_stage(run.ctx, run.models, plan.aligner, lab_words, words, plan.align_methods,
                                 {"labeled": up, "receiving": run.scan.words_key}, compat=plan.cfg.compat,
                                 stage="align", langs=align_languages(plan.aligner, "en" if mode == "src2tgt"
                                                                      else plan.lang, plan.lang), start=start)
        for am, key in keys.items():
            sides.stages[f"align/{mode}/{am}"] = key
        with run.report.stage("project"):
            for (am, m), labels in project_variants(
                    mode, lab_ents, alns, words, plan.methods, plan.cfg, sides.sections, lang=plan.lang,
                    candidates=candidates, shard_size=plan.shard_size, keep=run.keep, workers=plan.workers,
                    start=start).items():
                preds[f"{mode}/{am}/{m}"] = labels
    if plan.baseline:
        preds["model_transfer"] = map_label_set([labels_of(e, len(w)) for e, w in zip(candidates, words)], run.keep)
    return preds


def _scored(run: Run, plan: _Plan, counts: dict[str, ScoreCounts]) -> list[dict]:
    """One metrics row per variant (and the baseline), in the paper's results columns."""
    models, n = run.models, run.n
    results = []
    for name, c in counts.items():
        if name == "model_transfer":
            results.append(metrics_row(c, lang=plan.lang, dataset=plan.dataset,
                                       variant=describe("model_transfer", "", ""),
                                       extra={"xfast_mode": "model_transfer", "xfast_compat": plan.cfg.compat,
                                              "xfast_sentences": n}))
            continue
        mode, am, m = name.split("/")
        results.append(metrics_row(c, lang=plan.lang, dataset=plan.dataset, variant=describe(mode, am, m), extra={
            "xfast_mode": mode, "xfast_align_method": am, "xfast_method": m,
            "xfast_aligner_model": models.describe(plan.aligner),
            "xfast_layer": models.aligner_fields(plan.aligner)["layer"], "xfast_compat": plan.cfg.compat,
            "xfast_sentences": n}))
    return results
