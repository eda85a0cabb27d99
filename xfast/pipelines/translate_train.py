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

import numpy as np

from xfast.errors import ParameterError, check_choice, msg
from xfast.io import entities_of, labels_of
from xfast.io.tokens import LabelTypes, from_sentences
from xfast.io.files import atomic_open
from xfast.models.flores import flores_code, partition
from xfast.pipelines.context import Run, check_methods, map_label_set, open_run, write_labels
from xfast.pipelines.engines.ray import RaySettings
from xfast.pipelines.loaders import (ModelOptions, align_languages, default_align_methods, describe_model,
                                     pipeline_aligner)
from xfast.pipelines.manifest import file_sha256, versions, write_summaries
from xfast.pipelines.rundir import check_name
from xfast.pipelines.stages.corpus import (align_stage, backtranslate_stage, fail_empty, receiving_ner,
                                           translate_stage, words_key)
from xfast.pipelines.stages.projection import project_variants
from xfast.project.config import ProjectionConfig
from xfast.project.filtering import REASONS, FilterPolicy, filter_batch, reject_line, sentence_states
from xfast.text import detokenize, get_splitter

__all__ = ["TRAIN_MODES", "translate_train", "entity_ratio"]

TRAIN_MODES = ("plain", "marker")


def entity_ratio(source_entities: list[list], labels: list[list[str]]) -> float:
    """Mean over sentences of ``#B- out / #entities in`` (1 or 0 for a sentence with none in)."""
    if not labels:
        return 0.0
    total = 0.0
    for ents, labs in zip(source_entities, labels):
        n_out = sum(1 for lab in labs if lab.startswith("B-"))
        total += n_out / len(ents) if ents else float(n_out == 0)
    return total / len(labels)


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
    made = _Made(run, policy, [entities_of(s.labels) for s in run.sents],
                 words_key([[w, s.labels] for w, s in zip(run.words, run.sents)]))
    for lang in langs:
        if "marker" in modes:
            _marker(made, lang, easyproject_translator, cfg, threshold)
        if "plain" in modes:
            _plain(made, lang, translator, ner_model, aligner, align_methods, methods, cfg, shard_size, host_workers)
    report, models = run.report, run.models
    report.sentences_out = len(run.words)
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
class _Made:
    """A translate-train run's state between languages and modes: the run, the filter policy,
    the English entities, the stage caches' root key, and what the outputs add up to (files, QA rows, stage keys, QA
    additions, splitter names)."""

    run: Run
    policy: FilterPolicy
    ents: list[list]
    wkey: str  # the stage caches' root: the English words and labels
    outputs: dict[str, Path] = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)
    qa: dict[str, dict] = field(default_factory=dict)
    splitters: dict[str, str] = field(default_factory=dict)

    def emit(self, name: str, path: Path, tgt_words: list[list[str]], labels: list[list[str]], lang: str, *,
             alignments: list | None = None, **desc) -> None:
        """One output: the label set, the filter (rejects beside it), the file and its QA row."""
        run, report, policy = self.run, self.run.report, self.policy
        labels = map_label_set(labels, run.keep)
        kept, extra = self.ents, {}
        if policy.active:  # alignments None: marker mode
            with report.stage("filter"):
                idx, tgt_words, labels, rejects = _filter_lists(policy, name, tgt_words, labels, self.ents,
                                                                alignments, run.keep, [s.line for s in run.sents],
                                                                report)
            if policy.drops:
                write_rejects(path.with_suffix(".rejects.jsonl"), rejects)
                self.outputs[f"{name}/rejects"] = path.with_suffix(".rejects.jsonl")
            kept, extra = [self.ents[i] for i in idx], {"filter": str(policy), "sentences_kept": len(idx)}
        with report.stage("write"):
            write_labels(path, tgt_words, labels)
        self.outputs[name] = path
        entities_out = sum(1 for s in labels for lab in s if lab.startswith("B-"))
        self.results.append({"lang": lang, **desc, "sentences": len(run.words), "entities_in": sum(map(len, kept)),
                             "entities_out": entities_out, "entity_ratio": entity_ratio(kept, labels), **extra})


