"""Parallel-corpus projection (docs/translation.md *parallel*), the engine behind ``xfast project``.

A labeled side (CoNLL with gold or predicted entities) and one or more receiving sides (CoNLL
or plain tokenized text) are read in lockstep, in columnar batches. Each batch's labeled side
is encoded once and reused for every receiving side; each pair is aligned once and the
alignment serves every projection method. The encoder forward of the next batch runs while
the host stages of this one run (:func:`~xfast.pipelines.engines.local.overlapped`); scores
accumulate as counts, so memory does not grow with the corpus; outputs are written in
resumable shards (:class:`~xfast.pipelines.rundir.RunDir`). Outputs: labeled CoNLL per side and
method, optional Pharaoh alignments with per-link scores, metrics when the receiving side has
gold labels, a manifest, a QA summary and this process's timings (``run.json``).

:func:`project_parallel` checks every parameter and input (:func:`_checked`), claims the output
folder, runs the batches on an engine (:func:`_work`, :mod:`~xfast.pipelines.engines`) and writes
the summaries (:func:`_metrics`, :func:`_run_record`).
"""

from __future__ import annotations

import time
from pathlib import Path

from xfast.aligner import Aligner
from xfast.errors import ParameterError, XfastError, check_choice, msg
from xfast.evaluate import ScoreCounts
from xfast.io import entities_of
from xfast.io.readers import check_parallel, output_label_names, read_parallel_columns
from xfast.io.tokens import LabelTypes
from xfast.io.parquet import require_pyarrow
from xfast.models.encoder import providers_for, takes_language
from xfast.models.flores import flores_code
from xfast.pipelines.engines import ray as ray_engine
from xfast.pipelines.engines.local import run_local
from xfast.pipelines.engines.ray import ENGINES, RaySettings, run_ray
from xfast.pipelines.manifest import describe, file_sha256, versions, write_json, write_summaries
from xfast.pipelines.qa import RunReport
from xfast.pipelines.rundir import RunDir, check_name, run_key
from xfast.pipelines.stagecache import model_fingerprint
from xfast.pipelines.stages.batch import ProjectPlan, RunState
from xfast.pipelines.workers import default_host_workers
from xfast.progress import progress_bar
from xfast.project.config import ProjectionConfig, methods_valid
from xfast.project.filtering import FilterPolicy

