"""The pipelines' stages.

Columnar batch stages (``xfast project``): each a function from columnar arrays to columnar arrays.

Data flows one way: text columns (:class:`~xfast.io.columns.TokenColumns`) -> subwords
(:func:`tokenize`) -> encoder states (:func:`encode`, the only stage that runs a model) ->
word alignment (:func:`align`) -> label codes (:func:`project`) -> CoNLL bytes
(:func:`~xfast.io.columns.conll_bytes`) and score counts. No stage keeps state between
calls beyond what its arguments hold (a model, a word cache), so an engine may run them in
threads, processes or on other machines. Python strings are made only where text is written.

Cached corpus stages (translate-test, translate-train, model transfer): translation, English
NER, EasyProject back-translation, NER on the receiving words, alignment; each computed once per
input and model, in shards kept in the stage cache (:mod:`xfast.pipelines.cache`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xfast.errors import ParameterError, XfastError, msg
from xfast.io.columns import LabelTypes, TokenColumns
from xfast.pipelines.cache import CacheStats, run_stage, stage_tick
from xfast.pipelines.runner import (PROJECTION_METHODS, Models, ProjectionConfig, RunReport, project_batch,
                                    words_key)

Entity = tuple[int, int, str]

__all__ = ["Entities", "Alignment", "tokenize", "encode", "align", "entities", "candidates", "project",
           "keep_types", "count_entities", "translate_stage", "english_ner_stage", "backtranslate_stage",
           "align_stage", "project_variants", "receiving_ner", "tagged", "tagger_counts", "translator_stats",
           "fail_empty"]


@dataclass(frozen=True, eq=False)
class Entities:
    """Entities of S sentences: sentence i owns ``spans[offsets[i]:offsets[i+1]]`` (int64 (E, 2)
    half-open word spans) with ``types`` (int64 (E,) ids of a :class:`LabelTypes`)."""

    offsets: np.ndarray
    spans: np.ndarray
    types: np.ndarray


@dataclass(frozen=True, eq=False)
class Alignment:
    """Word pairs of S sentence pairs: pair i owns ``pairs[offsets[i]:offsets[i+1]]``, int32
    ``(labeled, receiving)`` rows, sorted."""

    offsets: np.ndarray
    pairs: np.ndarray


def tokenize(cols: TokenColumns, encoder):
    """Subword ids of every word (the encoder's per-word cache)."""
    return encoder.subwords(cols)


def encode(sub, encoder, transform=None, on_batch=None, lang: str | None = None):
    """Layer-L states of every subword (:class:`~xfast.models.encoder.States`): the model
    forward, then ``transform`` on each output while it is in cache; ``on_batch(n)`` after
    each model call. ``lang``: the side's language, for a translator's encoder."""
    return encoder.encode_subwords(sub, lang=lang, transform=transform, on_batch=on_batch)


def align(labeled: tuple, receiving: tuple, aligner) -> Alignment:
    """Word pairs of each sentence pair from ``(subwords, states)`` of both sides."""
    offsets, pairs = aligner.align_columnar(labeled[0], labeled[1], receiving[0], receiving[1])
    return Alignment(offsets, pairs)


def entities(cols: TokenColumns, *, compat: bool = False) -> Entities:
    """Entities of a labeled batch's IOB2 codes. ``compat``: the reference's reader loses an
    entity that a ``B-`` directly follows (docs/translation.md)."""
    from xfast.io.columns import _K

    off, spans, types = _K.entities(cols.codes, cols.sent_off, compat)
    return Entities(off, spans, types)


def candidates(kind: str, cols: TokenColumns, cfg: ProjectionConfig, ner: TokenColumns | None = None):
    """Candidate spans of the receiving side as :class:`xfast.project.Spans`: ``ngram`` spans
    without a stop word, or the entities of ``ner`` (a NER model's labels of the same words)."""
    from xfast import project as P
    from xfast.io.columns import _K

    if kind == "ngram":
        stops = [w.encode("utf-8") for w in cfg.stop_words]
        mask = _K.stop_mask(cols.text, cols.tok_off, stops)
        return P.ngram_spans(mask, cols.sent_off, min_words=cfg.min_words, max_words=cfg.max_words)
    ents = entities(ner)
    if not cfg.sub_spans:
        return P.Spans(ents.offsets, ents.spans)
    per = [P.ner_candidates(ents.spans[ents.offsets[i]:ents.offsets[i + 1]].tolist(), sub_spans=True)
           for i in range(len(ents.offsets) - 1)]
    return P._spans(per)


def project(method: str, ents: Entities, aln: Alignment, n_receiving: np.ndarray,
            cfg: ProjectionConfig, cands=None) -> tuple[np.ndarray, object]:
    """Label codes (int64, one per receiving word) and the method's statistics."""
    from xfast import project as P

    if method == "heuristic":
        codes, _, stats = P.heuristic_columnar(
            ents.offsets, ents.spans, ents.types, aln.offsets, aln.pairs, n_receiving,
            length_ratio=cfg.length_ratio, merge_distance=cfg.merge_distance, compat=cfg.compat)
    else:
        codes, _, stats = P.match_columnar(
            ents.offsets, ents.spans, ents.types, cands, aln.offsets, aln.pairs, n_receiving,
            method=method.split("-")[1], compat=cfg.compat)
    return codes, stats


def project_counted(method: str, ents: Entities, aln: Alignment, n_receiving: np.ndarray,
                    cfg: ProjectionConfig, report: RunReport, *, key: str, offset: int,
                    cands=None) -> np.ndarray:
    """:func:`project`, with a batch that fails run sentence by sentence: each failing
    sentence is all ``O``, counted in ``report`` under ``key`` with its corpus index."""
    from xfast import project as P

    try:
        codes, stats = project(method, ents, aln, n_receiving, cfg, cands)
        _add_stats(report, key, stats)
        return codes
    except XfastError:
        pass
    out = []
    for i in range(len(n_receiving)):
        e = Entities(*_one(ents.offsets, i, ents.spans, ents.types))
        a = Alignment(*_one(aln.offsets, i, aln.pairs))
        c = None if cands is None else P.Spans(*_one(cands.offsets, i, cands.spans))
        try:
            codes, stats = project(method, e, a, n_receiving[i:i + 1], cfg, c)
            _add_stats(report, key, stats)
        except XfastError as err:
            report.fail(key, offset + i, f"projection: {_alone(err)}")
            codes = np.zeros(int(n_receiving[i]), np.int64)
        out.append(codes)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _alone(err: Exception) -> str:
    """A one-sentence retry's error without its "sentence 0" (the report has the real index)."""
    return str(err).replace("[E303] sentence 0: ", "[E303] ")


def _one(offsets: np.ndarray, i: int, *arrays: np.ndarray) -> tuple:
    a, b = int(offsets[i]), int(offsets[i + 1])
    return (np.array([0, b - a], np.int64), *(x[a:b] for x in arrays))


def _add_stats(report: RunReport, key: str, stats) -> None:
    report.projection[key].update(stats.as_dict())  # zeros too: the same keys in every run


def keep_types(codes: np.ndarray, types: LabelTypes, keep: set[str] | None) -> np.ndarray:
    """Codes whose type is outside ``keep`` become ``O`` (docs/translation.md); None keeps all."""
    if keep is None:
        return codes
    table = np.arange(1 + 2 * len(types), dtype=codes.dtype)
    for t, name in enumerate(types.names):
        if name not in keep:
            table[2 * t + 1] = table[2 * t + 2] = 0
    return table[codes]


def count_entities(report: RunReport, key: str, ents: Entities, projected: np.ndarray, written: np.ndarray,
                   types: LabelTypes) -> None:
    """QA per type: labeled entities in, entities written out (after the label set), and
    projected entities the label set removed."""
    names = types.names
    counter = report.entities[key]

    def add(kind: str, values: np.ndarray) -> None:
        for t, n in enumerate(np.bincount(values, minlength=len(names)).tolist()):
            if n:
                counter[f"{names[t]}:{kind}"] += n

    add("in", ents.types)
    starts = (projected & 1) == 1
    kept = starts & (written == projected)
    add("out", (projected[kept] - 1) >> 1)
    add("removed_by_label_set", (projected[starts & ~kept] - 1) >> 1)


def methods_valid(methods: Sequence[str]) -> None:
    """Raise [E201] for a method outside :data:`PROJECTION_METHODS`."""
    from xfast.errors import check_choice

    for m in methods:
        check_choice("methods", m, PROJECTION_METHODS)


# --------------------------------------------------------------------------- cached stages of the NLLB pipelines (whole-corpus lists)


def receiving_ner(models: Models, ner_model, words: list[list[str]], *, cache: Path, shard_size: int,
                  cache_stats: CacheStats, report: RunReport, progress: bool,
                  truncate: bool = False, remote=None) -> tuple[list[list[Entity]], str]:
    """The NER model's entities on the receiving words (stage ``ner-receiving``): the
    model-transfer prediction and the ``ner`` candidates. ``truncate``: docs/compat.md (part
    of the cache key). ``remote``: missing shards worked on Ray
    (:class:`~xfast.pipelines.ray_engine.RemoteStages`). Returns ``(entities, cache key)``."""
    fields = {"words": words_key(words), "tagger": models.tagger_fields(ner_model, truncate=truncate)}

    def compute(lo: int, hi: int):
        return tag_shard(models, ner_model, words[lo:hi], truncate=truncate, report=report)

    def task(lo: int, hi: int):
        return tag_shard, {"ner_model": _remote_spec(ner_model), "words": words[lo:hi], "truncate": truncate}

    records, shard_stats, key = run_stage(cache, "ner-receiving", fields, len(words), compute,
                                          shard_size=shard_size, stats=cache_stats, report=report,
                                          progress=progress, task=task, remote=remote)
    counts = tagger_counts(shard_stats)  # several languages (translate-train) add up
    prev = report.encoder.get("ner-receiving", {})
    report.encoder["ner-receiving"] = {k: prev.get(k, 0) + v for k, v in counts.items()}
    return [[tuple(e) for e in r["entities"]] for r in records], key


def tag_shard(models: Models, ner_model, words: list[list[str]], *, truncate: bool,
              report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of ``ner-receiving``: ``(records, stats)``."""
    tagger = models.tagger(ner_model, truncate=truncate)
    tagger.on_batch = stage_tick
    with _timed(report, "ner-receiving.model"):
        ents, counts = tagged(tagger, words)
    return [{"entities": [list(e) for e in es]} for es in ents], {"tagger": counts}


def _timed(report: RunReport | None, name: str):
    from contextlib import nullcontext

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


def fail_empty(report: RunReport, where: str, sources: list, outputs: list, start: int = 0) -> None:
    for i, (src, out) in enumerate(zip(sources, outputs)):
        if src and not out:
            report.fail(where, start + i, f"{where}-empty: the translation is empty")


def translate_stage(models: Models, translator, texts_of, n: int, src: str, tgt: str, upstream: str, *,
                    cache: Path, shard_size: int, cache_stats: CacheStats, report: RunReport,
                    progress: bool, stage: str = "translate", remote=None) -> tuple[list[str], dict, str]:
    """NLLB translation of ``texts_of(lo, hi)`` (greedy, ``max_length`` 200), cached.

    Returns ``(translations, translator counts, cache key)``.
    """
    from xfast.models.flores import flores_code

    fields = {"upstream": upstream, "src": flores_code(src), "tgt": flores_code(tgt),
              "translator": models.translator_fields(translator), "max_length": FORWARD_MAX_LENGTH}

    def compute(lo: int, hi: int):
        from xfast.text import prefetch_nltk, wait_nltk

        prefetch_nltk()  # the source texts are detokenized with NLTK: import it while the model loads
        models.translator(translator)
        with report.stage("import nltk"):
            wait_nltk()
        return translate_shard(models, translator, texts_of(lo, hi), src=src, tgt=tgt, start=lo, stage=stage,
                               report=report)

    def task(lo: int, hi: int):
        return translate_shard, {"translator": _remote_spec(translator), "texts": texts_of(lo, hi), "src": src,
                                 "tgt": tgt, "start": lo, "stage": stage}

    records, shard_stats, key = run_stage(cache, stage, fields, n, compute, shard_size=shard_size,
                                          stats=cache_stats, report=report, progress=progress, task=task,
                                          remote=remote)
    return [r["text"] for r in records], translator_stats([s["translator"] for s in shard_stats]), key


def translate_shard(models: Models, translator, texts: list[str], *, src: str, tgt: str, start: int, stage: str,
                    report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of a translate stage (``texts`` from sentence ``start`` on): ``(records, stats)``."""
    tr = models.translator(translator)
    tr.on_batch = stage_tick
    with _timed(report, f"{stage}.model"):
        out, delta = _translate(tr, texts, src, tgt, FORWARD_MAX_LENGTH, start)
    return [{"text": t} for t in out], {"translator": delta}


def english_ner_stage(models: Models, ner_model, texts: list[str], upstream: str, *, cache: Path,
                      shard_size: int, cache_stats: CacheStats, report: RunReport, progress: bool,
                      truncate: bool = False, remote=None) -> tuple[list[list[str]], list[list[Entity]], str, str]:
    """Split English MT (docs/translation.md, ``side="mt"``) and tag it; ``truncate``: docs/compat.md (part
    of the cache key). Returns ``(words, entities, splitter name, cache key)``."""
    from xfast.text import get_splitter

    split = get_splitter("en", side="mt")
    fields = {"upstream": upstream, "splitter": split.name,
              "tagger": models.tagger_fields(ner_model, truncate=truncate)}

    def compute(lo: int, hi: int):
        return english_ner_shard(models, ner_model, texts[lo:hi], truncate=truncate, report=report)

    def task(lo: int, hi: int):
        return english_ner_shard, {"ner_model": _remote_spec(ner_model), "texts": texts[lo:hi], "truncate": truncate}

    records, shard_stats, key = run_stage(cache, "ner-en", fields, len(texts), compute, shard_size=shard_size,
                                          stats=cache_stats, report=report, progress=progress, task=task,
                                          remote=remote)
    report.encoder["ner-en"] = tagger_counts(shard_stats)
    return ([r["words"] for r in records], [[tuple(e) for e in r["entities"]] for r in records],
            split.name, key)


def english_ner_shard(models: Models, ner_model, texts: list[str], *, truncate: bool,
                      report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of ``ner-en``: English MT split into words and tagged; ``(records, stats)``."""
    from xfast.text import get_splitter, prefetch_nltk, wait_nltk

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


def backtranslate_stage(models: Models, translator, words: list[list[str]], entities: list[list[Entity]],
                        lang: str, upstream: str, *, threshold: float, compat: bool, cache: Path,
                        shard_size: int, cache_stats: CacheStats, report: RunReport, progress: bool,
                        src: str = "en", stage: str = "backtranslate", remote=None):
    """EasyProject marker translation of labeled sentences into ``lang`` (docs/translation.md), cached.

    Returns ``(words, entities, easyproject counts, translator counts, splitter name, key)``.
    """
    from xfast.models.flores import flores_code
    from xfast.text import get_splitter

    splitter = get_splitter(lang, side="back", compat=compat).name
    fields = {"upstream": upstream, "src": flores_code(src), "lang": flores_code(lang), "threshold": threshold,
              "compat": compat, "splitter": splitter, "translator": models.translator_fields(translator)}
    kw = dict(src=src, lang=lang, threshold=threshold, compat=compat, stage=stage)

    def compute(lo: int, hi: int):
        return backtranslate_shard(models, translator, words[lo:hi], entities[lo:hi], start=lo, report=report, **kw)

    def task(lo: int, hi: int):
        return backtranslate_shard, {"translator": _remote_spec(translator), "words": words[lo:hi],
                                     "entities": entities[lo:hi], "start": lo, **kw}

    records, shard_stats, key = run_stage(cache, stage, fields, len(words), compute, shard_size=shard_size,
                                          stats=cache_stats, report=report, progress=progress, task=task,
                                          remote=remote)
    ep = Counter()
    for s in shard_stats:
        ep.update(s["easyproject"])
    return ([r["words"] for r in records], [[tuple(e) for e in r["entities"]] for r in records],
            dict(ep), translator_stats([s["translator"] for s in shard_stats]), splitter, key)


def backtranslate_shard(models: Models, translator, words: list[list[str]], entities: list[list[Entity]], *,
                        src: str, lang: str, threshold: float, compat: bool, start: int, stage: str,
                        report: RunReport | None = None) -> tuple[list, dict]:
    """One shard of a marker translation stage (sentences from ``start`` on): ``(records, stats)``."""
    from dataclasses import asdict

    from xfast.text import EasyProjectStats, back_translate_batch, prefetch_nltk, wait_nltk
    from xfast.text.easyproject import SENTENCE_MAX_LENGTH

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


def align_stage(models: Models, aligner, labeled: list[list[str]], receiving: list[list[str]],
                methods: tuple[str, ...], upstream: dict, *, compat: bool, cache: Path, shard_size: int,
                cache_stats: CacheStats, report: RunReport, progress: bool,
                stage: str = "align", remote=None,
                langs: tuple[str, str] | None = None) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Word alignments ``(labeled, receiving)`` for each extraction method, cached per method.

    Each shard's sentences are encoded once for all methods whose shard is missing. A pair
    with an empty side has no pairs. ``remote``: missing shards worked on Ray. ``langs``: the
    two sides' languages, for an aligner that reads them (a translator's encoder; None for
    others, whose cache keys stay as they were). Returns ``({method: alignments}, {method:
    cache key})``.
    """
    from xfast.pipelines.cache import StageCache, shard_ranges
    from xfast.progress import progress_bar

    base = models.aligner_fields(aligner)
    # compat changes every method (the aligner truncates at the model's limit, docs/alignment.md), not
    # only softmax's pair order
    key = {**upstream, "aligner": base, **({"langs": list(langs)} if langs else {})}
    caches = {m: StageCache(cache, stage, {**key, "method": m, "compat": compat},
                            shard_size=shard_size, stats=cache_stats) for m in methods}
    result: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    n = len(labeled)
    ranges = shard_ranges(n, shard_size)
    with report.stage(stage), progress_bar(stage, n, unit="sent", enabled=progress, transient=True) as bar:
        loaded = [{m: c.load(k, lo, hi - lo) for m, c in caches.items()} for k, (lo, hi) in enumerate(ranges)]
        missing = {k: [m for m in methods if got[m] is None] for k, got in enumerate(loaded)}
        remote_results = iter(())
        if remote is not None and any(missing.values()):
            remote_results = remote.map([
                (align_shard, {"aligner": _remote_spec(aligner), "labeled": labeled[lo:hi],
                               "receiving": receiving[lo:hi], "methods": missing[k], "compat": compat,
                               "langs": langs})
                for k, (lo, hi) in enumerate(ranges) if missing[k]])
        for k, (lo, hi) in enumerate(ranges):
            got = loaded[k]
            if missing[k]:
                if remote is not None:
                    computed = next(remote_results)
                else:
                    computed = align_shard(models, aligner, labeled[lo:hi], receiving[lo:hi], missing[k],
                                           compat=compat, report=report, stage=stage, langs=langs)
                for m in missing[k]:
                    got[m] = caches[m].save(k, lo, computed[m], {}), {}
            for m in methods:
                result[m].extend(np.asarray(r["pairs"], dtype=np.int32).reshape(-1, 2) for r in got[m][0])
            loaded[k] = None
            bar.update(hi - lo)
    return result, {m: c.key for m, c in caches.items()}


def align_shard(models: Models, aligner, labeled: list[list[str]], receiving: list[list[str]],
                methods: Sequence[str], *, compat: bool, report: RunReport | None = None,
                stage: str = "align", langs: tuple[str, str] | None = None) -> dict[str, list[dict]]:
    """One shard of an align stage: each method's records (``{"pairs": [[i, j], ...]}`` per
    pair; none where a side is empty), the sentences encoded once for all methods
    (``langs``: the sides' languages, for a translator's encoder)."""
    from xfast.align import align_states_batch

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
