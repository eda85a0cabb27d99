"""``xfast bench-reference``: the paper's own code and xfast, stage by stage, on the same inputs.

The reference (github.com/Cross-Lingual-NER/Projection-Data-Transfer-Cross-Lingual-NER, GPL-3.0)
is imported at run time from the user's checkout, as it is (:mod:`xfast.benchref.reference`);
each stage (:mod:`xfast.benchref.stages`) runs its code and xfast's on the same sentence pairs
and counts equal outputs and times both. docs/benchmarking.md describes the stages and the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from xfast.benchref.reference import Reference, check_reference, open_reference
from xfast.benchref.report import format_table, machine, write_outputs
from xfast.benchref.stages import (
    ALIGN_METHODS,
    E2E_METHODS,
    Inputs,
    read_inputs,
    run_alignment,
    run_e2e,
    run_evaluation,
    run_projection,
    xfast_heuristic,
    xfast_itermax,
)
from xfast.errors import ParameterError, check_choice, msg
from xfast.models.e5 import ensure_e5_small

__all__ = ["ALIGN_METHODS", "STAGES", "add_arguments", "bench_reference", "main"]

STAGES = ("alignment", "projection", "evaluation", "e2e")
#: reference modules each stage needs (short names of xfast.benchref.reference.MODULES)
NEEDS = {
    "alignment": ("word_aligners",),
    "projection": ("heuristic", "extractors", "candidates"),
    "evaluation": ("eval",),
    "e2e": ("word_aligners", "heuristic", "extractors", "candidates", "eval", "data", "runners", "transforms",
            "europarl"),
}
_DATA = Path(__file__).resolve().parent.parent / "data" / "europarl"


def _model_dir(model: str) -> Path:
    if model == "e5-small":
        return ensure_e5_small()
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ParameterError(msg("E133", model=model))
    return path.resolve()


def _check(data: Path, lang: str, pairs: int | None, layer: int, methods: Sequence[str], stages: Sequence[str],
           evaluate_metrics: Path | None) -> dict[str, Path]:
    """Every parameter error before any model loads."""
    files = {"labeled": data / "en.conll", "receiving": data / f"{lang}.conll"}
    for path in files.values():
        if not path.is_file():
            raise ParameterError(msg("E132", data=data, file=path.name))
    if pairs is not None and (not isinstance(pairs, int) or pairs < 1):
        raise ParameterError(msg("E202", name="pairs", expected="a whole number of at least 1", value=pairs))
    if not isinstance(layer, int) or layer < 1:
        raise ParameterError(msg("E202", name="layer", expected="a whole number of at least 1", value=layer))
    for m in methods:
        check_choice("methods", m, ALIGN_METHODS)
    for s in stages:
        check_choice("stages", s, STAGES)
    if evaluate_metrics is not None and not (evaluate_metrics / "seqeval" / "seqeval.py").is_file():
        raise ParameterError(msg("E134", path=evaluate_metrics))
    return files


def bench_reference(reference: Path, *, data: Path | None = None, lang: str = "de", pairs: int | None = None,
                    out: Path | None = None, model: str = "e5-small", layer: int = 8,
                    methods: Sequence[str] = ALIGN_METHODS, stages: Sequence[str] = STAGES,
                    e2e_methods: Sequence[str] = tuple(E2E_METHODS), evaluate_metrics: Path | None = None,
                    log: Callable[[str], None] | None = None) -> dict:
    """Run each stage through the reference checkout at ``reference`` and through xfast.

    ``data``: a folder with ``en.conll`` (labeled) and ``{lang}.conll`` (receiving), by default
    the shipped Europarl-NER test sets; ``pairs``: the first N pairs (default all); ``model``:
    ``e5-small`` (its rebuilt Hugging Face directory) or a local Hugging Face encoder directory
    that both simalign and xfast load; ``evaluate_metrics``: a folder holding
    ``seqeval/seqeval.py`` for ``evaluate.load("seqeval")`` offline. Returns ``{"rows": [...],
    "skipped": [...], "machine": {...}, "reference": {...}, "settings": {...}}``; with ``out``,
    also writes ``bench-reference.json`` and ``bench-reference.csv`` there (and the stages' files).

    Raises :class:`~xfast.errors.ParameterError` (E130-E134, E201, E202) before any work.
    """
    log = log or (lambda text: None)
    data = Path(data) if data is not None else _DATA
    evaluate_metrics = Path(evaluate_metrics).expanduser().resolve() if evaluate_metrics else None
    files = _check(data, lang, pairs, layer, methods, stages, evaluate_metrics)
    for m in e2e_methods:
        check_choice("e2e_methods", m, tuple(E2E_METHODS))
    check_reference(reference)
    model_dir = _model_dir(model)
    with open_reference(reference) as ref:
        work = Path(out) if out is not None else None
        result = _run(ref, files, lang, pairs, work, model_dir, layer, methods, stages, e2e_methods,
                      evaluate_metrics, log)
        result["settings"] = {"model": model, "model_dir": str(model_dir), "layer": layer, "lang": lang,
                              "pairs": result.pop("pairs"), "data": str(data), "stages": list(stages),
                              "methods": list(methods), "e2e_methods": list(e2e_methods)}
    if work is not None:
        write_outputs(result, work)
    return result


def _run(ref: Reference, files: dict[str, Path], lang: str, pairs: int | None, out: Path | None, model_dir: Path,
         layer: int, methods: Sequence[str], stages: Sequence[str], e2e_methods: Sequence[str],
         metrics: Path | None, log: Callable[[str], None]) -> dict:
    inputs = read_inputs(files["labeled"], files["receiving"], ref, pairs)
    rows: list[dict] = []
    skipped: list[dict] = []
    state: dict = {}
    with contextlib.ExitStack() as stack:
        folder = out if out is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        for stage in stages:
            if not ref.has(*NEEDS[stage]):
                skipped.append({"stage": stage, "reason": ref.why_not(*NEEDS[stage])})
                continue
            try:
                rows += _stage(stage, ref, inputs, files, lang, folder, model_dir, layer, methods, e2e_methods,
                               metrics, state, log)
            except Exception as err:  # noqa: BLE001 - the reference's own failures are reported per stage
                skipped.append({"stage": stage, "reason": f"failed: {type(err).__name__}: {err}"[:2000]})
    simalign = "—"
    if ref.has("word_aligners"):
        batched = hasattr(ref.word_aligners.simalign.SentenceAligner, "get_word_aligns_batched")
        simalign = "(batches pairs: the reference's fork)" if batched else "(one pair per call: PyPI simalign)"
    return {"rows": rows, "skipped": skipped, "pairs": len(inputs), "machine": machine(),
            "reference": {"path": str(ref.root), "commit": ref.commit, "placeholders": ref.placeholders,
                          "not_imported": {k: v for k, v in ref.missing.items()}, "simalign": simalign,
                          "entities_from": inputs.entities_from,
                          "alignments_for_projection": state.get("alignments_from", "")}}


def _stage(stage: str, ref: Reference, inputs: Inputs, files: dict[str, Path], lang: str, out: Path,
           model_dir: Path, layer: int, methods: Sequence[str], e2e_methods: Sequence[str], metrics: Path | None,
           state: dict, log: Callable[[str], None]) -> list[dict]:
    if stage == "alignment":
        rows, itermax = run_alignment(ref, inputs, model_dir, layer, methods, log)
        if itermax is not None:
            state["alignments"], state["alignments_from"] = itermax, "the reference's SimAlignAligner (itermax)"
        return rows
    if stage in ("projection", "evaluation") and "alignments" not in state:
        state["alignments"] = xfast_itermax(model_dir, layer, inputs)
        state["alignments_from"] = "xfast.Aligner (itermax, compat)"
    if stage == "projection":
        rows, labels = run_projection(ref, inputs, state["alignments"], log)
        state["labels"] = labels["heuristic"]
        return rows
    if stage == "evaluation":
        if "labels" not in state:
            state["labels"] = xfast_heuristic(inputs, state["alignments"])
        return [run_evaluation(ref, inputs, state["labels"], out / "evaluation", metrics, log)]
    return run_e2e(ref, inputs, files, lang, model_dir, layer, e2e_methods, out, metrics, log)


# ---------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``xfast bench-reference``."""
    p.description = ("Run the paper's published code (a local checkout, imported as it is) and xfast stage by "
                     "stage on the same sentence pairs: equal outputs and the time of each (docs/benchmarking.md).")
    p.epilog = ("example: xfast bench-reference --reference ~/Projection-Data-Transfer-Cross-Lingual-NER "
                "--pairs 200 --out runs/bench")
    p.add_argument("--reference", required=True, metavar="PATH",
                   help="a checkout of github.com/Cross-Lingual-NER/Projection-Data-Transfer-Cross-Lingual-NER")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder with en.conll and LANG.conll (default: the shipped Europarl-NER test sets)")
    p.add_argument("--lang", default="de", help="the receiving side, LANG.conll in --data")
    p.add_argument("--pairs", type=int, default=None, metavar="N", help="only the first N sentence pairs (default: all)")
    p.add_argument("--out", default="bench-reference", metavar="DIR",
                   help="folder for bench-reference.json, bench-reference.csv and the stages' files")
    p.add_argument("--model", default="e5-small", metavar="NAME_OR_DIR",
                   help="the encoder both sides load: e5-small (its rebuilt Hugging Face directory) or a local "
                        "Hugging Face directory (mBERT, XLM-R, xfast models tiny's mbert / xlmr)")
    p.add_argument("--layer", type=int, default=8, help="the encoder layer both sides align with")
    p.add_argument("--methods", nargs="+", default=list(ALIGN_METHODS), choices=ALIGN_METHODS,
                   help="alignment methods of the alignment stage (mwmf runs networkx in the reference: slow)")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="stages to run")
    p.add_argument("--e2e-methods", nargs="+", default=list(E2E_METHODS), choices=list(E2E_METHODS),
                   help="end-to-end pipelines: heuristic (its align_src run) and ngram-greedy (its dummy/argmax "
                        "candidates run)")
    p.add_argument("--evaluate-metrics", default=None, metavar="DIR",
                   help="a folder with seqeval/seqeval.py (the metrics/ folder of a huggingface/evaluate checkout), "
                        "so that the reference's evaluate.load('seqeval') works offline")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args: argparse.Namespace) -> int:
    """Run ``xfast bench-reference``; 0 when every stage that ran gave equal outputs, 1 when one
    differed or failed or none ran, 2 on bad input (raised as an XfastError)."""
    quiet = args.quiet or args.json
    if quiet:  # read by datasets when the reference's modules import it
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

    def log(text: str) -> None:
        if not quiet:
            print(f"bench-reference: {text}", file=sys.stderr, flush=True)

    # the reference and the libraries it loads print to stdout; keep it for the result
    with contextlib.redirect_stdout(sys.stderr):
        result = bench_reference(Path(args.reference), data=args.data and Path(args.data), lang=args.lang,
                                 pairs=args.pairs, out=Path(args.out), model=args.model, layer=args.layer,
                                 methods=args.methods, stages=args.stages, e2e_methods=args.e2e_methods,
                                 evaluate_metrics=args.evaluate_metrics and Path(args.evaluate_metrics), log=log)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
        print(f"\nwritten: {result['outputs']['json']}, {result['outputs']['csv']}")
    differ = [r for r in result["rows"] if r["equal"] != r["total"] or r.get("files_identical") is False]
    failed = [s for s in result["skipped"] if s["reason"].startswith("failed:")]
    return 1 if differ or failed or not result["rows"] else 0
