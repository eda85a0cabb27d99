"""Translate-train (docs/translation.md; xfast only, not in the reference), the engine behind
``xfast translate-train``.

Labeled English sentences (CoNLL or JSONL with gold labels) become labeled target-language
training data, per target language, in one or both modes:

- ``marker``: EasyProject marker translation (docs/translation.md): entities are bracketed, translated
  with the EasyProject NLLB, and the matched brackets are the target entities;
  ``<lang>.marker.conll``.
- ``plain``: plain NLLB translation, split with the target language's splitter (docs/translation.md,
  ``side="back"``), aligned English↔translation and projected with every requested method;
  ``<lang>.plain.<align method>.<method>.conll``.

Translations, NER candidates and alignments are cached stages (:mod:`xfast.pipelines.stagecache`).
There is no gold on the target side; the QA summary counts entities in and out per label and
reports the entity ratio (docs/evaluation.md ``proj_ratio`` with the English gold entity counts).
Sentences whose translation is empty stay in the output as empty sentences (so output and
input stay line-aligned) and are listed as failures.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from xfast.errors import ParameterError, check_choice, msg
from xfast.io import entities_of, labels_of
from xfast.io.tokens import LabelTypes, from_sentences
from xfast.models.flores import flores_code, partition
from xfast.pipelines.context import OutputFiles, Run, check_methods, map_label_set, open_run, write_labels
from xfast.pipelines.engines.ray import RaySettings
from xfast.pipelines.loaders import (ModelOptions, align_languages, default_align_methods, describe_model,
                                     pipeline_aligner)
from xfast.pipelines.manifest import file_sha256, versions, write_summaries
from xfast.pipelines.rundir import check_name
from xfast.pipelines.qa import ReportSections
from xfast.pipelines.stagecache import StageContext
from xfast.pipelines.stages.corpus import (ListKey, align_stage, backtranslate_stage, fail_empty, receiving_ner,
                                           translate_stage, translator_stats)
from xfast.pipelines.stages.projection import project_variants
from xfast.project.config import ProjectionConfig
from xfast.project.filtering import REASONS, FilterPolicy, filter_batch, reject_line, sentence_states
from xfast.text import detokenize, get_splitter

__all__ = ["TRAIN_MODES", "translate_train", "entity_ratio"]

TRAIN_MODES = ("plain", "marker")


def entity_ratio(source_entities: list[list], labels: list[list[str]]) -> float:
    """Mean over sentences of ``#B- out / #entities in`` (1 or 0 for a sentence with none in)."""
    return _ratio_sum(source_entities, labels, 0.0) / len(labels) if labels else 0.0


def _ratio_sum(source_entities: list[list], labels: list[list[str]], total: float) -> float:
    """``total`` plus each sentence's term of :func:`entity_ratio`, added one after the other
    (so a sum carried over windows equals the sum over the whole list)."""
    for ents, labs in zip(source_entities, labels):
        n_out = sum(1 for lab in labs if lab.startswith("B-"))
        total += n_out / len(ents) if ents else float(n_out == 0)
    return total