__all__ = ["project_parallel", "labeled_entities", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("conll", "parquet")


def labeled_entities(labels: list[str], *, compat: bool = False) -> list[tuple[int, int, str]]:
    """Entities of the labeled side. ``compat``: the reference's reader loses an entity that
    a ``B-`` tag directly follows (docs/translation.md)."""
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
                     labeled_lang: str = "en", limit: int | None = None, host_workers: int | None = None,
                     label_ids: bool = False) -> dict:
    """Project the labeled side's entities onto every receiving side with every method.

    ``receiving`` maps a name (a plain name: letters, digits, ``_``, ``-``, ``.`` not first; it
    names outputs) to a file; ``candidates`` maps names to CoNLL files of the receiving side's
    NER candidates (``ner-*`` methods). ``aligner``: an :class:`xfast.Aligner`, or keyword
    arguments for one, made once the inputs are checked (default: e5-small), placed on
    ``device`` (``cpu``, ``cuda``, ``auto``; per node under Ray). ``batch_size`` sentences go
    through the stages together; ``shard_size`` (a multiple, default 16 batches) is what a killed
    run resumes from; ``limit``: the first ``limit`` sentences of every file. ``overwrite``
    replaces another run's outputs in ``out_dir``. ``overlap=False`` runs the encoder and the host
    stages one after the other; ``host_workers`` threads work the host stages of different
    batches (default: the cores but one with the encoder on a GPU, else 1); ``engine="ray"``
    works the shards on a Ray cluster (:class:`~xfast.pipelines.engines.ray.RaySettings`): the
    outputs are the same bytes in every case. ``output_format``: ``"conll"`` or ``"parquet"``
    (``label_ids``: its ``ner_tags`` as ``ClassLabel`` ids, names in the Hugging Face metadata).
    ``dataset`` names the data in ``metrics.csv`` (docs/qa.md). ``filters``: ``--filter``
    policies (docs/projection.md); dropped sentences go to ``NAME.METHOD.rejects.jsonl`` and
    metrics score the kept ones. An NLLB encoder (docs/alignment.md) reads the labeled side's
    language from ``labeled_lang`` and each receiving side's from its name (ISO 639 or FLORES-200).
    Every parameter is checked, and every input read through, before ``out_dir`` is touched.
    Returns ``{"results": [metrics rows of sides with gold], "timings", "qa", "outputs", "run"}``.
    """
    t_start = time.perf_counter()
    cfg, policy, ray, shard_size, candidates = _checked(receiving, candidates, methods, config, filters, output_format,
                                                        engine, ray, batch_size, shard_size, limit, host_workers,
                                                        label_ids)
    out, names = Path(out_dir), list(receiving)
    cand_names = [n for n in names if n in candidates and any(m.startswith("ner-") for m in methods)]
    paths = [Path(labeled)] + [Path(receiving[n]) for n in names] + [Path(candidates[n]) for n in cand_names]
    side_labels = [True] + [None] * len(names) + [True] * len(cand_names)
    # missing, unreadable, empty or unequal inputs stop before anything is made
    n_total = check_parallel(paths, labels=side_labels, limit=limit)
    id_names = tuple(output_label_names(paths[0])) if label_ids else None  # the labeled side's ClassLabel names
    report = RunReport()
    if engine == "ray":
        with report.stage("start ray"):
            ray_engine.require()  # a missing extra is a usage error before any model loads
    aligner, langs, actor_aligner = _aligner(aligner, engine, device, labeled_lang, names, report)
    outputs = _outputs(out, names, methods, output_format, write_alignments, policy)
    inputs = {str(p): file_sha256(p) for p in paths}
    settings = _settings(names, cand_names, methods, cfg, batch_size, shard_size, write_alignments, label_set, ignore,
                         output_format, policy, langs, limit, id_names)
    key = run_key({"inputs": list(inputs.values()), **settings, "aligner": aligner.settings,
                   "model": model_fingerprint(aligner.encoder), "versions": versions()})
    rundir = RunDir(out, key, outputs, overwrite=overwrite)
    plan = ProjectPlan(names, cand_names, tuple(methods), cfg, label_set, write_alignments, output_format,
                       tuple(outputs), langs, filter=policy, ignore=tuple(ignore), label_ids=id_names)
    types = LabelTypes()
    rows = read_parallel_columns(paths, labels=side_labels, chunk_size=batch_size, types=types, limit=limit)
    work = _work(plan, aligner, rows, types, rundir, report, n_total, shard_size, progress=progress,
                 overlap=overlap, engine=engine, ray=ray, batch_size=batch_size, device=device,
                 workers=host_workers or default_host_workers(aligner), actor_aligner=actor_aligner)
    results, csv_rows = _metrics(work["state"], aligner, plan, dataset, policy)
    with report.stage("commit"):
        rundir.finish(work["shards"])
        qa = report.state()
        write_summaries(out, qa=qa, metrics=csv_rows if results else None, dataset=dataset, metrics_json=results,
                        manifest={"command": "project", "run_key": key, "inputs": inputs,
                                  "aligner": _aligner_record(aligner, work["run"]), **settings, "versions": versions(),
                                  "outputs": {k: v.name for k, v in outputs.items()}})
    run = _run_record(work, aligner, report, overlap, time.perf_counter() - t_start)
    write_json(out / "run.json", run)
    rundir.close()
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {k: str(v) for k, v in outputs.items()}, "run": run}


def _checked(receiving, candidates, methods, config, filters, output_format, engine, ray, batch_size, shard_size,
             limit, host_workers, label_ids) -> tuple:
    """Every parameter of :func:`project_parallel` checked before anything is read or made:
    ``(config, filter policy, Ray settings, shard size, candidates)``."""
    cfg = (config or ProjectionConfig()).check()
    methods_valid(methods)
    check_choice("output_format", output_format, OUTPUT_FORMATS)
    if label_ids and output_format != "parquet":
        raise ParameterError(msg("E202", name="label_ids", expected="used with output_format='parquet'",
                                 value=label_ids))
    check_choice("engine", engine, ENGINES)
    policy = FilterPolicy.parse(filters)
    ray = ray or RaySettings()
    if engine == "ray":
        ray.check()
    if not receiving:
        raise ParameterError(msg("E202", name="receiving", expected="at least one file", value=receiving))
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size), ("limit", limit),
                        ("host_workers", host_workers)):
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
        require_pyarrow()
    for m in methods:
        if m.startswith("ner-"):
            missing = [n for n in receiving if n not in candidates]
            if missing:
                raise ParameterError(msg("E202", name="candidates",
                                         expected=f"a candidates file for {missing} (method {m})",
                                         value=sorted(candidates)))
    return cfg, policy, ray, shard_size, candidates


