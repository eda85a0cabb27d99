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
from collections import Counter
from pathlib import Path

import numpy as np

from xfast.errors import ParameterError, check_choice, msg
from xfast.pipelines.cache import CacheStats, run_stage
from xfast.pipelines.model_transfer import (ModelOptions, Models, add_common_arguments, default_ignore, describe,
                                            metrics_row, options_of, print_result, receiving_ner, start_run,
                                            tagged, tagger_counts, words_key, write_labels)
from xfast.pipelines.runner import (PROJECTION_METHODS, ProjectionConfig, RunReport, file_sha256, map_label_set,
                                    project_batch, versions, write_json)
from xfast.report import write_metrics_csv

__all__ = ["MODES", "ALIGN_METHODS", "translate_test", "translate_stage", "english_ner_stage",
           "backtranslate_stage", "align_stage", "translator_stats", "add_arguments", "main"]

MODES = ("src2tgt", "tgt2tgt")
ALIGN_METHODS = ("itermax", "inter", "fwd", "rev", "mwmf", "softmax")
FORWARD_MAX_LENGTH = 200

Entity = tuple[int, int, str]


# --------------------------------------------------------------------------- stage helpers


def _translator_delta(stats, before: dict, start: int, call: int) -> dict:
    """This call's translator counts, with flagged outputs as corpus sentence indices."""
    now = stats.as_dict()
    delta = {k: now[k] - before[k] for k in ("sentences", "empty", "repetition_loops", "truncated", "split",
                                              "source_tokens", "target_tokens")}
    delta["flagged"] = [[start + i, reason] for c, i, reason in stats.flagged if c == call]
    return delta


def translator_stats(shard_stats: list[dict]) -> dict:
    """Sum per-shard translator counts; flagged outputs listed (first 1000)."""
    total: Counter = Counter()
    flagged: list = []
    for st in shard_stats:
        for k, v in st.items():
            if k == "flagged":
                flagged.extend(v)
            else:
                total[k] += v
    return {**dict(total), "flagged": flagged[:1000]}


def _translate(translator, texts: list[str], src: str, tgt: str, max_length: int, start: int) -> tuple[list[str], dict]:
    """Translate with a given ``max_length``; return the texts and this call's counts."""
    before = translator.stats.as_dict()
    saved = translator.max_decoding_length
    translator.max_decoding_length = max_length
    try:
        out = translator.translate(texts, src, tgt)
    finally:
        translator.max_decoding_length = saved
    return out, _translator_delta(translator.stats, before, start, translator.stats.calls)


def _fail_empty(report: RunReport, where: str, sources: list, outputs: list, start: int = 0) -> None:
    for i, (src, out) in enumerate(zip(sources, outputs)):
        if src and not out:
            report.fail(where, start + i, f"{where}-empty: the translation is empty")


def translate_stage(models: Models, translator, texts_of, n: int, src: str, tgt: str, upstream: str, *,
                    cache: Path, shard_size: int, cache_stats: CacheStats, report: RunReport,
                    progress: bool, stage: str = "translate") -> tuple[list[str], dict, str]:
    """NLLB translation of ``texts_of(lo, hi)`` (greedy, ``max_length`` 200), cached.

    Returns ``(translations, translator counts, cache key)``.
    """
    from xfast.models.flores import flores_code

    fields = {"upstream": upstream, "src": flores_code(src), "tgt": flores_code(tgt),
              "translator": models.translator_fields(translator), "max_length": FORWARD_MAX_LENGTH}

    def compute(lo: int, hi: int):
        from xfast.text import prefetch_nltk, wait_nltk

        prefetch_nltk()  # the source texts are detokenized with NLTK: import it while the model loads
        tr = models.translator(translator)
        with report.stage("import nltk"):
            wait_nltk()
        texts = texts_of(lo, hi)
        with report.stage(f"{stage}.model"):
            out, delta = _translate(tr, texts, src, tgt, FORWARD_MAX_LENGTH, lo)
        return [{"text": t} for t in out], {"translator": delta}

    records, shard_stats, key = run_stage(cache, stage, fields, n, compute, shard_size=shard_size,
                                          stats=cache_stats, report=report, progress=progress)
    return [r["text"] for r in records], translator_stats([s["translator"] for s in shard_stats]), key