def translate_train(input: str | Path, langs: tuple[str, ...] | list[str], out_dir: str | Path, *,
                    modes: tuple[str, ...] = ("plain",), methods: tuple[str, ...] = ("heuristic", "ngram-greedy"),
                    translator="nllb-600m", easyproject_translator="nllb-3.3b-easyproject",
                    ner_model="xlmr-large-conll03", aligner="e5-small", align_methods: tuple[str, ...] | None = None,
                    options: ModelOptions | None = None, config: ProjectionConfig | None = None,
                    threshold: float = 0.5, cache: str | Path | None = None, shard_size: int = 256,
                    label_set: set[str] | None = None, label_names: list[str] | None = None,
                    limit: int | None = None, progress: bool = True, overwrite: bool = False,
                    filters: str | tuple[str, ...] | FilterPolicy = "none",
                    ray: RaySettings | None = None, host_workers: int = 1) -> dict:
    """Translate labeled English data into each of ``langs`` and label it (see the module doc).
    ``overwrite`` replaces another run's outputs in ``out_dir`` (else that is an error).
    ``ray``: the model stages' missing shards are worked on a Ray cluster (docs/ray.md).
    ``host_workers``: threads that project shards at once (same outputs).
    ``filters``: ``--filter`` policies (docs/projection.md, *Filtering*): each output keeps
    the sentences that pass, dropped ones go to ``OUTPUT.rejects.jsonl``; in ``marker`` mode
    ``min-score`` does not apply (no alignment).
    Languages NLLB-200 does not cover are skipped and listed in QA (``skipped_languages``);
    only when none is covered is that an error [E402].

    ``aligner="translator"`` aligns with the encoder of ``translator`` itself (docs/alignment.md).
    ``ner_model`` is only loaded for ``ner-*`` methods (candidates on the translation).
    ``label_set``: types kept (default: those of the English gold). Returns ``{"results",
    "timings", "qa", "outputs"}``; ``results`` holds one QA row per output file.
    """
    t0 = time.perf_counter()
    cfg = (config or ProjectionConfig()).check()
    options = options or ModelOptions()
    langs = _checked_names([langs] if isinstance(langs, str) else langs, modes)
    policy = FilterPolicy.parse(filters)
    aligner = pipeline_aligner(aligner, translator)
    if align_methods is None:
        align_methods = default_align_methods(aligner)
    modes, methods, align_methods = tuple(modes), tuple(methods), tuple(align_methods)
    check_methods(methods, align_methods, ("src2tgt",), getattr(aligner, "token_type", options.token_type))
    floreses, skipped = partition(list(langs))  # before any work
    if not floreses:
        flores_code(langs[0])  # E402 for the first
    langs = list(floreses)
    run = open_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                   label_names=label_names, limit=limit, progress=progress, command="translate-train",
                   settings={"langs": langs, "modes": modes, "methods": methods, "align_methods": align_methods,
                             "models": [describe_model(m) for m in (translator, easyproject_translator, ner_model)],
                             "aligner": getattr(aligner, "settings", describe_model(aligner)), "config": cfg,
                             "threshold": threshold, **({"filter": policy.names()} if policy.active else {})},
                   overwrite=overwrite, ray=ray, labels=True)
    made = _Made(run, policy, run.scan.labeled_key)
    for lang in langs:
        if "marker" in modes:
            _marker(made, lang, easyproject_translator, cfg, threshold)
        if "plain" in modes:
            _plain(made, lang, translator, ner_model, aligner, align_methods, methods, cfg, shard_size, host_workers)
    made.sections.merge_into(run.report)
    report, models = run.report, run.models
    report.sentences_out = run.n
    report.timings["total"] = time.perf_counter() - t0
    report.encoder.update(models.runtime_stats())
    qa = {**report.summary(), "engine": run.engine(), **made.qa, "splitters": made.splitters,
          "skipped_languages": skipped, "cache": run.ctx.cache_stats.as_dict(), "outputs": made.results}
    outputs = {k: str(v) for k, v in made.outputs.items()}
    manifest = {
        "command": "translate-train", "inputs": {str(input): file_sha256(input)}, "langs": floreses,
        "modes": list(modes), "methods": list(methods), "align_methods": list(align_methods),
        "models": {"translator": models.describe(translator) if "plain" in modes else None,
                   "easyproject_translator": models.describe(easyproject_translator) if "marker" in modes else None,
                   "ner": models.describe(ner_model) if any(m.startswith("ner-") for m in methods) else None,
                   "aligner": models.describe(aligner) if "plain" in modes else None},
        "options": options, "config": cfg, "threshold": threshold,
        **({"filter": policy.names()} if policy.active else {}),
        "label_set": sorted(run.keep) if run.keep is not None else None, "splitters": made.splitters,
        "cache": {"dir": str(run.ctx.cache), "stages": made.stages}, "shard_size": shard_size,
        "versions": versions(), "run_key": run.key, "outputs": outputs}
    write_summaries(run.out, qa=qa, manifest=manifest)
    run.finish()
    return {"results": made.results, "timings": dict(report.timings), "qa": qa, "outputs": outputs}


