"""Cached corpus stages of the NLLB pipelines (translate-test, translate-train, model transfer):
translation, English NER, EasyProject back-translation, NER on the receiving words and word
alignment, each called on one window of whole shards at a time (``start``: the window's first
sentence in the input), so a pipeline holds one window's sentences, never the whole input.

Each is computed once per input and model, in shards kept in the stage cache
(:mod:`xfast.pipelines.stagecache`); a stage's ``*_shard`` function computes one shard, here or
in a Ray worker (:class:`~xfast.pipelines.engines.ray.StageWorker`), with the same result.
A stage's cache key names its input by the key of the stage before it, and the first stage's
by :func:`words_key` of the whole input, which :class:`ListKey` computes sentence by sentence.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np

from xfast.align import align_states_batch
from xfast.errors import ParameterError, msg
from xfast.io.labels import Entity
from xfast.models.flores import flores_code
from xfast.pipelines.loaders import Models
from xfast.pipelines.qa import RunReport
from xfast.pipelines.stagecache import (StageCache, StageContext, first_shard, run_stage, shard_ranges, stage_bar,
                                        stage_tick)
from xfast.text import EasyProjectStats, back_translate_batch, get_splitter, prefetch_nltk, wait_nltk
from xfast.text.easyproject import SENTENCE_MAX_LENGTH

__all__ = ["receiving_ner", "tag_shard", "tagged", "tagger_counts", "translate_stage", "translate_shard",
           "translator_stats", "fail_empty", "english_ner_stage", "english_ner_shard", "backtranslate_stage",
           "backtranslate_shard", "align_stage", "align_shard", "words_key", "ListKey"]


def words_key(words: list) -> str:
    """Hash of the receiving words (the root of every stage's cache key): the SHA-256 of their
    JSON list."""
    return hashlib.sha256(json.dumps(words, ensure_ascii=False).encode()).hexdigest()[:20]


class ListKey:
    """:func:`words_key` of a list given item by item (:meth:`add`), in bounded memory: the
    same JSON bytes (``[``, the items' JSON joined by ``, ``, ``]``) fed to the hash as they come."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(b"[")
        self._sep = b""

    def add(self, item: object) -> None:
        """The next item of the list."""
        self._hash.update(self._sep + json.dumps(item, ensure_ascii=False).encode())
        self._sep = b", "

    def key(self) -> str:
        """:func:`words_key` of the items added so far."""
        h = self._hash.copy()
        h.update(b"]")
        return h.hexdigest()[:20]


def receiving_ner(ctx: StageContext, models: Models, ner_model, words: list[list[str]], *,
                  truncate: bool = False, start: int = 0, root: str | None = None) -> tuple[list[list[Entity]], str]:
    """The NER model's entities on the receiving words (stage ``ner-receiving``): the
    model-transfer prediction and the ``ner`` candidates. ``words``: the window from sentence
    ``start`` on; ``root``: :func:`words_key` of all the receiving words (default: of
    ``words``, which are then all of them). ``truncate``: docs/compat.md (part of the cache
    key). Missing shards are worked on Ray when ``ctx.remote`` is set; the run's report adds
    the tagger's counts. Returns ``(entities, cache key)``."""
    fields = {"words": root or words_key(words), "tagger": models.tagger_fields(ner_model, truncate=truncate)}

    def compute(lo: int, hi: int):
        return tag_shard(models, ner_model, words[lo - start:hi - start], truncate=truncate, report=ctx.report)

    def task(lo: int, hi: int):
        return tag_shard, {"ner_model": _remote_spec(ner_model), "words": words[lo - start:hi - start],
                           "truncate": truncate}

    records, shard_stats, key = run_stage(ctx, "ner-receiving", fields, len(words), compute, task=task, start=start)
    _add_tagger_counts(ctx.report, "ner-receiving", shard_stats)  # several windows, languages add up
    return [[tuple(e) for e in r["entities"]] for r in records], key


def _add_tagger_counts(report: RunReport, stage: str, shard_stats: list[dict]) -> None:
    counts = tagger_counts(shard_stats)
    prev = report.encoder.get(stage, {})
    report.encoder[stage] = {k: prev.get(k, 0) + v for k, v in counts.items()}


def tag_shard(models: Models, ner_model, words: list[list[str]], *, truncate: bool,
              report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of ``ner-receiving``: ``(records, stats)``."""
    tagger = models.tagger(ner_model, truncate=truncate)
    tagger.on_batch = stage_tick
    with _timed(report, "ner-receiving.model"):
        ents, counts = tagged(tagger, words)
    return [{"entities": [list(e) for e in es]} for es in ents], {"tagger": counts}


def _timed(report: RunReport | None, name: str):
    return report.stage(name) if report is not None else nullcontext()


def _remote_spec(spec):
    """A model spec another process can load: a registry name or a directory, not a loaded object."""
    if isinstance(spec, (str, Path)):
        return spec
    directory = getattr(spec, "model_dir", None) or getattr(getattr(spec, "encoder", None), "model_dir", None)
    raise ParameterError(msg("E202", name="model", expected="a registry name or a directory with --engine ray "
                             "(a loaded model cannot be sent to other processes)", value=directory or spec))


_TAGGER_COUNTS = ("sentences", "words", "words_without_subwords", "windowed_sentences", "truncated_sentences",
                  "windows")


def tagged(tagger, words: list[list[str]]) -> tuple[list, dict]:
    """``tagger``'s entities of ``words`` and this call's counts (sentences, words, windowed
    and truncated sentences, ...), kept with a cached stage so reruns report them too."""
    before = tagger.stats.as_dict()
    ents = tagger.entities(words)
    after = tagger.stats.as_dict()
    return ents, {k: after[k] - before[k] for k in _TAGGER_COUNTS}


def tagger_counts(shard_stats: list[dict]) -> dict:
    """The tagger counts of a cached stage, summed over its shards (every key present)."""
    total = dict.fromkeys(_TAGGER_COUNTS, 0)
    for st in shard_stats:
        for k, v in st.get("tagger", {}).items():
            total[k] += v
    return total


FORWARD_MAX_LENGTH = 200


def _translator_delta(stats, before: dict, start: int, call: int) -> dict:
    """This call's translator counts, with flagged outputs as corpus sentence indices."""
    now = stats.as_dict()
    delta = {k: now[k] - before[k] for k in ("sentences", "empty", "repetition_loops", "truncated", "split",
                                              "source_tokens", "target_tokens")}
    delta["flagged"] = [[start + i, reason] for c, i, reason in stats.flagged if c == call]
    return delta


def translator_stats(shard_stats: list[dict]) -> dict:
    """Sum per-shard translator counts; flagged outputs listed (first 1000). Totals fold on:
    ``translator_stats([total, more])`` is the total of both, in order."""
    total: Counter = Counter()
    flagged: list = []
    for st in shard_stats:
        for k, v in st.items():
            if k == "flagged":
                flagged.extend(v[:1000 - len(flagged)])
            else:
                total[k] += v
    return {**dict(total), "flagged": flagged}


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


def fail_empty(report: RunReport, where: str, sources: list, outputs: list, start: int = 0) -> None:
    for i, (src, out) in enumerate(zip(sources, outputs)):
        if src and not out:
            report.fail(where, start + i, f"{where}-empty: the translation is empty")


def translate_stage(ctx: StageContext, models: Models, translator, texts_of, n: int, src: str, tgt: str,
                    upstream: str, *, stage: str = "translate", start: int = 0) -> tuple[list[str], dict, str]:
    """NLLB translation of ``texts_of(lo, hi)`` (greedy, ``max_length`` 200), cached, for the
    ``n`` sentences from sentence ``start`` on (``lo``, ``hi``: input sentence numbers).

    Returns ``(translations, the window's translator counts, cache key)``.
    """
    fields = {"upstream": upstream, "src": flores_code(src), "tgt": flores_code(tgt),
              "translator": models.translator_fields(translator), "max_length": FORWARD_MAX_LENGTH}

    def compute(lo: int, hi: int):
        prefetch_nltk()  # the source texts are detokenized with NLTK: import it while the model loads
        models.translator(translator)
        with ctx.report.stage("import nltk"):
            wait_nltk()
        return translate_shard(models, translator, texts_of(lo, hi), src=src, tgt=tgt, start=lo, stage=stage,
                               report=ctx.report)

    def task(lo: int, hi: int):
        return translate_shard, {"translator": _remote_spec(translator), "texts": texts_of(lo, hi), "src": src,
                                 "tgt": tgt, "start": lo, "stage": stage}

    records, shard_stats, key = run_stage(ctx, stage, fields, n, compute, task=task, start=start)
    return [r["text"] for r in records], translator_stats([s["translator"] for s in shard_stats]), key


def translate_shard(models: Models, translator, texts: list[str], *, src: str, tgt: str, start: int, stage: str,
                    report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of a translate stage (``texts`` from sentence ``start`` on): ``(records, stats)``."""
    tr = models.translator(translator)
    tr.on_batch = stage_tick
    with _timed(report, f"{stage}.model"):
        out, delta = _translate(tr, texts, src, tgt, FORWARD_MAX_LENGTH, start)
    return [{"text": t} for t in out], {"translator": delta}


def english_ner_stage(ctx: StageContext, models: Models, ner_model, texts: list[str], upstream: str, *,
                      truncate: bool = False, start: int = 0) -> tuple[list[list[str]], list[list[Entity]], str, str]:
    """Split English MT (docs/translation.md, ``side="mt"``) and tag it (``texts``: the window
    from sentence ``start`` on; the run's report adds the tagger's counts); ``truncate``:
    docs/compat.md (part of the cache key). Returns ``(words, entities, splitter name, cache key)``."""
    split = get_splitter("en", side="mt")
    fields = {"upstream": upstream, "splitter": split.name,
              "tagger": models.tagger_fields(ner_model, truncate=truncate)}

    def compute(lo: int, hi: int):
        return english_ner_shard(models, ner_model, texts[lo - start:hi - start], truncate=truncate,
                                 report=ctx.report)

    def task(lo: int, hi: int):
        return english_ner_shard, {"ner_model": _remote_spec(ner_model), "texts": texts[lo - start:hi - start],
                                   "truncate": truncate}

    records, shard_stats, key = run_stage(ctx, "ner-en", fields, len(texts), compute, task=task, start=start)
    _add_tagger_counts(ctx.report, "ner-en", shard_stats)
    return ([r["words"] for r in records], [[tuple(e) for e in r["entities"]] for r in records],
            split.name, key)


def english_ner_shard(models: Models, ner_model, texts: list[str], *, truncate: bool,
                      report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of ``ner-en``: English MT split into words and tagged; ``(records, stats)``."""
    prefetch_nltk()
    tagger = models.tagger(ner_model, truncate=truncate)
    tagger.on_batch = stage_tick
    with _timed(report, "import nltk"):
        wait_nltk()
    split = get_splitter("en", side="mt")
    words = [split(t) for t in texts]
    with _timed(report, "ner-en.model"):
        ents, counts = tagged(tagger, words)
    return ([{"words": w, "entities": [list(e) for e in es]} for w, es in zip(words, ents)], {"tagger": counts})


def backtranslate_stage(ctx: StageContext, models: Models, translator, words: list[list[str]],
                        entities: list[list[Entity]], lang: str, upstream: str, *, threshold: float, compat: bool,
                        src: str = "en", stage: str = "backtranslate", start: int = 0):
    """EasyProject marker translation of labeled sentences into ``lang`` (docs/translation.md),
    cached; ``words`` and ``entities``: the window from sentence ``start`` on.

    Returns ``(words, entities, the window's easyproject counts, its translator counts,
    splitter name, key)``.
    """
    splitter = get_splitter(lang, side="back", compat=compat).name
    fields = {"upstream": upstream, "src": flores_code(src), "lang": flores_code(lang), "threshold": threshold,
              "compat": compat, "splitter": splitter, "translator": models.translator_fields(translator)}
    kw = dict(src=src, lang=lang, threshold=threshold, compat=compat, stage=stage)

    def compute(lo: int, hi: int):
        return backtranslate_shard(models, translator, words[lo - start:hi - start], entities[lo - start:hi - start],
                                   start=lo, report=ctx.report, **kw)

    def task(lo: int, hi: int):
        return backtranslate_shard, {"translator": _remote_spec(translator), "words": words[lo - start:hi - start],
                                     "entities": entities[lo - start:hi - start], "start": lo, **kw}

    records, shard_stats, key = run_stage(ctx, stage, fields, len(words), compute, task=task, start=start)
    ep = Counter()
    for s in shard_stats:
        ep.update(s["easyproject"])
    return ([r["words"] for r in records], [[tuple(e) for e in r["entities"]] for r in records],
            dict(ep), translator_stats([s["translator"] for s in shard_stats]), splitter, key)


def backtranslate_shard(models: Models, translator, words: list[list[str]], entities: list[list[Entity]], *,
                        src: str, lang: str, threshold: float, compat: bool, start: int, stage: str,
                        report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of a marker translation stage (sentences from ``start`` on): ``(records, stats)``."""
    prefetch_nltk()
    tr = models.translator(translator)
    with _timed(report, "import nltk"):
        wait_nltk()
    deltas: list[dict] = []

    def translate(texts: list[str], max_length: int) -> list[str]:
        out, delta = _translate(tr, texts, src, lang, max_length, start)
        if max_length != SENTENCE_MAX_LENGTH:  # entity texts: no sentence index to flag
            delta["flagged"] = []
        deltas.append(delta)
        return out

    eps = EasyProjectStats()
    with _timed(report, f"{stage}.model"):
        res = back_translate_batch(words, entities, translate, lang=lang, threshold=threshold, compat=compat,
                                   stats=eps)
    return ([{"words": w, "entities": [list(e) for e in es]} for w, es in res],
            {"easyproject": asdict(eps), "translator": translator_stats(deltas)})


def align_stage(ctx: StageContext, models: Models, aligner, labeled: list[list[str]], receiving: list[list[str]],
                methods: tuple[str, ...], upstream: dict, *, compat: bool, stage: str = "align",
                langs: tuple[str, str] | None = None, start: int = 0) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Word alignments ``(labeled, receiving)`` for each extraction method, cached per method,
    of the window of sentence pairs from ``start`` on.

    Each shard's sentences are encoded once for all methods whose shard is missing. A pair
    with an empty side has no pairs. Missing shards are worked on Ray when ``ctx.remote`` is set. ``langs``: the
    two sides' languages, for an aligner that reads them (a translator's encoder; None for
    others, whose cache keys stay as they were). Returns ``({method: alignments}, {method:
    cache key})``.
    """
    base = models.aligner_fields(aligner)
    # compat changes every method (the aligner truncates at the model's limit, docs/alignment.md), not
    # only softmax's pair order
    key = {**upstream, "aligner": base, **({"langs": list(langs)} if langs else {})}
    caches = {m: StageCache(ctx.cache, stage, {**key, "method": m, "compat": compat},
                            shard_size=ctx.shard_size, stats=ctx.cache_stats) for m in methods}
    result: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    first = first_shard(start, ctx.shard_size)
    ranges = [(lo, hi, first + i) for i, (lo, hi) in enumerate(shard_ranges(len(labeled), ctx.shard_size))]
    with ctx.report.stage(stage), stage_bar(ctx, stage, len(labeled)) as bar:
        loaded = [{m: c.load(k, start + lo, hi - lo) for m, c in caches.items()} for lo, hi, k in ranges]
        missing = [[m for m in methods if got[m] is None] for got in loaded]
        remote_results = iter(())
        if ctx.remote is not None and any(missing):
            remote_results = ctx.remote.map([
                (align_shard, {"aligner": _remote_spec(aligner), "labeled": labeled[lo:hi],
                               "receiving": receiving[lo:hi], "methods": missing[i], "compat": compat,
                               "langs": langs})
                for i, (lo, hi, _) in enumerate(ranges) if missing[i]])
        for i, (lo, hi, k) in enumerate(ranges):
            got = loaded[i]
            if missing[i]:
                if ctx.remote is not None:
                    computed = next(remote_results)
                else:
                    computed = align_shard(models, aligner, labeled[lo:hi], receiving[lo:hi], missing[i],
                                           compat=compat, report=ctx.report, stage=stage, langs=langs)
                for m in missing[i]:
                    got[m] = caches[m].save(k, start + lo, computed[m], {}), {}
            for m in methods:
                result[m].extend(np.asarray(r["pairs"], dtype=np.int32).reshape(-1, 2) for r in got[m][0])
            loaded[i] = None
            bar.n = start + hi if ctx.bars is not None else hi  # the run's bar counts the whole input
            bar.refresh()
    return result, {m: c.key for m, c in caches.items()}


def align_shard(models: Models, aligner, labeled: list[list[str]], receiving: list[list[str]],
                methods: Sequence[str], *, compat: bool, report: RunReport | None = None,
                stage: str = "align", langs: tuple[str, str] | None = None) -> dict[str, list[dict]]:
    """One shard of an align stage: each method's records (``{"pairs": [[i, j], ...]}`` per
    pair; none where a side is empty), the sentences encoded once for all methods
    (``langs``: the sides' languages, for a translator's encoder)."""
    al = models.aligner(aligner, method=methods[0], compat=compat)
    idx = [i for i in range(len(labeled)) if labeled[i] and receiving[i]]
    with _timed(report, f"{stage}.model"):
        lab = al.encode([labeled[i] for i in idx], lang=langs[0] if langs else None)
        rec = al.encode([receiving[i] for i in idx], lang=langs[1] if langs else None)
    kw = {key: al.settings[key] for key in ("token_type", "distortion", "max_count", "alpha", "threshold")}
    out = {}
    for m in methods:
        with _timed(report, f"{stage}.extract"):
            pairs = align_states_batch([e.states for e in lab], [e.states for e in rec],
                                       [e.word_ids for e in lab], [e.word_ids for e in rec],
                                       method=m, compat_awesome=compat and m == "softmax",
                                       **{**kw, "distortion": 0.0 if m == "softmax" else kw["distortion"]})
        by_index = dict(zip(idx, pairs))
        out[m] = [{"pairs": by_index[i].tolist() if i in by_index else []} for i in range(len(labeled))]
    return out