def english_ner_stage(models: Models, ner_model, texts: list[str], upstream: str, *, cache: Path,
                      shard_size: int, cache_stats: CacheStats, report: RunReport, progress: bool,
                      truncate: bool = False) -> tuple[list[list[str]], list[list[Entity]], str, str]:
    """Split English MT (docs/translation.md, ``side="mt"``) and tag it; ``truncate``: docs/compat.md (part
    of the cache key). Returns ``(words, entities, splitter name, cache key)``."""
    from xfast.text import get_splitter

    split = get_splitter("en", side="mt")
    fields = {"upstream": upstream, "splitter": split.name,
              "tagger": models.tagger_fields(ner_model, truncate=truncate)}

    def compute(lo: int, hi: int):
        from xfast.text import prefetch_nltk, wait_nltk

        prefetch_nltk()
        tagger = models.tagger(ner_model, truncate=truncate)
        with report.stage("import nltk"):
            wait_nltk()
        words = [split(t) for t in texts[lo:hi]]
        with report.stage("ner-en.model"):
            ents, counts = tagged(tagger, words)
        return ([{"words": w, "entities": [list(e) for e in es]} for w, es in zip(words, ents)],
                {"tagger": counts})

    records, shard_stats, key = run_stage(cache, "ner-en", fields, len(texts), compute, shard_size=shard_size,
                                          stats=cache_stats, report=report, progress=progress)
    report.encoder["ner-en"] = tagger_counts(shard_stats)
    return ([r["words"] for r in records], [[tuple(e) for e in r["entities"]] for r in records],
            split.name, key)


def backtranslate_stage(models: Models, translator, words: list[list[str]], entities: list[list[Entity]],
                        lang: str, upstream: str, *, threshold: float, compat: bool, cache: Path,
                        shard_size: int, cache_stats: CacheStats, report: RunReport, progress: bool,
                        src: str = "en", stage: str = "backtranslate"):
    """EasyProject marker translation of labeled sentences into ``lang`` (docs/translation.md), cached.

    Returns ``(words, entities, easyproject counts, translator counts, splitter name, key)``.
    """
    from dataclasses import asdict

    from xfast.models.flores import flores_code
    from xfast.text import EasyProjectStats, back_translate_batch, get_splitter
    from xfast.text.easyproject import SENTENCE_MAX_LENGTH

    splitter = get_splitter(lang, side="back", compat=compat).name
    fields = {"upstream": upstream, "src": flores_code(src), "lang": flores_code(lang), "threshold": threshold,
              "compat": compat, "splitter": splitter, "translator": models.translator_fields(translator)}

    def compute(lo: int, hi: int):
        from xfast.text import prefetch_nltk, wait_nltk

        prefetch_nltk()
        tr = models.translator(translator)
        with report.stage("import nltk"):
            wait_nltk()
        deltas: list[dict] = []

        def translate(texts: list[str], max_length: int) -> list[str]:
            out, delta = _translate(tr, texts, src, lang, max_length, lo)
            if max_length != SENTENCE_MAX_LENGTH:  # entity texts: no sentence index to flag
                delta["flagged"] = []
            deltas.append(delta)
            return out

        eps = EasyProjectStats()
        with report.stage(f"{stage}.model"):
            res = back_translate_batch(words[lo:hi], entities[lo:hi], translate, lang=lang, threshold=threshold,
                                       compat=compat, stats=eps)
        return ([{"words": w, "entities": [list(e) for e in es]} for w, es in res],
                {"easyproject": asdict(eps), "translator": translator_stats(deltas)})

    records, shard_stats, key = run_stage(cache, stage, fields, len(words), compute, shard_size=shard_size,
                                          stats=cache_stats, report=report, progress=progress)
    ep = Counter()
    for s in shard_stats:
        ep.update(s["easyproject"])
    return ([r["words"] for r in records], [[tuple(e) for e in r["entities"]] for r in records],
            dict(ep), translator_stats([s["translator"] for s in shard_stats]), splitter, key)