def _checked_names(langs: list[str], modes) -> list[str]:
    """The target languages (each names outputs, so each is a plain name) and the modes, checked."""
    if not langs:
        raise ParameterError(msg("E202", name="langs", expected="one or more language codes", value=langs))
    for lang in langs:
        check_name("langs", lang)
    if not modes:
        raise ParameterError(msg("E202", name="modes", expected=f"one or more of {list(TRAIN_MODES)}", value=modes))
    for m in modes:
        check_choice("modes", m, TRAIN_MODES)
    return langs


@dataclass
class _Output:
    """One output file being written window by window (``rejects``: its rejects file, when the
    filter drops sentences) and what its QA row adds up to."""

    name: str
    lang: str
    desc: dict
    fh: TextIO
    rejects: BinaryIO | None
    entities_in: int = 0
    entities_out: int = 0
    ratio_sum: float = 0.0
    sentences: int = 0  # written (kept by the filter)


@dataclass
class _Made:
    """A translate-train run's state between languages and modes: the run, the filter policy,
    the stage caches' root key, the report sections (failures in whole-input order), and what
    the outputs add up to (files, QA rows, stage keys, QA additions, splitter names)."""

    run: Run
    policy: FilterPolicy
    wkey: str  # the stage caches' root: the English words and labels
    sections: ReportSections = field(default_factory=ReportSections)
    outputs: dict[str, Path] = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)
    qa: dict[str, dict] = field(default_factory=dict)
    splitters: dict[str, str] = field(default_factory=dict)

    def open(self, files: OutputFiles, name: str, path: Path, lang: str, **desc) -> _Output:
        """Open output ``name`` (and its rejects file beside it when the filter drops sentences)."""
        rejects = None
        if self.policy.drops:
            rejects = files.open(path.with_suffix(".rejects.jsonl"), "wb")
            self.outputs[f"{name}/rejects"] = path.with_suffix(".rejects.jsonl")
        self.outputs[name] = path
        return _Output(name, lang, desc, files.open(path), rejects)

    def emit(self, out: _Output, start: int, sents: list, ents: list[list], tgt_words: list[list[str]],
             labels: list[list[str]], *, alignments: list | None = None) -> None:
        """One window of an output (sentences from ``start`` on): the label set, the filter
        (rejects beside it), the file, and the counts of its QA row."""
        run, report, policy = self.run, self.run.report, self.policy
        labels = map_label_set(labels, run.keep)
        kept = ents
        if policy.active:  # alignments None: marker mode
            with report.stage("filter"):
                idx, tgt_words, labels, rejects = _filter_lists(policy, out.name, tgt_words, labels, ents, alignments,
                                                                run.keep, [s.line for s in sents], report, start)
            if out.rejects is not None:
                out.rejects.write(b"".join(rejects))
            kept = [ents[i] for i in idx]
        with report.stage("write"):
            write_labels(out.fh, tgt_words, labels)
        out.entities_in += sum(map(len, kept))
        out.entities_out += sum(1 for s in labels for lab in s if lab.startswith("B-"))
        out.ratio_sum = _ratio_sum(kept, labels, out.ratio_sum)
        out.sentences += len(labels)

    def row(self, out: _Output) -> None:
        """The QA row of a finished output."""
        extra = {"filter": str(self.policy), "sentences_kept": out.sentences} if self.policy.active else {}
        self.results.append({"lang": out.lang, **out.desc, "sentences": self.run.n, "entities_in": out.entities_in,
                             "entities_out": out.entities_out,
                             "entity_ratio": out.ratio_sum / out.sentences if out.sentences else 0.0, **extra})


def _window(sents: list) -> tuple[list[list[str]], list[list]]:
    """The English words and gold entities of a window's sentences."""
    return [s.tokens for s in sents], [entities_of(s.labels) for s in sents]


