"""Parallel-corpus projection (docs/translation.md *parallel*), the engine behind ``xfast project``.

A labeled side (CoNLL with gold or predicted entities) and one or more receiving sides (CoNLL
or plain tokenized text) are read in lockstep, in columnar batches. Each batch's labeled side
is encoded once and reused for every receiving side; each pair is aligned once and the
alignment serves every projection method. The encoder forward of the next batch runs while
the host stages of this one run (:func:`~xfast.pipelines.engine.overlapped`); scores
accumulate as counts, so memory does not grow with the corpus; outputs are written in
resumable shards (:class:`~xfast.pipelines.run.RunDir`). Outputs: labeled CoNLL per side and
method, optional Pharaoh alignments with per-link scores, metrics when the receiving side has
gold labels, a manifest, a QA summary and this process's timings (``run.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dataclasses import dataclass

from xfast.errors import ParameterError, check_choice, msg
from xfast.pipelines.ray_engine import ENGINES, RaySettings
from xfast.pipelines.runner import ProjectionConfig, RunReport, file_sha256, versions, write_json
from xfast.project.filtering import FilterPolicy

__all__ = ["project_parallel", "labeled_entities", "add_arguments", "main", "ShardProjector", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("conll", "parquet")

#: the encoder counts that depend only on the input (a resumed run reproduces them)
_ENCODER_COUNTS = ("sentences", "subwords", "windowed", "truncated", "windows")


def labeled_entities(labels: list[str], *, compat: bool = False) -> list[tuple[int, int, str]]:
    """Entities of the labeled side. ``compat``: the reference's reader loses an entity that
    a ``B-`` tag directly follows (docs/translation.md)."""
    from xfast.io import entities_of

    ents = entities_of(labels)
    if not compat:
        return ents
    return [e for e in ents if not (e[1] < len(labels) and labels[e[1]].startswith("B-"))]


def project_parallel(labeled: str | Path, receiving: dict[str, str | Path], out_dir: str | Path, *,
                     aligner=None, methods: tuple[str, ...] = ("heuristic", "ngram-greedy"),
                     config: ProjectionConfig | None = None, candidates: dict[str, str | Path] | None = None,
                     batch_size: int = 512, shard_size: int | None = None, write_alignments: bool = False,
                     label_set: set[str] | None = None, ignore: tuple[str, ...] = (),
                     progress: bool = True, overwrite: bool = False,
                     filters: str | tuple[str, ...] | FilterPolicy = "none",
                     overlap: bool = True, output_format: str = "conll", engine: str = "local",
                     ray: RaySettings | None = None, device: str = "auto", dataset: str = "",
                     labeled_lang: str = "en", limit: int | None = None) -> dict:
    """Project the labeled side's entities onto every receiving side with every method.

    ``receiving`` maps a name (e.g. a language code) to a file; ``candidates`` maps names to
    CoNLL files whose entities are the receiving side's NER candidates (``ner-*`` methods). A
    name becomes part of output file names, so it is a plain name (letters, digits, ``_``,
    ``-``, ``.`` not first). ``limit``: only the first ``limit`` sentences of every file.
    ``aligner``: an :class:`xfast.Aligner`, or the keyword arguments that make one once the
    inputs are checked (default: the embedded e5-small). ``batch_size``
    sentences go through the stages together; ``shard_size`` (a multiple of it, default 16
    batches) is the unit a killed run resumes from. ``overwrite`` replaces another run's
    outputs in ``out_dir`` (else that is an error). ``overlap=False`` runs the encoder and
    the host stages one after the other (same outputs). ``device``: where an aligner made from
    keyword arguments runs (``cpu``, ``cuda``, ``auto``; under Ray each actor resolves it on
    its own node). ``output_format``: ``"conll"`` or
    ``"parquet"`` (``tokens`` and ``ner_tags`` columns). ``engine="ray"`` works the shards on a
    Ray cluster (:class:`~xfast.pipelines.ray_engine.RaySettings`; same outputs, byte for byte).
    ``dataset`` names the data in ``metrics.csv`` (the paper's results layout, docs/qa.md).
    ``filters``: ``--filter`` policies (:meth:`~xfast.project.filtering.FilterPolicy.parse`,
    docs/projection.md): removed spans and dropped sentences leave each output, dropped ones go
    to ``NAME.METHOD.rejects.jsonl``, and metrics score the kept sentences only.
    An aligner that reads each side's language (an NLLB encoder, docs/alignment.md) takes the
    labeled side's from ``labeled_lang`` and each receiving side's from its name (``de``,
    ``hau``, ``yor_Latn``: ISO 639 or FLORES-200 codes).
    Returns ``{"results": [metrics rows], "timings": {...}, "qa": {...}, "outputs": {...},
    "run": {...}}``; metrics rows exist for receiving sides with gold labels.

    Every parameter is checked, and every input read through once (decoding, labels, sentence
    counts), before ``out_dir`` is created or touched: a run refused for its input leaves
    nothing behind.
    """
    import time

    from xfast.evaluate import ScoreCounts
    from xfast.io.columns import LabelTypes, read_parallel_columns
    from xfast.pipelines import stages
    from xfast.pipelines.run import RunDir, check_name, run_key
    from xfast.progress import progress_bar

    t_start = time.perf_counter()
    cfg = (config or ProjectionConfig()).check()
    stages.methods_valid(methods)
    check_choice("output_format", output_format, OUTPUT_FORMATS)
    check_choice("engine", engine, ENGINES)
    policy = FilterPolicy.parse(filters)
    ray = ray or RaySettings()
    if engine == "ray":
        ray.check()
    if not receiving:
        raise ParameterError(msg("E202", name="receiving", expected="at least one file", value=receiving))
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(msg("E202", name=name, expected="an int >= 1", value=value))
    shard_size = shard_size or 16 * batch_size
    if shard_size % batch_size:
        raise ParameterError(msg("E202", name="shard_size", expected=f"a multiple of batch_size ({batch_size})",
                                 value=shard_size))
    candidates = candidates or {}
    for what, named in (("receiving", receiving), ("candidates", candidates)):
        for name in named:
            check_name(what, name)
    if output_format == "parquet":  # the writer's pyarrow, before anything is made
        from xfast.io.parquet import require_pyarrow

        require_pyarrow()
    for m in methods:
        if m.startswith("ner-"):
            missing = [n for n in receiving if n not in candidates]
            if missing:
                raise ParameterError(msg("E202", name="candidates",
                                         expected=f"a candidates file for {missing} (method {m})",
                                         value=sorted(candidates)))
    out = Path(out_dir)
    names = list(receiving)
    cand_names = [n for n in names if n in candidates and any(m.startswith("ner-") for m in methods)]
    paths = [Path(labeled)] + [Path(receiving[n]) for n in names] + [Path(candidates[n]) for n in cand_names]
    from xfast.io.columns import check_parallel

    side_labels = [True] + [None] * len(names) + [True] * len(cand_names)
    # missing, unreadable, empty or unequal inputs stop before anything is made
    n_total = check_parallel(paths, labels=side_labels, limit=limit)
    report = RunReport()
    if engine == "ray":
        from xfast.pipelines import ray_engine

        with report.stage("start ray"):
            ray_engine.require()  # a missing extra is a usage error before any model loads
    from xfast.models.encoder import takes_language

    model = (aligner or {}).get("model", "e5-small") if aligner is None or isinstance(aligner, dict) else aligner
    langs = _side_languages(labeled_lang, names) if takes_language(model) else None  # before the model loads
    if aligner is None or isinstance(aligner, dict):  # made after the inputs are checked
        with report.stage("load aligner"):
            from xfast.aligner import Aligner
            from xfast.models.encoder import providers_for

            kwargs = dict(aligner or {})
            if engine == "ray":  # the driver only needs the model's identity: keep it off the GPUs
                kwargs["providers"] = ["CPUExecutionProvider"]
            else:
                kwargs.setdefault("providers", providers_for(device))
            aligner = Aligner(**kwargs)
    from xfast.pipelines.cache import model_fingerprint

    suffix = ".parquet" if output_format == "parquet" else ".conll"
    outputs = {f"{n}/{m}": out / f"{n}.{m}{suffix}" for n in names for m in methods}
    if write_alignments:
        outputs.update({f"{n}/alignment": out / f"{n}.align.txt" for n in names})
    if policy.drops:
        outputs.update({f"{n}/{m}/rejects": out / f"{n}.{m}.rejects.jsonl" for n in names for m in methods})
    inputs = {str(p): file_sha256(p) for p in paths}
    settings = {"receiving": names, "candidates": cand_names, "methods": list(methods), "config": cfg,
                "batch_size": batch_size, "shard_size": shard_size, "write_alignments": write_alignments,
                "label_set": sorted(label_set) if label_set else None, "ignore": list(ignore)}
    if output_format != "conll":  # keeps the key of a CoNLL run as it was
        settings["output_format"] = output_format
    if policy.active:  # likewise: a run without a filter keeps its key
        settings["filter"] = policy.names()
    if langs is not None:
        settings["langs"] = list(langs)
    if limit is not None:
        settings["limit"] = limit
    key = run_key({"inputs": list(inputs.values()), **settings, "aligner": aligner.settings,
                   "model": model_fingerprint(aligner.encoder), "versions": versions()})
    rundir = RunDir(out, key, outputs, overwrite=overwrite)
    done, state = rundir.open()

    types = LabelTypes()
    counts = {(n, m): ScoreCounts() for n in names for m in methods}
    has_gold = {n: True for n in names}
    if state is not None:
        report.load_state(state["qa"])
        counts.update({tuple(k.split("/", 1)): ScoreCounts.from_dict(v) for k, v in state["scores"].items()})
        has_gold.update(state["has_gold"])
    plan = _Plan(names, cand_names, tuple(methods), cfg, label_set, write_alignments, output_format, tuple(outputs),
                 langs, filter=policy)
    chunks_in = read_parallel_columns(paths, labels=side_labels, chunk_size=batch_size, types=types, limit=limit)
    pairs = len(names)  # each labeled sentence makes one pair with every receiving side
    bar = progress_bar("project", n_total * pairs, unit="pair", initial=min(done * shard_size, n_total) * pairs,
                       enabled=progress)

    def read():
        skip = done * shard_size
        while True:
            with report.stage("read"):
                row = next(chunks_in, None)
            if row is None:
                return
            if skip:
                skip -= len(row[0])
                continue
            yield row

    def commit(index: int, parts: dict[str, list[bytes]]) -> None:
        with report.stage("commit"):
            rundir.commit(index, {k: plan.join(k, v) for k, v in parts.items()},
                          {"qa": report.state(), "has_gold": has_gold,
                           "scores": {f"{n}/{m}": c.to_dict() for (n, m), c in counts.items()}})

    run: dict = {"engine": engine}
    with bar:
        if engine == "local":
            n_shards = _run_local(plan, aligner, read(), types, report, counts, has_gold, ignore, commit, done,
                                  shard_size, overlap, bar)
        else:
            actors = {**aligner.settings, "device": device}
            n_shards = _run_ray(plan, actors, read(), types, report, counts, has_gold, ignore, commit, done,
                                shard_size, batch_size, overlap, rundir, ray, run, bar)
        bar.n = bar.total  # windows and empty sentences make the encoder's count approximate
    results, csv_rows = [], []
    with report.stage("evaluate"):
        from xfast.pipelines.runner import describe

        for name in names:
            if not has_gold[name]:
                continue
            for m in methods:
                row = counts[(name, m)].result()
                # with a filter the scores are those of the kept sentences
                kept = {"filter": str(policy), "sentences_kept": counts[(name, m)].sentences} if policy.active else {}
                csv_rows.append({**row, "lang": name, "task": "pipeline_eval", "eval_type": "compare_to_original",
                                 "dataset": dataset, **describe("src2tgt", aligner.method, m),
                                 "xfast_align_method": aligner.method, "xfast_method": m,
                                 "xfast_aligner_model": aligner.settings["model"],
                                 "xfast_layer": aligner.settings["layer"], "xfast_compat": cfg.compat,
                                 "xfast_sentences": counts[(name, m)].sentences,
                                 **{f"xfast_{k}": v for k, v in kept.items()}})
                row.update({**kept, "lang": name, "method": m, "aligner": aligner.settings["model"],
                            "align_method": aligner.method})
                results.append(row)
    with report.stage("commit"):
        rundir.finish(n_shards)
        if results:
            from xfast.report import write_metrics_csv

            write_json(out / "metrics.json", results)
            write_metrics_csv(out / "metrics.csv", csv_rows, dataset=dataset)
        qa = report.state()
        write_json(out / "qa.json", qa)
        write_json(out / "manifest.json", {
            "command": "project", "run_key": key, "inputs": inputs,
            "aligner": {**aligner.settings, "model_dir": str(aligner.encoder.model_dir),
                        "provider": run.get("ray", {}).get("provider", aligner.encoder.provider),
                        "dtype": aligner.settings["quantize"] or "float32"},
            **settings, "versions": versions(), "outputs": {k: v.name for k, v in outputs.items()}})
    cache = aligner.encoder.word_cache
    wall = time.perf_counter() - t_start
    if engine == "local":
        busy = report.timings.get("encode", 0.0) / max(wall, 1e-9)
    else:
        r = run["ray"]
        busy = run.get("worker_timings_s", {}).get("encode", 0.0) / max(r.get("map_s", 0.0) * r["actors"], 1e-9)
    run.update({"timings_s": {k: round(v, 3) for k, v in report.timings.items()}, "resumed_shards": done,
                "shards": n_shards, "overlap": overlap, "wall_s": round(wall, 3),
                "model_busy_share": round(min(1.0, busy), 4)})
    if engine == "local":  # under Ray the encoder ran in the actors
        run["encoder_batches"] = aligner.encoder.stats["batches"]
        run["word_cache"] = {"hits": int(cache.hits), "misses": int(cache.misses),
                             "hit_rate": round(cache.hits / max(1, cache.hits + cache.misses), 4)}
    write_json(out / "run.json", run)
    rundir.close()
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {k: str(v) for k, v in outputs.items()}, "run": run}


@dataclass(frozen=True)
class _Plan:
    """What a run projects: enough to rebuild its stages in another process (a Ray actor)."""

    names: list[str]
    cand_names: list[str]
    methods: tuple[str, ...]
    cfg: ProjectionConfig
    label_set: set[str] | None
    write_alignments: bool
    output_format: str
    outputs: tuple[str, ...]
    langs: tuple[str, ...] | None = None  # the labeled side's and each receiving side's language (NLLB encoders)

    filter: FilterPolicy = FilterPolicy()

    def join(self, key: str, chunks: list[bytes]) -> bytes:
        """One shard's part of output ``key`` from its batches' chunks."""
        if self.output_format == "parquet" and not key.endswith(("/alignment", "/rejects")) and len(chunks) > 1:
            import io

            from xfast.io.parquet import append_parquet

            buf = io.BytesIO()
            append_parquet(chunks, buf)
            return buf.getvalue()
        return b"".join(chunks)


class _Work:
    """The stages of one batch of sentence pairs, the same under every engine: tokenize,
    encode (the model), then align, project, write and score (the host)."""

    def __init__(self, plan: _Plan, aligner, types, report: RunReport) -> None:
        self.plan, self.aligner, self.types, self.report = plan, aligner, types, report
        self.encoder = aligner.encoder
        self.enc_counts = dict.fromkeys(_ENCODER_COUNTS, 0)
        self.has_gold = {n: True for n in plan.names}
        # link scores read the raw states; otherwise SimAlign's normalisation runs per model output
        self.transform = None if plan.write_alignments else aligner.state_transform
        self.tick = None

    def prepare(self, row):
        from xfast.pipelines import stages

        with self.report.stage("tokenize"):
            stats = self.encoder.stats
            before = {k: stats[k] for k in ("sentences", "subwords", "truncated")}
            subs = [stages.tokenize(cols, self.encoder) for cols in row[:1 + len(self.plan.names)]]
            return subs, {k: stats[k] - v for k, v in before.items()}

    def model(self, prep):
        from xfast.pipelines import stages

        stats = self.encoder.stats
        before = {k: stats[k] for k in ("windowed", "windows")}
        langs = self.plan.langs or [None] * len(prep[0])
        states = [stages.encode(sub, self.encoder, self.transform, self.tick, lang)
                  for sub, lang in zip(prep[0], langs)]
        return states, {k: stats[k] - v for k, v in before.items()}

    def host(self, row, prep, model_out, *, start: int, parts: dict[str, list[bytes]], scored) -> None:
        """Project batch ``row`` (its first sentence is number ``start`` of the corpus): output
        chunks go to ``parts``, gold and predicted codes of sides with gold labels to
        ``scored(name, method, gold, pred, sent_off)``."""
        from xfast.pipelines import stages

        plan, report, types, aligner = self.plan, self.report, self.types, self.aligner
        (subs, tok_counts), (states, enc_delta) = prep, model_out
        for k, v in (*tok_counts.items(), *enc_delta.items()):
            self.enc_counts[k] += v
        lab_cols = row[0]
        report.sentences_in += len(lab_cols)
        ents = stages.entities(lab_cols, compat=plan.cfg.compat)
        for j, name in enumerate(plan.names):
            rec_cols = row[1 + j]
            n_rec = rec_cols.lengths()
            if rec_cols.codes is None:
                self.has_gold[name] = False
            with report.stage("align"):
                aln = stages.align((subs[0], states[0]), (subs[1 + j], states[1 + j]), aligner)
            if plan.write_alignments:
                with report.stage("write"):
                    parts[f"{name}/alignment"].append(_pharaoh(aligner, subs[0], states[0], subs[1 + j],
                                                               states[1 + j], aln))
            cands = {}
            for m in plan.methods:
                with report.stage("project"):
                    kind = m.split("-")[0]
                    if kind != "heuristic" and kind not in cands:
                        ner = row[1 + len(plan.names) + plan.cand_names.index(name)] if kind == "ner" else None
                        cands[kind] = stages.candidates(kind, rec_cols, plan.cfg, ner)
                    codes = stages.project_counted(m, ents, aln, n_rec, plan.cfg, report, key=f"{name}/{m}",
                                                   offset=start, cands=cands.get(kind))
                    written = stages.keep_types(codes, types, plan.label_set)
                    stages.count_entities(report, f"{name}/{m}", ents, codes, written, types)
                out_cols = rec_cols
                if plan.filter.active:
                    with report.stage("filter"):
                        out_cols, written, rejects = _filtered(plan, f"{name}/{m}", ents, aln, row[0], rec_cols,
                                                               written, types, start, report)
                    if plan.filter.drops:
                        parts[f"{name}/{m}/rejects"].append(rejects)
                with report.stage("write"):
                    parts[f"{name}/{m}"].append(_output_bytes(plan.output_format, out_cols, written, types))
                if self.has_gold[name]:
                    scored(name, m, out_cols.codes, written, out_cols.sent_off)
        report.sentences_out += len(lab_cols)


def _filtered(plan: _Plan, key: str, ents, aln, lab_cols, rec_cols, codes, types, start: int,
              report: RunReport) -> tuple:
    """``plan.filter`` on one output's batch (``codes``: its labels after the label set; the
    first sentence is number ``start``): ``(kept sentences, their codes, rejects JSONL bytes)``,
    counted in ``report``."""
    import numpy as np

    from xfast.project.filtering import REASONS, filter_batch, keep_rows, reject_line

    names = types.names
    counted = None if plan.label_set is None else np.array([n in plan.label_set for n in names], bool)
    f = filter_batch(codes, rec_cols.sent_off, ents.offsets, ents.spans, ents.types, aln.offsets, aln.pairs,
                     plan.filter, counted=counted)
    kept, tok = keep_rows(rec_cols, ~f.dropped)
    dropped = np.flatnonzero(f.dropped).tolist()
    report.filtered(key, len(rec_cols) - len(dropped),
                    {r: int(np.sum(f.states[dropped] == s)) for s, r in enumerate(REASONS) if s},
                    int(f.removed.sum()))
    lines, table = [], types.table()
    so, eo, po = rec_cols.sent_off.tolist(), ents.offsets.tolist(), f.spans.offsets.tolist()
    for i in dropped:
        own = [e for e in range(eo[i], eo[i + 1]) if counted is None or counted[ents.types[e]]]
        lines.append(reject_line(
            start + i, REASONS[f.states[i]], rec_cols.words(i), [table[c] for c in f.codes[so[i]:so[i + 1]].tolist()],
            [(int(ents.spans[e, 0]), int(ents.spans[e, 1]), names[ents.types[e]]) for e in own],
            [bool(f.entity_projected[e]) for e in own],
            [(int(f.spans.spans[k, 0]), int(f.spans.spans[k, 1]), names[f.spans.types[k]], f.spans.scores[k])
             for k in range(po[i], po[i + 1]) if f.removed[k]],
            labeled_line=int(lab_cols.lines[i]), receiving_line=int(rec_cols.lines[i])))
    return kept, f.codes[tok], b"".join(lines)


def _output_bytes(form: str, cols, codes, types) -> bytes:
    from xfast.io.columns import conll_bytes

    if form == "parquet":
        from xfast.io.parquet import parquet_bytes

        return parquet_bytes(cols, codes, types)
    return conll_bytes(cols, codes, types)


def _run_local(plan: _Plan, aligner, rows, types, report, counts, has_gold, ignore, commit, done: int,
               shard_size: int, overlap: bool, bar) -> int:
    """Batches through the stages in this process (the model overlapped with the host work),
    committed shard by shard; returns the number of shards."""
    from xfast.pipelines.engine import overlapped

    work = _Work(plan, aligner, types, report)
    work.enc_counts.update({k: report.encoder.get(k, 0) for k in _ENCODER_COUNTS})
    per_side = len(plan.names) / (1 + len(plan.names))  # pairs per sentence the encoder reads
    work.tick = lambda n: bar.update(n * per_side)  # the bar moves with the encoder, the slow stage on a CPU
    shard = {"index": done, "sentences": 0, "parts": {k: [] for k in plan.outputs}}

    def scored(name, m, gold, pred, off):
        if has_gold[name]:
            with report.stage("evaluate"):
                counts[(name, m)].add(gold, pred, off, types.names, ignore=ignore)

    def host(row, prep, model_out):
        work.host(row, prep, model_out, start=report.sentences_in, parts=shard["parts"], scored=scored)
        has_gold.update({n: False for n, g in work.has_gold.items() if not g})
        shard["sentences"] += len(row[0])
        if shard["sentences"] == shard_size:
            flush()

    def flush():
        report.encoder = dict(work.enc_counts)
        commit(shard["index"], shard["parts"])
        shard.update(index=shard["index"] + 1, sentences=0, parts={k: [] for k in plan.outputs})

    overlapped(rows, work.prepare, work.model, host, report=report, overlap=overlap, model_stage="encode")
    if shard["sentences"]:
        flush()
    report.encoder = dict(work.enc_counts)
    return shard["index"]


def _run_ray(plan: _Plan, aligner: dict, rows, types, report, counts, has_gold, ignore, commit, done: int,
             shard_size: int, batch_size: int, overlap: bool, rundir, settings: RaySettings, run: dict,
             bar) -> int:
    """The pending shards' inputs written into the run folder, then worked by
    :class:`ShardProjector` actors on Ray; results committed in shard order, as the local
    engine commits them. ``aligner``: the actors' Aligner arguments and ``device``. Returns the
    number of shards."""
    import pickle
    import time

    from xfast.pipelines import ray_engine

    tasks, index, held, n = [], done, [], 0
    with report.stage("write shard inputs"):
        for row in rows:
            held.append(row)
            n += len(row[0])
            if n == shard_size:
                tasks.append(_write_shard_input(rundir, index, held, types, index * shard_size))
                index, held, n = index + 1, [], 0
        if held:
            tasks.append(_write_shard_input(rundir, index, held, types, index * shard_size))
            index += 1
    with report.stage("start ray"):
        cluster = ray_engine.connect(settings)
    actors, cpus, gpus = ray_engine.pool_size(settings, cluster)
    run["ray"] = {**cluster, "actors": min(actors, max(1, len(tasks))), "cpus_per_actor": cpus,
                  "gpus_per_actor": gpus}
    kwargs = {"aligner": aligner, "plan": plan, "batch_size": batch_size, "overlap": overlap}
    worker_timings: dict[str, float] = {}
    t_map, t_wall = time.perf_counter(), time.time()
    try:
        for item in ray_engine.map_shards(tasks, ShardProjector, kwargs, settings, cluster):
            with report.stage("merge"):
                res = pickle.loads(item["result"])
                report.merge(res["qa"])
                has_gold.update({k: False for k, g in res["has_gold"].items() if not g})
                for (name, m), batches in res["scored"].items():  # batch by batch, as the local engine
                    for gold, pred, off in batches if has_gold[name] else ():
                        counts[(name, m)].add(gold, pred, off, res["names"], ignore=ignore)
                for k, v in res["timings"].items():
                    worker_timings[k] = worker_timings.get(k, 0.0) + v
                run["ray"].setdefault("shard_wall_s", []).append(round(res["wall_s"], 3))
                run["ray"]["provider"] = res["provider"]
                ready = round(res["ready_at"] - t_wall, 3)  # the pool's first actor ready, from the job's start
                run["ray"]["actor_ready_s"] = min(run["ray"].get("actor_ready_s", ready), ready)
            commit(int(item["shard"]), res["parts"])
            rundir.drop_input(int(item["shard"]))
            bar.update(res["qa"]["sentences"]["in"] * len(plan.names))
    finally:
        run["ray"]["map_s"] = round(time.perf_counter() - t_map, 3)
        ray_engine.shutdown(cluster)
    run["worker_timings_s"] = {k: round(v, 3) for k, v in worker_timings.items()}
    return index


def _write_shard_input(rundir, index: int, rows: list, types, start: int) -> dict:
    """Shard ``index``'s sentences (every side; the first is sentence ``start`` of the corpus)
    as one .npz in the run folder; returns its task."""
    import numpy as np

    from xfast.io.columns import TokenColumns
    from xfast.io.files import atomic_open

    arrays = {"names": np.array(types.names, dtype=np.str_), "sides": np.array(len(rows[0]))}
    for j in range(len(rows[0])):
        cols = TokenColumns.concat([r[j] for r in rows])
        arrays.update({f"{j}.text": np.frombuffer(cols.text, np.uint8), f"{j}.tok_off": cols.tok_off,
                       f"{j}.sent_off": cols.sent_off, f"{j}.lines": cols.lines})
        if cols.codes is not None:
            arrays[f"{j}.codes"] = cols.codes
    path = rundir.input_path(index)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return {"shard": index, "path": str(path.resolve()), "start": start}  # workers may start elsewhere


class ShardProjector:
    """A Ray Data actor for ``xfast project --engine ray``: loads the aligner once, then
    projects whole shards whose inputs the driver wrote into the run folder, with the same
    stages (and the same model/host overlap) as the local engine."""

    def __init__(self, aligner: dict, plan: _Plan, batch_size: int, overlap: bool) -> None:
        import time

        from xfast.aligner import Aligner
        from xfast.models.encoder import providers_for

        t = time.perf_counter()
        kwargs = dict(aligner)
        kwargs["providers"] = providers_for(kwargs.pop("device"))  # this node's runtime decides
        self.aligner = Aligner(**kwargs)
        self.load_s = time.perf_counter() - t  # reported with the first shard
        self.ready_at = time.time()  # when this actor could take work (wall clock, for the driver)
        self.plan, self.batch_size, self.overlap = plan, batch_size, overlap

    def __call__(self, batch: dict) -> dict:
        import pickle

        import numpy as np

        out = [pickle.dumps(self.shard(str(p), int(s)), protocol=5) for p, s in zip(batch["path"], batch["start"])]
        return {"shard": batch["shard"], "result": np.array(out, dtype=object)}

    def shard(self, path: str, start: int) -> dict:
        """Project the shard whose input is ``path`` (its first sentence is number ``start`` of
        the corpus): its output chunks, the codes to score, and its counts."""
        import time

        import numpy as np

        from xfast.io.columns import LabelTypes, TokenColumns
        from xfast.pipelines.engine import overlapped

        t0 = time.perf_counter()
        with np.load(path, allow_pickle=False) as z:
            types = LabelTypes(z["names"].tolist())
            sides = []
            for j in range(int(z["sides"])):
                codes = z[f"{j}.codes"] if f"{j}.codes" in z.files else None
                sides.append(TokenColumns(z[f"{j}.text"].tobytes(), z[f"{j}.tok_off"], z[f"{j}.sent_off"], codes,
                                          z[f"{j}.lines"], path))
        n = len(sides[0])
        rows = [tuple(c.slice(a, min(a + self.batch_size, n)) for c in sides) for a in range(0, n, self.batch_size)]
        report = RunReport()
        if self.load_s:
            report.timings["load aligner"], self.load_s = self.load_s, 0.0
        work = _Work(self.plan, self.aligner, types, report)
        parts = {k: [] for k in self.plan.outputs}
        scored: dict = {}

        def keep(name, m, gold, pred, off):
            scored.setdefault((name, m), []).append((gold, pred, off))

        def host(row, prep, model_out):
            work.host(row, prep, model_out, start=start + report.sentences_in, parts=parts, scored=keep)

        overlapped(rows, work.prepare, work.model, host, report=report, overlap=self.overlap, model_stage="encode")
        report.encoder = dict(work.enc_counts)
        return {"parts": parts, "qa": report.state(), "has_gold": work.has_gold, "names": types.names,
                "scored": scored, "timings": dict(report.timings),
                "wall_s": time.perf_counter() - t0, "ready_at": self.ready_at,
                "provider": self.aligner.encoder.provider}


def _pharaoh(aligner, lab_sub, lab_states, rec_sub, rec_states, aln) -> bytes:
    """Pharaoh lines (``i-j:score``) of a batch's alignments."""
    from xfast.io.pharaoh import format_pharaoh
    from xfast.models.encoder import Encoded

    def enc(sub, states):
        off = sub.offsets.tolist()
        return [Encoded(st, sub.word_ids[off[i]:off[i + 1]]) for i, st in enumerate(states.sentences())]

    off = aln.offsets.tolist()
    alns = [aln.pairs[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    link = aligner.link_scores(enc(lab_sub, lab_states), enc(rec_sub, rec_states), alns)
    return "".join(format_pharaoh(a, sc) + "\n" for a, sc in zip(alns, link)).encode("utf-8")


def _side_languages(labeled_lang: str, names: list[str]) -> tuple[str, ...]:
    """The FLORES-200 codes of the labeled side and of each receiving side (named by its
    language), checked before any model loads."""
    from xfast.errors import XfastError
    from xfast.models.flores import flores_code

    codes = []
    for what, lang in (("labeled_lang", labeled_lang), *(("receiving", n) for n in names)):
        try:
            codes.append(flores_code(lang))
        except XfastError as err:
            raise ParameterError(msg("E416", what=what, value=lang, reason=err)) from None
    return tuple(codes)


def _named(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, eq, path = item.partition("=")
        if not eq:
            name, path = Path(item).name.split(".")[0], item
        if name in out:
            raise ParameterError(msg("E202", name=what, expected="distinct names (use NAME=PATH)", value=name))
        out[name] = path
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast project`` options."""
    from xfast.pipelines.runner import (PROJECTION_METHODS, add_encoder_arguments, add_engine_arguments,
                                        add_filter_argument)

    p.epilog = ("example: xfast project --labeled en.conll --receiving de=de.conll es=es.txt "
                "--out runs/europarl --method heuristic ngram-greedy")
    p.add_argument("--labeled", required=True,
                   help="file whose entities are projected (CoNLL, JSONL or Parquet with tokens and ner_tags)")
    p.add_argument("--receiving", required=True, nargs="+", metavar="[NAME=]PATH",
                   help="receiving sides (CoNLL, JSONL, Parquet, or .txt/.tok one sentence per line)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--method", nargs="+", default=["heuristic", "ngram-greedy"], choices=PROJECTION_METHODS,
                   help="projection methods, each written to NAME.METHOD.conll")
    p.add_argument("--candidates", nargs="*", default=[], metavar="[NAME=]PATH",
                   help="CoNLL files with NER entities of the receiving sides (ner-* methods)")
    add_encoder_arguments(p)
    p.add_argument("--labeled-lang", default="en",
                   help="language of the labeled side, read by NLLB encoders (receiving sides: their NAME)")
    p.add_argument("--token-type", default="bpe", choices=["bpe", "word"],
                   help="align subwords (bpe) or subword-averaged words")
    p.add_argument("--batch-size", type=int, default=512, help="sentences per batch through the stages")
    p.add_argument("--shard-size", type=int, default=None,
                   help="sentences per output shard, the unit a killed run resumes from "
                        "(a multiple of --batch-size; default 16 batches)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another run's outputs in --out (else that is an error)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N sentences of every file (default: all)")
    p.add_argument("--length-ratio", type=float, default=0.8,
                   help="heuristic: keep a span longer than this share of its entity, in (0, 1]")
    p.add_argument("--merge-distance", type=int, default=1, help="heuristic: merge spans this close (0: never)")
    p.add_argument("--min-words", type=int, default=1, help="n-gram candidates: fewest words")
    p.add_argument("--max-words", type=int, default=0, help="n-gram candidates: most words (0: the sentence)")
    p.add_argument("--label-set", nargs="+", default=None, metavar="TYPE",
                   help="entity types written out; others become O (default: all)")
    p.add_argument("--ignore", nargs="*", default=None, metavar="TYPE",
                   help="types scored as O (default: DATE when --dataset names masakhaner*, else none)")
    p.add_argument("--dataset", default="",
                   help="dataset name in metrics.csv, as the paper's results name it (europarl, masakhaner2, xtreme); "
                        "xfast compare joins on it (default: empty, which joins no reference row)")
    p.add_argument("--write-alignments", action="store_true", help="also write NAME.align.txt (Pharaoh, scored)")
    p.add_argument("--compat", action="store_true", help="reproduce the paper's code's quirks (see docs)")
    p.add_argument("--output-format", default="conll", choices=OUTPUT_FORMATS,
                   help="labeled outputs as CoNLL, or as Parquet with tokens and ner_tags columns")
    add_filter_argument(p)
    add_engine_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run ``xfast project``; 1 when some sentences failed, else 0."""
    from xfast.pipelines.runner import aligner_kwargs_of, default_ignore, ray_settings_of
    from xfast.report import format_table

    aligner = dict(aligner_kwargs_of(args), token_type=args.token_type, compat=args.compat)
    cfg = ProjectionConfig(length_ratio=args.length_ratio, merge_distance=args.merge_distance,
                           min_words=args.min_words, max_words=args.max_words, compat=args.compat)
    res = project_parallel(args.labeled, _named(args.receiving, "receiving"), args.out, aligner=aligner,
                           methods=tuple(args.method), config=cfg,
                           candidates=_named(args.candidates, "candidates"), batch_size=args.batch_size,
                           shard_size=args.shard_size, overwrite=args.overwrite,
                           write_alignments=args.write_alignments,
                           label_set=set(args.label_set) if args.label_set else None,
                           ignore=tuple(args.ignore) if args.ignore is not None else default_ignore(args.dataset),
                           progress=not args.quiet,
                           output_format=args.output_format, engine=args.engine, ray=ray_settings_of(args),
                           filters=tuple(args.filter),
                           device=args.device, dataset=args.dataset, labeled_lang=args.labeled_lang,
                           limit=args.limit)
    if args.json:
        print(json.dumps({k: res[k] for k in ("results", "timings", "qa", "outputs")}))
    else:
        rows = [[r["lang"], r["method"], r["overall_precision"], r["overall_recall"], r["overall_f1"],
                 r["proj_ratio"]] for r in res["results"]]
        if rows:
            print(format_table(["side", "method", "precision", "recall", "f1", "proj_ratio"], rows))
        failed = res["qa"]["sentences"]["failed"]
        print(f"{res['qa']['sentences']['out']} sentences, {failed} failed; outputs in {args.out}",
              file=sys.stderr)
    return 1 if res["qa"]["sentences"]["failed"] else 0