def _marker(made: _Made, lang: str, easyproject_translator, cfg: ProjectionConfig, threshold: float) -> None:
    """Marker mode for ``lang``: EasyProject marker translation, its matched brackets the entities."""
    run = made.run
    mk_words, mk_ents, ep_stats, ep_tr, made.splitters[f"{lang}/marker"], key = backtranslate_stage(
        run.ctx, run.models, easyproject_translator, run.words, made.ents, lang, made.wkey, threshold=threshold,
        compat=cfg.compat, stage="marker")
    made.stages[f"marker/{lang}"] = key
    fail_empty(run.report, f"marker/{lang}", run.words, mk_words)
    made.qa[f"easyproject/{lang}"] = ep_stats
    made.qa[f"easyproject_translator/{lang}"] = ep_tr
    made.emit(f"{lang}/marker", run.out / f"{lang}.marker.conll", mk_words,
              [labels_of(e, len(w)) for e, w in zip(mk_ents, mk_words)], lang, mode="marker")


def _plain(made: _Made, lang: str, translator, ner_model, aligner, align_methods: tuple[str, ...],
           methods: tuple[str, ...], cfg: ProjectionConfig, shard_size: int, workers: int) -> None:
    """Plain mode for ``lang``: translate, split, align English with the translation and
    project with every method (NER candidates on the translation for ``ner-*``)."""
    run, words = made.run, made.run.words
    mt, tr_stats, made.stages[f"translate/{lang}"] = translate_stage(
        run.ctx, run.models, translator, lambda lo, hi: [detokenize(w, "en") for w in words[lo:hi]], len(words),
        "en", lang, made.wkey)
    made.qa[f"translator/{lang}"] = tr_stats
    split = get_splitter(lang, side="back", compat=cfg.compat)
    made.splitters[f"{lang}/plain"] = split.name
    with run.report.stage("split"):
        tgt_words = [split(t) for t in mt]
    fail_empty(run.report, f"translate/{lang}", words, tgt_words)
    candidates = None
    if any(m.startswith("ner-") for m in methods):
        candidates, made.stages[f"ner-receiving/{lang}"] = receiving_ner(run.ctx, run.models, ner_model, tgt_words,
                                                                         truncate=cfg.compat)
    alns, keys = align_stage(run.ctx, run.models, aligner, words, tgt_words, align_methods,
                             {"labeled": made.wkey, "receiving": made.stages[f"translate/{lang}"],
                              "splitter": split.name}, compat=cfg.compat, langs=align_languages(aligner, "en", lang))
    made.stages.update({f"align/{lang}/{am}": k for am, k in keys.items()})
    for (am, m), labels in project_variants("plain", made.ents, alns, tgt_words, methods, cfg, run.report,
                                            lang=lang, candidates=candidates, shard_size=shard_size,
                                            keep=run.keep, workers=workers).items():
        made.emit(f"{lang}/plain/{am}/{m}", run.out / f"{lang}.plain.{am}.{m}.conll", tgt_words, labels, lang,
                  mode="plain", align_method=am, method=m, alignments=alns[am])


def _filter_lists(policy: FilterPolicy, key: str, words: list[list[str]], labels: list[list[str]],
                  entities: list[list], alignments: list | None, keep: set[str] | None, lines: list[int],
                  report) -> tuple[list[int], list[list[str]], list[list[str]], list[bytes]]:
    """``policy`` on one output (``labels`` after the label set; ``alignments`` None in marker
    mode, where an entity type's projected entities are as many as its matched entities, at
    most as many as the English ones): ``(kept indices, their words, their labels, rejects)``,
    counted in ``report`` under ``key``."""
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
    rejects = [reject_line(i, REASONS[states[i]], words[i], out[i], own[i],
                           flags[i] if flags is not None else int(n_proj[i]), removed[i], labeled_line=lines[i])
               for i in range(len(words)) if dropped[i]]
    report.filtered(key, len(idx), Counter(REASONS[states[i]] for i in range(len(words)) if dropped[i]),
                    sum(map(len, removed)))
    return idx, [words[i] for i in idx], [out[i] for i in idx], rejects


def write_rejects(path: Path, lines: list[bytes]) -> None:
    """A rejects file (docs/formats.md), atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(b"".join(lines))