def _marker(made: _Made, lang: str, easyproject_translator, cfg: ProjectionConfig, threshold: float) -> None:
    """Marker mode for ``lang``, window by window: EasyProject marker translation, its matched
    brackets the entities."""
    run = made.run
    ep_stats, ep_tr = Counter(), {}
    with OutputFiles(run) as files:
        out = made.open(files, f"{lang}/marker", run.out / f"{lang}.marker.conll", lang, mode="marker")
        for start, sents in run.windows():
            words, ents = _window(sents)
            mk_words, mk_ents, ep, tr, made.splitters[f"{lang}/marker"], made.stages[f"marker/{lang}"] = \
                backtranslate_stage(run.ctx, run.models, easyproject_translator, words, ents, lang, made.wkey,
                                    threshold=threshold, compat=cfg.compat, stage="marker", start=start)
            fail_empty(made.sections(f"marker/{lang}"), f"marker/{lang}", words, mk_words, start)
            ep_stats.update(ep)
            ep_tr = translator_stats([ep_tr, tr])
            made.emit(out, start, sents, ents, mk_words, [labels_of(e, len(w)) for e, w in zip(mk_ents, mk_words)])
    made.qa[f"easyproject/{lang}"] = dict(ep_stats)
    made.qa[f"easyproject_translator/{lang}"] = ep_tr
    made.row(out)


def _translated(made: _Made, ctx: StageContext, lang: str, translator, start: int, words: list[list[str]],
                split) -> tuple[list[list[str]], dict, str]:
    """The window's English translated into ``lang`` and split into words: ``(words, the
    window's translator counts, the stage's key)``."""
    mt, tr_stats, key = translate_stage(
        ctx, made.run.models, translator, lambda lo, hi: [detokenize(w, "en") for w in words[lo - start:hi - start]],
        len(words), "en", lang, made.wkey, start=start)
    with made.run.report.stage("split"):
        return [split(t) for t in mt], tr_stats, key


def _plain(made: _Made, lang: str, translator, ner_model, aligner, align_methods: tuple[str, ...],
           methods: tuple[str, ...], cfg: ProjectionConfig, shard_size: int, workers: int) -> None:
    """Plain mode for ``lang``: translate and split every window first (the NER candidates'
    cache key hashes all the split translations, and a translator whose encoder aligns is
    loaded once), then window by window align English with the translation and project with
    every method (NER candidates on the translation for ``ner-*``)."""
    run = made.run
    split = get_splitter(lang, side="back", compat=cfg.compat)
    ner = any(m.startswith("ner-") for m in methods)
    tgt_key, tr_stats = ListKey(), {}
    for start, sents in run.windows():
        words = [s.tokens for s in sents]
        tgt_words, tr, made.stages[f"translate/{lang}"] = _translated(made, run.ctx, lang, translator, start, words,
                                                                      split)
        tr_stats = translator_stats([tr_stats, tr])
        fail_empty(made.sections(f"translate/{lang}"), f"translate/{lang}", words, tgt_words, start)
        for w in tgt_words if ner else ():
            tgt_key.add(w)
    made.qa[f"translator/{lang}"] = tr_stats
    made.splitters[f"{lang}/plain"] = split.name
    outs = {}
    with OutputFiles(run) as files:
        for am in align_methods:
            for m in methods:
                outs[(am, m)] = made.open(files, f"{lang}/plain/{am}/{m}", run.out / f"{lang}.plain.{am}.{m}.conll",
                                          lang, mode="plain", align_method=am, method=m)
        for start, sents in run.windows():
            words, ents = _window(sents)
            with run.report.stage("reread translations"):
                tgt_words, _, _ = _translated(made, run.replay(), lang, translator, start, words, split)
            candidates = None
            if ner:
                candidates, made.stages[f"ner-receiving/{lang}"] = receiving_ner(
                    run.ctx, run.models, ner_model, tgt_words, truncate=cfg.compat, start=start, root=tgt_key.key())
            alns, keys = align_stage(run.ctx, run.models, aligner, words, tgt_words, align_methods,
                                     {"labeled": made.wkey, "receiving": made.stages[f"translate/{lang}"],
                                      "splitter": split.name}, compat=cfg.compat,
                                     langs=align_languages(aligner, "en", lang), start=start)
            made.stages.update({f"align/{lang}/{am}": k for am, k in keys.items()})
            with run.report.stage("project"):
                labels = project_variants("plain", ents, alns, tgt_words, methods, cfg, made.sections, lang=lang,
                                          candidates=candidates, shard_size=shard_size, keep=run.keep,
                                          workers=workers, start=start)
            for (am, m), labs in labels.items():
                made.emit(outs[(am, m)], start, sents, ents, tgt_words, labs, alignments=alns[am])
    for out in outs.values():
        made.row(out)