def _settings(names, cand_names, methods, cfg, batch_size, shard_size, write_alignments, label_set, ignore,
              output_format, policy, langs, limit, id_names) -> dict:
    """What the outputs depend on besides the inputs and the aligner: the run key's settings
    (fields a run does not use are left out, so the keys of earlier runs stay as they were)."""
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
    if id_names:
        settings["label_ids"] = list(id_names)
    return settings


def _aligner(aligner, engine: str, device: str, labeled_lang: str, names: list[str], report: RunReport):
    """``(the Aligner, the sides' languages or None, the Aligner arguments Ray actors take)``:
    ``aligner`` itself, or one made from its keyword arguments once the inputs are checked; the
    languages (an NLLB encoder reads them) are checked before the model loads. Under Ray the
    driver loads its copy on the CPU, so the number format and where extraction runs are left
    as the user gave them (None: each actor's device decides), not as the driver resolved them."""
    model = (aligner or {}).get("model", "e5-small") if aligner is None or isinstance(aligner, dict) else aligner
    langs = _side_languages(labeled_lang, names) if takes_language(model) else None
    if aligner is None or isinstance(aligner, dict):
        with report.stage("load aligner"):
            kwargs = dict(aligner or {})
            if engine == "ray":  # the driver only needs the model's identity: keep it off the GPUs
                kwargs["providers"] = ["CPUExecutionProvider"]
            else:
                kwargs.setdefault("providers", providers_for(device))
            aligner = Aligner(**kwargs)
        return aligner, langs, {**aligner.settings, **{k: kwargs.get(k) for k in ("quantize", "extraction")}}
    return aligner, langs, dict(aligner.settings)


def _outputs(out: Path, names: list[str], methods, output_format: str, write_alignments: bool,
             policy: FilterPolicy) -> dict[str, Path]:
    """Every output file by key: ``NAME/METHOD``, ``NAME/alignment``, ``NAME/METHOD/rejects``."""
    suffix = ".parquet" if output_format == "parquet" else ".conll"
    outputs = {f"{n}/{m}": out / f"{n}.{m}{suffix}" for n in names for m in methods}
    if write_alignments:
        outputs.update({f"{n}/alignment": out / f"{n}.align.txt" for n in names})
    if policy.drops:
        outputs.update({f"{n}/{m}/rejects": out / f"{n}.{m}.rejects.jsonl" for n in names for m in methods})
    return outputs


def _work(plan: ProjectPlan, aligner, rows, types: LabelTypes, rundir: RunDir, report: RunReport, n_total: int,
          shard_size: int, *, progress: bool, overlap: bool, engine: str, ray: RaySettings,
          batch_size: int, device: str, workers: int, actor_aligner: dict) -> dict:
    """Claim the run folder (resuming its finished shards) and run the pending batches on
    ``engine`` (Ray actors load ``actor_aligner``): ``{"state": the RunState, "shards": count,
    "run": the engine's record, "done": shards resumed}``."""
    done, saved = rundir.open()
    counts = {(n, m): ScoreCounts() for n in plan.names for m in plan.methods}
    has_gold = {n: True for n in plan.names}
    if saved is not None:
        report.load_state(saved["qa"])
        counts.update({tuple(k.split("/", 1)): ScoreCounts.from_dict(v) for k, v in saved["scores"].items()})
        has_gold.update(saved["has_gold"])

    def commit(index: int, parts: dict[str, list[bytes]]) -> None:
        with report.stage("commit"):
            rundir.commit(index, {k: plan.join(k, v) for k, v in parts.items()},
                          {"qa": report.state(), "has_gold": has_gold,
                           "scores": {f"{n}/{m}": c.to_dict() for (n, m), c in counts.items()}})

    def pending():
        skip = done * shard_size
        while True:
            with report.stage("read"):
                row = next(rows, None)
            if row is None:
                return
            if skip:
                skip -= len(row[0])
                continue
            yield row

    pairs = len(plan.names)  # each labeled sentence makes one pair with every receiving side
    bar = progress_bar("project", n_total * pairs, unit="pair", initial=min(done * shard_size, n_total) * pairs,
                       enabled=progress)
    state = RunState(report, counts, has_gold, commit, done, shard_size, bar)
    run: dict = {"engine": engine, "host_workers": workers}
    with bar:
        if engine == "local":
            shards = run_local(plan, aligner, pending(), types, state, overlap=overlap, workers=workers)
        else:
            shards = run_ray(plan, {**actor_aligner, "device": device}, pending(), types, state,
                             batch_size=batch_size, overlap=overlap, rundir=rundir, settings=ray, run=run,
                             workers=workers)
        bar.n = bar.total  # windows and empty sentences make the encoder's count approximate
    return {"state": state, "shards": shards, "run": run, "done": done}


