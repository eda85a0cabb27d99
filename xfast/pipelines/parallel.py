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

from xfast.errors import ParameterError, msg
from xfast.pipelines.runner import ProjectionConfig, RunReport, file_sha256, versions, write_json

__all__ = ["project_parallel", "labeled_entities", "add_arguments", "main"]

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
                     overlap: bool = True) -> dict:
    """Project the labeled side's entities onto every receiving side with every method.

    ``receiving`` maps a name (e.g. a language code) to a file; ``candidates`` maps names to
    CoNLL files whose entities are the receiving side's NER candidates (``ner-*`` methods).
    ``aligner``: an :class:`xfast.Aligner`, or the keyword arguments that make one once the
    inputs are checked (default: the embedded e5-small). ``batch_size``
    sentences go through the stages together; ``shard_size`` (a multiple of it, default 16
    batches) is the unit a killed run resumes from. ``overwrite`` replaces another run's
    outputs in ``out_dir`` (else that is an error). ``overlap=False`` runs the encoder and
    the host stages one after the other (same outputs). Returns ``{"results": [metrics
    rows], "timings": {...}, "qa": {...}, "outputs": {...}, "run": {...}}``; metrics rows
    exist for receiving sides with gold labels.
    """
    from tqdm.auto import tqdm

    from xfast.evaluate import ScoreCounts
    from xfast.io.columns import LabelTypes, conll_bytes, read_parallel_columns
    from xfast.pipelines import stages
    from xfast.pipelines.engine import overlapped
    from xfast.pipelines.run import RunDir, run_key

    cfg = config or ProjectionConfig()
    stages.methods_valid(methods)
    if not receiving:
        raise ParameterError(msg("E202", name="receiving", expected="at least one file", value=receiving))
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(msg("E202", name=name, expected="an int >= 1", value=value))
    shard_size = shard_size or 16 * batch_size
    if shard_size % batch_size:
        raise ParameterError(msg("E202", name="shard_size", expected=f"a multiple of batch_size ({batch_size})",
                                 value=shard_size))
    candidates = candidates or {}
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

    n_total = check_parallel(paths)  # missing, empty or unequal inputs stop before anything is made
    report = RunReport()
    if aligner is None or isinstance(aligner, dict):  # made after the inputs are checked
        with report.stage("load aligner"):
            from xfast.aligner import Aligner

            aligner = Aligner(**(aligner or {}))
    from xfast.pipelines.cache import model_fingerprint

    outputs = {f"{n}/{m}": out / f"{n}.{m}.conll" for n in names for m in methods}
    if write_alignments:
        outputs.update({f"{n}/alignment": out / f"{n}.align.txt" for n in names})
    inputs = {str(p): file_sha256(p) for p in paths}
    settings = {"receiving": names, "candidates": cand_names, "methods": list(methods), "config": cfg,
                "batch_size": batch_size, "shard_size": shard_size, "write_alignments": write_alignments,
                "label_set": sorted(label_set) if label_set else None, "ignore": list(ignore)}
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
    encoder = aligner.encoder
    enc_counts = {k: report.encoder.get(k, 0) for k in _ENCODER_COUNTS}
    shard = {"index": done, "sentences": 0, "parts": {k: [] for k in outputs}}
    chunks_in = read_parallel_columns(paths, labels=[True] + [None] * len(names) + [True] * len(cand_names),
                                      chunk_size=batch_size, types=types)
    bar = tqdm(total=n_total, initial=done * shard_size, unit="pair", desc="project", disable=not progress,
               bar_format="{l_bar}{bar}| {n:.0f}/{total} pairs [{elapsed}<{remaining}]")

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

    def prepare(row):
        with report.stage("tokenize"):
            before = {k: encoder.stats[k] for k in ("sentences", "subwords", "truncated")}
            subs = [stages.tokenize(cols, encoder) for cols in row[:1 + len(names)]]
            return subs, {k: encoder.stats[k] - v for k, v in before.items()}

    # link scores read the raw states; otherwise SimAlign's normalisation runs per model output
    transform = None if write_alignments else aligner.state_transform

    sides = 1 + len(names)

    def tick(n: int) -> None:  # the bar moves with the encoder, the slow stage on a CPU
        bar.update(n / sides)

    def model(prep):
        before = {k: encoder.stats[k] for k in ("windowed", "windows")}
        states = [stages.encode(sub, encoder, transform, tick) for sub in prep[0]]
        return states, {k: encoder.stats[k] - v for k, v in before.items()}

    def host(row, prep, model_out):
        (subs, tok_counts), (states, enc_delta) = prep, model_out
        for k, v in (*tok_counts.items(), *enc_delta.items()):
            enc_counts[k] += v
        lab_cols = row[0]
        start = report.sentences_in
        report.sentences_in += len(lab_cols)
        ents = stages.entities(lab_cols, compat=cfg.compat)
        parts = shard["parts"]
        for j, name in enumerate(names):
            rec_cols = row[1 + j]
            n_rec = rec_cols.lengths()
            if rec_cols.codes is None:
                has_gold[name] = False
            with report.stage("align"):
                aln = stages.align((subs[0], states[0]), (subs[1 + j], states[1 + j]), aligner)
            if write_alignments:
                with report.stage("write"):
                    parts[f"{name}/alignment"].append(_pharaoh(aligner, subs[0], states[0], subs[1 + j],
                                                               states[1 + j], aln))
            cands = {}
            for m in methods:
                with report.stage("project"):
                    kind = m.split("-")[0]
                    if kind != "heuristic" and kind not in cands:
                        ner = row[1 + len(names) + cand_names.index(name)] if kind == "ner" else None
                        cands[kind] = stages.candidates(kind, rec_cols, cfg, ner)
                    codes = stages.project_counted(m, ents, aln, n_rec, cfg, report, key=f"{name}/{m}",
                                                   offset=start, cands=cands.get(kind))
                    written = stages.keep_types(codes, types, label_set)
                    stages.count_entities(report, f"{name}/{m}", ents, codes, written, types)
                    codes = written
                with report.stage("write"):
                    parts[f"{name}/{m}"].append(conll_bytes(rec_cols, codes, types))
                if has_gold[name]:
                    with report.stage("evaluate"):
                        counts[(name, m)].add(rec_cols.codes, codes, rec_cols.sent_off, types.names,
                                              ignore=ignore)
        report.sentences_out += len(lab_cols)
        shard["sentences"] += len(lab_cols)
        if shard["sentences"] == shard_size:
            commit()

    def commit():
        with report.stage("commit"):
            report.encoder = dict(enc_counts)
            rundir.commit(shard["index"], {k: b"".join(v) for k, v in shard["parts"].items()},
                          {"qa": report.state(), "has_gold": has_gold,
                           "scores": {f"{n}/{m}": c.to_dict() for (n, m), c in counts.items()}})
        shard.update(index=shard["index"] + 1, sentences=0, parts={k: [] for k in outputs})

    with bar:
        overlapped(read(), prepare, model, host, report=report, overlap=overlap, model_stage="encode")
        if shard["sentences"]:
            commit()
        bar.n = bar.total  # windows and empty sentences make the encoder's count approximate
        bar.refresh()
    report.encoder = dict(enc_counts)
    results = []
    with report.stage("evaluate"):
        for name in names:
            if not has_gold[name]:
                continue
            for m in methods:
                row = counts[(name, m)].result()
                row.update({"lang": name, "method": m, "aligner": aligner.settings["model"],
                            "align_method": aligner.method})
                results.append(row)
    with report.stage("commit"):
        rundir.finish(shard["index"])
        if results:
            write_json(out / "metrics.json", results)
        qa = report.state()
        write_json(out / "qa.json", qa)
        write_json(out / "manifest.json", {
            "command": "project", "run_key": key, "inputs": inputs,
            "aligner": {**aligner.settings, "model_dir": str(aligner.encoder.model_dir)},
            **settings, "versions": versions(), "outputs": {k: v.name for k, v in outputs.items()}})
    cache = encoder.word_cache
    run = {"timings_s": {k: round(v, 3) for k, v in report.timings.items()}, "resumed_shards": done,
           "shards": shard["index"], "overlap": overlap, "encoder_batches": encoder.stats["batches"],
           "word_cache": {"hits": int(cache.hits), "misses": int(cache.misses),
                          "hit_rate": round(cache.hits / max(1, cache.hits + cache.misses), 4)}}
    write_json(out / "run.json", run)
    rundir.close()
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {k: str(v) for k, v in outputs.items()}, "run": run}


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
    from xfast.aligner import METHODS as ALIGN_METHODS
    from xfast.pipelines.runner import PROJECTION_METHODS

    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.epilog = ("example: xfast project --labeled en.conll --receiving de=de.conll es=es.txt "
                "--out runs/europarl --method heuristic ngram-greedy")
    p.add_argument("--labeled", required=True, help="CoNLL file whose entities are projected")
    p.add_argument("--receiving", required=True, nargs="+", metavar="[NAME=]PATH",
                   help="receiving sides (CoNLL, or .txt/.tok one sentence per line)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--method", nargs="+", default=["heuristic", "ngram-greedy"], choices=PROJECTION_METHODS,
                   help="projection methods, each written to NAME.METHOD.conll")
    p.add_argument("--candidates", nargs="*", default=[], metavar="[NAME=]PATH",
                   help="CoNLL files with NER entities of the receiving sides (ner-* methods)")
    p.add_argument("--aligner", default="e5-small", help="registry name or local Hugging Face directory")
    p.add_argument("--layer", type=int, default=None,
                   help="encoder layer whose states are compared (default: the registry's for the model, else 8)")
    p.add_argument("--align-method", default="itermax", choices=ALIGN_METHODS,
                   help="alignment extraction (SimAlign itermax/inter/fwd/rev/mwmf, AWESoME softmax)")
    p.add_argument("--token-type", default="bpe", choices=["bpe", "word"],
                   help="align subwords (bpe) or subword-averaged words")
    p.add_argument("--quantize", choices=["int8"], default=None, help="run the int8 encoder")
    p.add_argument("--threads", type=int, default=None, help="encoder threads (default: the runtime's)")
    p.add_argument("--batch-size", type=int, default=512, help="sentences per batch through the stages")
    p.add_argument("--shard-size", type=int, default=None,
                   help="sentences per output shard, the unit a killed run resumes from "
                        "(a multiple of --batch-size; default 16 batches)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another run's outputs in --out (else that is an error)")
    p.add_argument("--length-ratio", type=float, default=0.8,
                   help="heuristic: keep a span longer than this share of its entity")
    p.add_argument("--merge-distance", type=int, default=1, help="heuristic: merge spans this close (0: never)")
    p.add_argument("--min-words", type=int, default=1, help="n-gram candidates: fewest words")
    p.add_argument("--max-words", type=int, default=0, help="n-gram candidates: most words (0: the sentence)")
    p.add_argument("--label-set", nargs="+", default=None, metavar="TYPE",
                   help="entity types written out; others become O (default: all)")
    p.add_argument("--ignore", nargs="*", default=[], metavar="TYPE", help="types scored as O (e.g. DATE)")
    p.add_argument("--write-alignments", action="store_true", help="also write NAME.align.txt (Pharaoh, scored)")
    p.add_argument("--compat", action="store_true", help="reproduce the paper's code's quirks (see docs)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run ``xfast project``; 1 when some sentences failed, else 0."""
    from xfast.report import format_table

    aligner = dict(model=args.aligner, layer=args.layer, method=args.align_method, token_type=args.token_type,
                   quantize=args.quantize, threads=args.threads, compat=args.compat)
    cfg = ProjectionConfig(length_ratio=args.length_ratio, merge_distance=args.merge_distance,
                           min_words=args.min_words, max_words=args.max_words, compat=args.compat)
    res = project_parallel(args.labeled, _named(args.receiving, "receiving"), args.out, aligner=aligner,
                           methods=tuple(args.method), config=cfg,
                           candidates=_named(args.candidates, "candidates"), batch_size=args.batch_size,
                           shard_size=args.shard_size, overwrite=args.overwrite,
                           write_alignments=args.write_alignments,
                           label_set=set(args.label_set) if args.label_set else None,
                           ignore=tuple(args.ignore), progress=not args.quiet)
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