def _filter_lists(policy: FilterPolicy, key: str, words: list[list[str]], labels: list[list[str]],
                  entities: list[list], alignments: list | None, keep: set[str] | None, lines: list[int],
                  report, start: int) -> tuple[list[int], list[list[str]], list[list[str]], list[bytes]]:
    """``policy`` on one window of an output (sentences from ``start`` on; ``labels`` after the
    label set; ``alignments`` None in marker mode, where an entity type's projected entities are
    as many as its matched entities, at most as many as the English ones): ``(kept indices in
    the window, their words, their labels, rejects)``, counted in ``report`` under ``key``."""
    types = LabelTypes(sorted({e[2] for es in entities for e in es} | {x[2:] for s in labels for x in s if x != "O"}))
    cols = from_sentences(words, types, labels)
    table = types.table()
    names = types.names
    counted = np.array([keep is None or t in keep for t in names], bool)
    own = [[e for e in es if counted[types.add(e[2])]] for es in entities]
    codes, removed, flags = cols.codes, [[] for _ in words], None
    if alignments is None:  # marker mode: no alignment, counts per type
        n_ent = [len(es) for es in own]
        n_proj = []
        for es, labs in zip(own, labels):
            out = Counter(x[2:] for x in labs if x.startswith("B-"))
            n_proj.append(sum(min(k, out[t]) for t, k in Counter(e[2] for e in es).items()))
        states, dropped = sentence_states(np.array(n_ent), np.array(n_proj), policy)
    else:
        def off(sizes):
            return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

        flat = [e for es in entities for e in es]
        flat_types = np.array([types.add(e[2]) for e in flat], np.int64)
        pairs = np.concatenate([np.asarray(a, np.int64).reshape(-1, 2) for a in alignments]) if alignments \
            else np.zeros((0, 2), np.int64)
        f = filter_batch(cols.codes, cols.sent_off, off([len(es) for es in entities]),
                         np.array([e[:2] for e in flat], np.int64).reshape(-1, 2),
                         flat_types, off([len(a) for a in alignments]),
                         pairs, policy, counted=counted)
        codes, states, dropped = f.codes, f.states, f.dropped
        so, eo = f.spans.offsets.tolist(), off([len(es) for es in entities]).tolist()
        sp, sc, st = f.spans.spans.tolist(), f.spans.scores.tolist(), f.spans.types.tolist()
        removed = [[(*sp[k], names[st[k]], sc[k]) for k in range(so[i], so[i + 1]) if f.removed[k]]
                   for i in range(len(words))]
        flags = [[bool(f.entity_projected[e]) for e in range(eo[i], eo[i + 1]) if counted[flat_types[e]]]
                 for i in range(len(words))]
    sent_off = cols.sent_off.tolist()
    out = [[table[c] for c in codes[sent_off[i]:sent_off[i + 1]].tolist()] for i in range(len(words))]
    idx = [i for i in range(len(words)) if not dropped[i]]
    rejects = [reject_line(start + i, REASONS[states[i]], words[i], out[i], own[i],
                           flags[i] if flags is not None else int(n_proj[i]), removed[i], labeled_line=lines[i])
               for i in range(len(words)) if dropped[i]]
    report.filtered(key, len(idx), Counter(REASONS[states[i]] for i in range(len(words)) if dropped[i]),
                    sum(map(len, removed)))
    return idx, [words[i] for i in idx], [out[i] for i in idx], rejects