def _metrics(state: RunState, aligner, plan: ProjectPlan, dataset: str,
             policy: FilterPolicy) -> tuple[list[dict], list[dict]]:
    """``(results, metrics.csv rows)`` of every output whose side has gold labels."""
    results, csv_rows = [], []
    with state.report.stage("evaluate"):
        for name in plan.names:
            if not state.has_gold[name]:
                continue
            for m in plan.methods:
                counts = state.counts[(name, m)]
                row = counts.result()
                # with a filter the scores are those of the kept sentences
                kept = {"filter": str(policy), "sentences_kept": counts.sentences} if policy.active else {}
                csv_rows.append({**row, "lang": name, "task": "pipeline_eval", "eval_type": "compare_to_original",
                                 "dataset": dataset, **describe("src2tgt", aligner.method, m),
                                 "xfast_align_method": aligner.method, "xfast_method": m,
                                 "xfast_aligner_model": aligner.settings["model"],
                                 "xfast_layer": aligner.settings["layer"], "xfast_compat": plan.cfg.compat,
                                 "xfast_sentences": counts.sentences,
                                 **{f"xfast_{k}": v for k, v in kept.items()}})
                row.update({**kept, "lang": name, "method": m, "aligner": aligner.settings["model"],
                            "align_method": aligner.method})
                results.append(row)
    return results, csv_rows


def _aligner_record(aligner, run: dict) -> dict:
    """What the manifest says of the aligner: its settings, folder, where it ran and its dtype."""
    return {**aligner.settings, "model_dir": str(aligner.encoder.model_dir),
            "provider": run.get("ray", {}).get("provider", aligner.encoder.provider),
            "dtype": aligner.settings["quantize"] or "float32"}


def _run_record(work: dict, aligner, report: RunReport, overlap: bool, wall: float) -> dict:
    """What ``run.json`` says of this process: timings, shards, the model's busy share and,
    on the local engine, encoder batches and word-cache hits."""
    run = work["run"]
    if run["engine"] == "local":
        busy = report.timings.get("encode", 0.0) / max(wall, 1e-9)
    else:
        r = run["ray"]
        busy = run.get("worker_timings_s", {}).get("encode", 0.0) / max(r.get("map_s", 0.0) * r["actors"], 1e-9)
    run.update({"timings_s": {k: round(v, 3) for k, v in report.timings.items()}, "resumed_shards": work["done"],
                "shards": work["shards"], "overlap": overlap, "wall_s": round(wall, 3),
                "model_busy_share": round(min(1.0, busy), 4)})
    if run["engine"] == "local":  # under Ray the encoder ran in the actors
        cache = aligner.encoder.word_cache
        run["encoder_batches"] = aligner.encoder.stats["batches"]
        run["word_cache"] = {"hits": int(cache.hits), "misses": int(cache.misses),
                             "hit_rate": round(cache.hits / max(1, cache.hits + cache.misses), 4)}
    return run


def _side_languages(labeled_lang: str, names: list[str]) -> tuple[str, ...]:
    """The FLORES-200 codes of the labeled side and of each receiving side (named by its
    language), checked before any model loads."""
    codes = []
    for what, lang in (("labeled_lang", labeled_lang), *(("receiving", n) for n in names)):
        try:
            codes.append(flores_code(lang))
        except XfastError as err:
            raise ParameterError(msg("E416", what=what, value=lang, reason=err)) from None
    return tuple(codes)
