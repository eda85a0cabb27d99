"""Parallel-corpus projection (SPEC §8 *parallel*), the engine behind ``xfast project``.

A labeled side (CoNLL with gold or predicted entities) and one or more receiving sides (CoNLL
or plain tokenized text) are read in lockstep, in chunks. Each chunk's labeled side is encoded
once and reused for every receiving side; each pair is aligned once and the alignment serves
every projection method. Outputs: labeled CoNLL per side and method, optional Pharaoh
alignments with per-link scores, metrics when the receiving side has gold labels, a manifest
and a QA summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from xfast.errors import ParameterError, check_choice, msg
from xfast.pipelines.runner import (PROJECTION_METHODS, ProjectionConfig, RunReport, chunks,
                                    file_sha256, map_label_set, project_batch, versions, write_json)

__all__ = ["project_parallel", "labeled_entities", "add_arguments", "main"]


def labeled_entities(labels: list[str], *, compat: bool = False) -> list[tuple[int, int, str]]:
    """Entities of the labeled side. ``compat``: the reference's reader loses an entity that
    a ``B-`` tag directly follows (SPEC §8)."""
    from xfast.io import entities_of

    ents = entities_of(labels)
    if not compat:
        return ents
    return [e for e in ents if not (e[1] < len(labels) and labels[e[1]].startswith("B-"))]


def project_parallel(labeled: str | Path, receiving: dict[str, str | Path], out_dir: str | Path, *,
                     aligner=None, methods: tuple[str, ...] = ("heuristic", "ngram-greedy"),
                     config: ProjectionConfig | None = None, candidates: dict[str, str | Path] | None = None,
                     batch_size: int = 512, write_alignments: bool = False,
                     label_set: set[str] | None = None, ignore: tuple[str, ...] = (),
                     progress: bool = True, total: int | None = None) -> dict:
    """Project the labeled side's entities onto every receiving side with every method.

    ``receiving`` maps a name (e.g. a language code) to a file; ``candidates`` maps names to
    CoNLL files whose entities are the receiving side's NER candidates (``ner-*`` methods).
    ``aligner``: an :class:`xfast.Aligner` (default: the embedded e5-small). Returns
    ``{"results": [metrics rows], "timings": {...}, "qa": {...}, "outputs": {...}}``; metrics
    rows exist for receiving sides with gold labels.
    """
    from tqdm.auto import tqdm

    from xfast.evaluate import ignore_types, proj_ratio, scores
    from xfast.io import read_parallel
    from xfast.io.files import atomic_open
    from xfast.io.pharaoh import format_pharaoh

    cfg = config or ProjectionConfig()
    for m in methods:
        check_choice("methods", m, PROJECTION_METHODS)
    if not receiving:
        raise ParameterError(msg("E202", name="receiving", expected="at least one file", value=receiving))
    candidates = candidates or {}
    for m in methods:
        if m.startswith("ner-"):
            missing = [n for n in receiving if n not in candidates]
            if missing:
                raise ParameterError(msg("E202", name="candidates",
                                         expected=f"a candidates file for {missing} (method {m})",
                                         value=sorted(candidates)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = RunReport()
    if aligner is None:
        with report.stage("load aligner"):
            from xfast.aligner import Aligner

            aligner = Aligner()
    names = list(receiving)
    cand_names = [n for n in names if n in candidates]
    paths = [Path(labeled)] + [Path(receiving[n]) for n in names] + [Path(candidates[n]) for n in cand_names]
    gold: dict[str, list] = {n: [] for n in names}
    has_gold: dict[str, bool] = {n: True for n in names}
    preds: dict[tuple[str, str], list] = {(n, m): [] for n in names for m in methods}
    outputs = {f"{n}/{m}": out / f"{n}.{m}.conll" for n in names for m in methods}
    if write_alignments:
        outputs.update({f"{n}/alignment": out / f"{n}.align.txt" for n in names})

    with ExitStack() as stack:
        fh = {k: stack.enter_context(atomic_open(p)) for k, p in outputs.items()}
        rows = read_parallel(paths, labels=[True] + [None] * len(names) + [True] * len(cand_names))
        bar = stack.enter_context(tqdm(total=total, unit="sent", desc="project", disable=not progress))
        for batch in chunks(rows, batch_size):
            start = report.sentences_in
            report.sentences_in += len(batch)
            lab = [r[0] for r in batch]
            entities = [labeled_entities(s.labels, compat=cfg.compat) for s in lab]
            with report.stage("encode labeled"):
                lab_enc = aligner.encode([s.tokens for s in lab])
            for j, name in enumerate(names):
                rec = [r[1 + j] for r in batch]
                words = [s.tokens for s in rec]
                if rec[0].labels is None:
                    has_gold[name] = False
                elif has_gold[name]:
                    gold[name].extend(s.labels for s in rec)
                cand = None
                if name in candidates:
                    from xfast.io import entities_of

                    cand = [entities_of(r[1 + len(names) + cand_names.index(name)].labels) for r in batch]
                with report.stage("encode receiving"):
                    rec_enc = aligner.encode(words)
                with report.stage("align"):
                    alns = aligner.align_encoded(lab_enc, rec_enc)
                if write_alignments:
                    with report.stage("write"):
                        link = aligner.link_scores(lab_enc, rec_enc, alns)
                        w = fh[f"{name}/alignment"]
                        for a, sc in zip(alns, link):
                            w.write(format_pharaoh(a, sc) + "\n")
                for m in methods:
                    with report.stage("project"):
                        labels = project_batch(m, entities, alns, words, cfg, report,
                                               key=f"{name}/{m}", candidates=cand, offset=start)
                        labels = map_label_set(labels, label_set)
                    with report.stage("write"):
                        w = fh[f"{name}/{m}"]
                        for toks, labs in zip(words, labels):
                            w.writelines(f"{t}\t{lb}\n" for t, lb in zip(toks, labs))
                            w.write("\n")
                    preds[(name, m)].extend(labels)
            report.sentences_out += len(batch)
            bar.update(len(batch))
    report.encoder = dict(aligner.stats)

    results = []
    with report.stage("evaluate"):
        for name in names:
            if not has_gold[name]:
                continue
            g = gold[name]
            for m in methods:
                p = preds[(name, m)]
                row = scores(g, p, ignore=ignore)
                row["proj_ratio"] = proj_ratio(ignore_types(g, ignore), ignore_types(p, ignore))
                row.update({"lang": name, "method": m, "aligner": aligner.settings["model"],
                            "align_method": aligner.method})
                results.append(row)
    if results:
        write_json(out / "metrics.json", results)
    qa = report.summary()
    write_json(out / "qa.json", qa)
    manifest = {
        "command": "project",
        "inputs": {str(p): file_sha256(p) for p in paths},
        "aligner": {**aligner.settings, "model_dir": str(aligner.encoder.model_dir)},
        "methods": list(methods),
        "config": cfg,
        "batch_size": batch_size,
        "label_set": sorted(label_set) if label_set else None,
        "ignore": list(ignore),
        "versions": versions(),
        "outputs": {k: str(v) for k, v in outputs.items()},
    }
    write_json(out / "manifest.json", manifest)
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {k: str(v) for k, v in outputs.items()}}


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
    p.add_argument("--labeled", required=True, help="CoNLL file whose entities are projected")
    p.add_argument("--receiving", required=True, nargs="+", metavar="[NAME=]PATH",
                   help="receiving sides (CoNLL, or .txt/.tok one sentence per line)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--method", nargs="+", default=["heuristic", "ngram-greedy"], choices=PROJECTION_METHODS)
    p.add_argument("--candidates", nargs="*", default=[], metavar="[NAME=]PATH",
                   help="CoNLL files with NER entities of the receiving sides (ner-* methods)")
    p.add_argument("--aligner", default="e5-small", help="registry name or local HF directory")
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--align-method", default="itermax", choices=["itermax", "inter", "fwd", "rev", "mwmf", "softmax"])
    p.add_argument("--token-type", default="bpe", choices=["bpe", "word"])
    p.add_argument("--quantize", choices=["int8"], default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--length-ratio", type=float, default=0.8)
    p.add_argument("--merge-distance", type=int, default=1)
    p.add_argument("--min-words", type=int, default=1)
    p.add_argument("--max-words", type=int, default=0)
    p.add_argument("--label-set", nargs="*", default=None, metavar="TYPE")
    p.add_argument("--ignore", nargs="*", default=[], metavar="TYPE")
    p.add_argument("--write-alignments", action="store_true", help="also write NAME.align.txt (Pharaoh, scored)")
    p.add_argument("--compat", action="store_true", help="reproduce the reference's quirks (SPEC compat)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run ``xfast project``; 1 when some sentences failed, else 0."""
    from xfast.aligner import Aligner
    from xfast.report import format_table

    aligner = Aligner(args.aligner, layer=args.layer, method=args.align_method, token_type=args.token_type,
                      quantize=args.quantize, threads=args.threads, compat=args.compat)
    cfg = ProjectionConfig(length_ratio=args.length_ratio, merge_distance=args.merge_distance,
                           min_words=args.min_words, max_words=args.max_words, compat=args.compat)
    res = project_parallel(args.labeled, _named(args.receiving, "receiving"), args.out, aligner=aligner,
                           methods=tuple(args.method), config=cfg,
                           candidates=_named(args.candidates, "candidates"), batch_size=args.batch_size,
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