def align_stage(models: Models, aligner, labeled: list[list[str]], receiving: list[list[str]],
                methods: tuple[str, ...], upstream: dict, *, compat: bool, cache: Path, shard_size: int,
                cache_stats: CacheStats, report: RunReport, progress: bool,
                stage: str = "align") -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Word alignments ``(labeled, receiving)`` for each extraction method, cached per method.

    Each shard's sentences are encoded once for all methods whose shard is missing. A pair
    with an empty side has no pairs. Returns ``({method: alignments}, {method: cache key})``.
    """
    from tqdm.auto import tqdm

    from xfast.align import align_states_batch
    from xfast.pipelines.cache import StageCache, shard_ranges

    base = models.aligner_fields(aligner)
    # compat changes every method (the aligner truncates at the model's limit, docs/alignment.md), not
    # only softmax's pair order
    caches = {m: StageCache(cache, stage, {**upstream, "aligner": base, "method": m, "compat": compat},
                            shard_size=shard_size, stats=cache_stats) for m in methods}
    result: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    n = len(labeled)
    with report.stage(stage), tqdm(total=n, desc=stage, unit="sent", disable=not progress, leave=False) as bar:
        for k, (lo, hi) in enumerate(shard_ranges(n, shard_size)):
            got = {m: c.load(k, lo, hi - lo) for m, c in caches.items()}
            missing = [m for m in methods if got[m] is None]
            if missing:
                al = models.aligner(aligner, method=missing[0], compat=compat)
                idx = [i for i in range(lo, hi) if labeled[i] and receiving[i]]
                with report.stage(f"{stage}.model"):
                    lab = al.encode([labeled[i] for i in idx])
                    rec = al.encode([receiving[i] for i in idx])
                kw = {key: al.settings[key] for key in ("token_type", "distortion", "max_count", "alpha",
                                                        "threshold")}
                for m in missing:
                    with report.stage(f"{stage}.extract"):
                        pairs = align_states_batch([e.states for e in lab], [e.states for e in rec],
                                                   [e.word_ids for e in lab], [e.word_ids for e in rec],
                                                   method=m, compat_awesome=compat and m == "softmax",
                                                   **{**kw, "distortion": 0.0 if m == "softmax" else kw["distortion"]})
                    by_index = dict(zip(idx, pairs))
                    records = [{"pairs": by_index[i].tolist() if i in by_index else []} for i in range(lo, hi)]
                    got[m] = caches[m].save(k, lo, records, {}), {}
            for m in methods:
                result[m].extend(np.asarray(r["pairs"], dtype=np.int32).reshape(-1, 2) for r in got[m][0])
            bar.update(hi - lo)
    return result, {m: c.key for m, c in caches.items()}


def project_variants(mode: str, entities: list[list[Entity]], alignments: dict[str, list[np.ndarray]],
                     receiving: list[list[str]], methods: tuple[str, ...], cfg: ProjectionConfig,
                     report: RunReport, *, lang: str, candidates: list | None, shard_size: int,
                     keep: set[str] | None) -> dict[tuple[str, str], list[list[str]]]:
    """Labels of every (extraction method, projection method), label set applied (docs/translation.md)."""
    out = {}
    with report.stage("project"):
        for am, alns in alignments.items():
            for m in methods:
                labels: list[list[str]] = []
                for lo in range(0, len(receiving), shard_size):
                    hi = min(lo + shard_size, len(receiving))
                    labels.extend(project_batch(
                        m, entities[lo:hi], alns[lo:hi], receiving[lo:hi], cfg, report,
                        key=f"{lang}/{mode}/{am}/{m}", offset=lo,
                        candidates=candidates[lo:hi] if candidates is not None else None, keep=keep))
                out[(am, m)] = labels
    return out


# --------------------------------------------------------------------------- pipeline


def _check_methods(methods, align_methods, modes, token_type: str) -> None:
    if not modes:
        raise ParameterError(msg("E202", name="modes", expected=f"one or more of {list(MODES)}", value=modes))
    for m in modes:
        check_choice("modes", m, MODES)
    for m in methods:
        check_choice("methods", m, PROJECTION_METHODS)
    if not align_methods:
        raise ParameterError(msg("E202", name="align_methods", expected=f"one or more of {list(ALIGN_METHODS)}",
                                 value=align_methods))
    for m in align_methods:
        check_choice("align_methods", m, ALIGN_METHODS)
    if "softmax" in align_methods and token_type != "bpe":
        raise ParameterError(msg("E202", name="token_type", expected="'bpe' with align method 'softmax'",
                                 value=token_type))


def translate_test(input: str | Path, lang: str, out_dir: str | Path, *, modes: tuple[str, ...] = ("src2tgt",),
                   methods: tuple[str, ...] = ("heuristic", "ngram-greedy"), translator="nllb-600m",
                   easyproject_translator="nllb-3.3b-easyproject", ner_model="xlmr-large-conll03",
                   aligner="e5-small", align_methods: tuple[str, ...] | None = None,
                   options: ModelOptions | None = None, config: ProjectionConfig | None = None,
                   threshold: float = 0.5, baseline: bool = False, cache: str | Path | None = None,
                   shard_size: int = 256, dataset: str = "", label_set: set[str] | None = None,
                   ignore: tuple[str, ...] | None = None, label_names: list[str] | None = None,
                   limit: int | None = None, progress: bool = True) -> dict:
    """Run translate-test on a test set in language ``lang`` (ISO or FLORES-200 code).

    Models are registry names, local directories or loaded objects (``Translator``,
    ``Tagger``, ``Aligner``). ``align_methods``: extraction methods run on one encoding (default:
    the given Aligner's method, else ``itermax``; ``softmax`` is AWESoME). ``baseline`` adds the
    model-transfer row. ``label_set``: types kept in outputs (default: the gold data's);
    ``ignore``: types scored as O (default: DATE for MasakhaNER). Returns ``{"results",
    "timings", "qa", "outputs"}``; ``results`` holds one metrics row per variant when the input
    has gold labels.
    """
    from xfast.models.flores import flores_code
    from xfast.text import detokenize

    t0 = time.perf_counter()
    cfg = config or ProjectionConfig()
    options = options or ModelOptions()
    if align_methods is None:
        align_methods = (getattr(aligner, "method", "itermax"),)
    modes, methods, align_methods = tuple(modes), tuple(methods), tuple(align_methods)
    _check_methods(methods, align_methods, modes, getattr(aligner, "token_type", options.token_type))
    flores = flores_code(lang)  # E402 before any work
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise ParameterError(msg("E202", name="shard_size", expected="an int >= 1", value=shard_size))
    run = start_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                    label_names=label_names, limit=limit, progress=progress)
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
    _fail_empty(report, "translate", words, mt)
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
        _fail_empty(report, "backtranslate", mt, [" ".join(w) for w in bt_words])
        qa_extra["easyproject"] = ep_stats
        qa_extra["easyproject_translator"] = ep_tr
        labeled["tgt2tgt"] = (bt_words, bt_ents, stages["backtranslate"])

    preds: dict[tuple[str, str, str], list[list[str]]] = {}
    for mode, (lab_words, lab_ents, up) in labeled.items():
        alns, keys = align_stage(models, aligner, lab_words, words, align_methods, {"labeled": up, "receiving": wkey},
                                 compat=cfg.compat, stage="align", **common)
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
        "outputs": {k: str(v) for k, v in outputs.items()},
    }
    write_json(out / "manifest.json", manifest)
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {k: str(v) for k, v in outputs.items()}}


# --------------------------------------------------------------------------- CLI


def add_projection_arguments(p: argparse.ArgumentParser) -> None:
    """Aligner and projection options shared with translate-train."""
    p.add_argument("--method", nargs="+", default=["heuristic", "ngram-greedy"], choices=PROJECTION_METHODS,
                   help="projection methods, one output file each")
    p.add_argument("--aligner", default="e5-small", help="registry name, local HF directory or ONNX export")
    p.add_argument("--align-method", nargs="+", default=["itermax"], choices=ALIGN_METHODS,
                   help="extraction methods, all on one encoding (softmax = AWESoME)")
    p.add_argument("--layer", type=int, default=8, help="aligner layer whose states are compared")
    p.add_argument("--token-type", default="bpe", choices=["bpe", "word"],
                   help="align subwords (bpe) or subword-averaged words")
    p.add_argument("--quantize", choices=["int8"], default=None, help="int8 aligner encoder")
    p.add_argument("--length-ratio", type=float, default=0.8,
                   help="heuristic: keep a span longer than this share of its entity")
    p.add_argument("--merge-distance", type=int, default=1, help="heuristic: merge spans this close (0: never)")
    p.add_argument("--min-words", type=int, default=1, help="n-gram candidates: fewest words")
    p.add_argument("--max-words", type=int, default=0, help="n-gram candidates: most words (0: the sentence)")
    p.add_argument("--sub-spans", action="store_true", help="ner candidates: every sub-span too")
    p.add_argument("--compat", action="store_true", help="reproduce the paper's code's quirks (see docs)")


def config_of(args: argparse.Namespace) -> ProjectionConfig:
    """:class:`ProjectionConfig` from parsed arguments."""
    return ProjectionConfig(length_ratio=args.length_ratio, merge_distance=args.merge_distance,
                            min_words=args.min_words, max_words=args.max_words, sub_spans=args.sub_spans,
                            compat=args.compat)


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
                         ner_model=args.ner_model, aligner=args.aligner, align_methods=tuple(args.align_method),
                         options=options_of(args), config=config_of(args), threshold=args.threshold,
                         baseline=args.baseline, cache=args.cache, shard_size=args.shard_size, dataset=args.dataset,
                         label_set=set(args.label_set) if args.label_set is not None else None,
                         ignore=tuple(args.ignore) if args.ignore is not None else None,
                         label_names=args.label_names, limit=args.limit, progress=not args.quiet)
    return print_result(res, args)
