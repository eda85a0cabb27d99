"""The ``xfast`` command line: each subcommand is a thin wrapper over a typed function.

Exit codes: 0 success, 1 a run that finished with failures, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

# torch, ONNX Runtime and CTranslate2 may share this process: make OpenMP threads wait
# passively before any of them is imported, or they spin against each other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from xfast import __version__  # noqa: E402
from xfast.errors import XfastError  # noqa: E402

__all__ = ["main"]


def _evaluate(args: argparse.Namespace) -> int:
    from xfast.errors import DataError, msg
    from xfast.evaluate import ignore_types, proj_ratio, scores
    from xfast.io import read_parallel
    from xfast.report import format_scores

    g, p = [], []
    differ, first = 0, None
    for gold, pred in read_parallel([args.gold, args.pred], labels=[True, True]):  # E104 on counts
        if len(gold) != len(pred):
            raise DataError(args.pred, pred.line, msg(
                "E108", what=f"the length of the sentence at {args.gold}:{gold.line}",
                ng=len(gold), np=len(pred)))
        for k, (a, b) in enumerate(zip(gold.tokens, pred.tokens)):
            if a != b:
                differ += 1
                first = first or (pred.line + k if pred.line else None)
        g.append(gold.labels)
        p.append(pred.labels)
    if differ:
        where = f" (the first at {args.pred}:{first})" if first else ""
        print(f"xfast: warning: {differ} tokens differ between gold and prediction{where}; "
              "the labels are scored position by position", file=sys.stderr)
    result = scores(g, p, ignore=args.ignore)
    result["proj_ratio"] = proj_ratio(ignore_types(g, args.ignore), ignore_types(p, args.ignore))
    if args.json:
        print(json.dumps(result))
    else:
        print(format_scores(result))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from xfast.pipelines.demo import run_demo

    return run_demo(json_out=args.json, quantize=args.quantize, limit=args.limit, quiet=args.quiet,
                    device=args.device, out_dir=args.out, overwrite=args.overwrite)


def _compare(args: argparse.Namespace) -> int:
    from xfast.compare import MATCHED, REFERENCE_ONLY, XFAST_ONLY, compare, format_comparison, write_comparison

    result = compare(args.runs, args.reference, lang_match=args.lang_match)
    written = write_comparison(args.out, result, figure=args.figure)
    if args.json:
        counts = {k: result.count(s) for k, s in
                  (("matched", MATCHED), ("xfast_only", XFAST_ONLY), ("reference_only", REFERENCE_ONLY))}
        print(json.dumps({"counts": counts, "rows": result.rows, "notes": result.notes, **written}))
        return 0
    print(format_comparison(result))
    print(f"\nwritten: {written['outputs']['csv']}" + (f", {written['outputs']['png']}" if written["figure"] else ""))
    if written["figure_skipped"] and args.figure != "never":
        print(f"xfast: warning: no compare.png: {written['figure_skipped']}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from xfast.errors import ParameterError, msg

    from importlib.util import find_spec

    missing = next((m for m in ("fastapi", "uvicorn", "prometheus_client") if find_spec(m) is None), None)
    if missing:
        raise ParameterError(msg("E204", what="xfast serve", extra="serve", missing=missing))
    from xfast.serve.app import ServeSettings, serve

    for name in ("max_wait_ms", "max_batch_tokens", "max_queue", "max_request_bytes", "max_pairs",
                 "max_sentence_words", "max_word_chars"):
        if not getattr(args, name) > 0:
            raise ParameterError(msg("E202", name="--" + name.replace("_", "-"), expected="a number > 0",
                                     value=getattr(args, name)))
    if not args.drain_timeout >= 0:
        raise ParameterError(msg("E202", name="--drain-timeout", expected="seconds >= 0", value=args.drain_timeout))
    from xfast.models.encoder import providers_for, takes_language
    from xfast.pipelines.runner import aligner_kwargs_of

    if takes_language(args.aligner):  # the languages are checked before the server starts
        if not args.receiving_lang:
            raise ParameterError(msg("E415", model=args.aligner, how="--receiving-lang (and --labeled-lang)"))
        from xfast.models.flores import flores_code

        flores_code(args.labeled_lang), flores_code(args.receiving_lang)  # E402 for one NLLB-200 lacks
    aligner = dict(aligner_kwargs_of(args), providers=providers_for(args.device))
    settings = ServeSettings(max_wait_ms=args.max_wait_ms, max_batch_tokens=args.max_batch_tokens,
                             max_queue=args.max_queue, max_request_bytes=args.max_request_bytes,
                             methods=tuple(args.methods), aligner=aligner,
                             langs=(args.labeled_lang, args.receiving_lang) if args.receiving_lang else None,
                             max_pairs=args.max_pairs, max_sentence_words=args.max_sentence_words,
                             max_word_chars=args.max_word_chars, drain_timeout=args.drain_timeout,
                             api_key=args.api_key or os.environ.get("XFAST_API_KEY") or None)
    return serve(settings, host=args.host, port=args.port, log_level=args.log_level,
                 allow_unauthenticated=args.allow_unauthenticated)


def _models(args: argparse.Namespace) -> int:
    if args.models_cmd == "tiny":
        from xfast.models.tiny import build_tiny

        paths = build_tiny(args.out)
        if args.json:
            print(json.dumps({k: str(v) for k, v in paths.items()}))
        else:
            for k, v in paths.items():
                print(f"{k:14s} {v}")
        return 0
    from xfast.models import commands

    if args.models_cmd == "list":
        return commands.cmd_list(json=args.json)
    return commands.cmd_export(args.src, args.kind, args.layer, args.out, args.quantize)


# subcommand -> module of xfast.pipelines that owns it (add_arguments + main)
_MODULES = {"project": "parallel", "translate-test": "translate_test",
            "translate-train": "translate_train", "model-transfer": "model_transfer"}


def _pipeline(name: str):
    def run(args: argparse.Namespace) -> int:
        from importlib import import_module

        mod = import_module(f"xfast.pipelines.{_MODULES[name]}")
        return mod.main(args)

    return run


@contextmanager
def _silenced(on: bool) -> Iterator[None]:
    """``--quiet``: only errors and the result; no notices about building models, no
    Hugging Face or transformers progress bars ("Loading weights"), no transformers messages
    below errors, no library warnings on the root logger, no Ray log lines (ray_engine reads
    ``XFAST_QUIET``); all restored after."""
    if not on:
        yield
        return
    import logging

    # read by these libraries when they are imported; those imported already are told below
    env = {"XFAST_QUIET": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    saved = {k: os.environ.get(k) for k in env}
    root = logging.getLogger()
    level = root.level
    os.environ.update(env)
    root.setLevel(logging.ERROR)
    undo = _mute_imported()
    try:
        yield
    finally:
        for restore in reversed(undo):
            restore()
        root.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _mute_imported() -> list[Callable[[], object]]:
    """Turn off the progress bars and info messages of huggingface_hub and transformers where
    they are imported already (the environment only reaches a later import); returns how to
    turn them back on."""
    undo: list[Callable[[], object]] = []
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub

        if not hub.are_progress_bars_disabled():
            hub.disable_progress_bars()
            undo.append(hub.enable_progress_bars)
    if "transformers" in sys.modules:
        from transformers.utils import logging as tf_logging

        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            undo.append(tf_logging.enable_progress_bar)
        verbosity = tf_logging.get_verbosity()
        tf_logging.set_verbosity_error()
        undo.append(lambda: tf_logging.set_verbosity(verbosity))
    return undo


class _Parser(argparse.ArgumentParser):
    """argparse with xfast's error form: one line, exit code 2 (no usage block)."""

    def error(self, message: str) -> None:
        self.exit(2, f"xfast: error: {self.prog}: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """One readable default per option: ``(default: X)`` is added unless the help says its own
    default, the option is required, or there is no value to show (None, empty, off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        value = action.default
        if ("default" in text or action.required or not action.option_strings or value is None
                or value is False or value in ("", [], argparse.SUPPRESS)):
            return text
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        return f"{text} (default: {shown.replace('%', '%%')})"


def _leaf_parsers(p: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subcommand's parser under ``p`` (``models list`` included)."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in dict.fromkeys(action.choices.values()):
                yield sp
                yield from _leaf_parsers(sp)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from xfast.pipelines.runner import add_device_argument, add_encoder_arguments
    from xfast.serve.projector import SERVE_METHODS

    p = _Parser(
        prog="xfast",
        description="High-throughput annotation projection for cross-lingual NER.",
    )
    p.add_argument("--version", action="version", version=f"xfast {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="project Europarl-NER English entities onto de/es/it with the embedded aligner",
                       epilog="example: xfast demo --limit 100 --out runs/demo")
    d.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    d.add_argument("--quantize", choices=["int8", "float16"], default=None,
                   help="use the int8 encoder (CPU) or the float16 one (GPU)")
    add_device_argument(d, default="auto", where="where the encoder runs")
    d.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N sentences (default: all 799)")
    d.add_argument("--quiet", action="store_true", help="no progress bars or notices, only the result")
    d.add_argument("--out", default=None, metavar="DIR",
                   help="keep the run folder here (outputs, metrics.csv, qa.json) for xfast compare "
                        "(default: a temporary folder, removed)")
    d.add_argument("--overwrite", action="store_true", help="replace another run's outputs in --out")
    d.set_defaults(func=_demo)

    e = sub.add_parser("evaluate", help="score predicted CoNLL/JSONL labels against gold (seqeval default mode)")
    e.add_argument("--gold", required=True, help="gold CoNLL or JSONL file")
    e.add_argument("--pred", required=True, help="predicted CoNLL or JSONL file, same sentences")
    e.add_argument("--ignore", nargs="*", default=[], metavar="TYPE", help="entity types scored as O (e.g. DATE)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.epilog = "example: xfast evaluate --gold de.conll --pred runs/europarl/de.heuristic.conll --ignore DATE"
    e.set_defaults(func=_evaluate)

    m = sub.add_parser("models", help="model registry, exports and the tiny offline models")
    msub = m.add_subparsers(dest="models_cmd", required=True, metavar="ACTION")
    ml = msub.add_parser("list", help="show the registry")
    ml.add_argument("--json", action="store_true", help="print one JSON object")
    mt = msub.add_parser("tiny", help="build tiny random models and their exports into OUT (offline trials, tests)")
    mt.add_argument("out", help="output directory")
    mt.add_argument("--json", action="store_true", help="print the paths as one JSON object")
    mx = msub.add_parser("export", help="export a local Hugging Face model directory")
    mx.add_argument("src", help="local HF model directory")
    mx.add_argument("--kind", choices=["encoder", "tagger", "translator"], required=True,
                    help="what the model is used as")
    mx.add_argument("--layer", type=int, default=None,
                    help="encoder: cut after this layer (default: 8; an NLLB checkpoint's encoder: its last)")
    mx.add_argument("--out", default=None, help="output directory (default: the cache)")
    mx.add_argument("--quantize", choices=["int8", "float16", "float32"], default=None,
                    help="encoder: int8 or float16; tagger: int8; translator: int8, float16 or float32")
    m.set_defaults(func=_models)

    c = sub.add_parser("compare", help="set xfast runs' metrics.csv rows beside the paper's results rows (table, "
                                       "compare.csv, compare.png)",
                       epilog="example: xfast compare runs/demo --reference europarlner_metrics.csv --out runs/compare")
    c.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run folders of xfast project, translate-test, model-transfer or demo --out (their "
                        "metrics.csv), or metrics CSV files")
    c.add_argument("--reference", action="append", required=True, metavar="CSV", default=argparse.SUPPRESS,
                   help="a results CSV of the paper (e.g. europarlner_metrics.csv); repeat for several")
    c.add_argument("--out", required=True, metavar="DIR", default=argparse.SUPPRESS,
                   help="folder for compare.csv and compare.png (replaced)")
    c.add_argument("--lang-match", choices=["flores", "exact"], default="flores",
                   help="flores: a language with no exact partner joins by FLORES-200 code (de = deu = deu_Latn); "
                        "exact: only as spelled")
    c.add_argument("--figure", choices=["auto", "always", "never"], default="auto",
                   help="compare.png: auto draws it when matplotlib is installed (xfast[plot]), always requires "
                        "it, never skips it")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    c.set_defaults(func=_compare)

    sv = sub.add_parser("serve", help="serve projection and alignment over HTTP (JSON), batching concurrent requests",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        epilog="example: xfast serve --port 8080 --aligner e5-small --max-wait-ms 5")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8080, help="port (0: any free one, printed at start)")
    add_encoder_arguments(sv)
    sv.add_argument("--labeled-lang", default="en", help="language of the labeled side (read by NLLB encoders)")
    sv.add_argument("--receiving-lang", default=None,
                    help="language of the receiving side; needed by an NLLB encoder (e.g. de, yor_Latn)")
    sv.add_argument("--methods", nargs="+", default=list(SERVE_METHODS), choices=SERVE_METHODS,
                    help="projection methods offered")
    sv.add_argument("--max-wait-ms", type=float, default=5.0,
                    help="longest an encoder call waits for more requests to share it, or a tenth of the last "
                         "call's time if longer (a lone request goes at once)")
    sv.add_argument("--max-batch-tokens", type=int, default=8192, help="most words (both sides) per encoder call")
    sv.add_argument("--max-queue", type=int, default=256, help="requests waiting beyond this get 503 + Retry-After")
    sv.add_argument("--max-request-bytes", type=int, default=1 << 20, help="larger request bodies get 413")
    sv.add_argument("--max-pairs", type=int, default=256, help="most sentence pairs in one request (more: 422)")
    sv.add_argument("--max-sentence-words", type=int, default=500, help="most words in one sentence (more: 422)")
    sv.add_argument("--max-word-chars", type=int, default=200, help="most characters in one word (more: 422)")
    sv.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS",
                    help="on SIGTERM, time to finish the requests in hand; those unfinished then get 503 + Retry-After")
    sv.add_argument("--api-key", default=None, metavar="KEY",
                    help="require 'Authorization: Bearer KEY' on every endpoint but /healthz and /readyz (default: "
                         "$XFAST_API_KEY, else none; prefer the variable: other users can see a command line)")
    sv.add_argument("--allow-unauthenticated", action="store_true",
                    help="serve an address other than loopback without an API key (your own access control guards it)")
    sv.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                    help="uvicorn's log level")
    sv.set_defaults(func=_serve)

    for name, helptext in [
        ("project", "project labels from a labeled side onto receiving sides"),
        ("translate-test", "translate-test pipeline (src2tgt / tgt2tgt) with NLLB and English NER"),
        ("translate-train", "translate labeled English data and project its labels"),
        ("model-transfer", "apply the NER model to the target words directly"),
    ]:
        sp = sub.add_parser(name, help=helptext)
        try:
            from importlib import import_module

            import_module(f"xfast.pipelines.{_MODULES[name]}").add_arguments(sp)
        except ImportError:
            sp.description = f"{helptext} (not available in this build)"
        sp.set_defaults(func=_pipeline(name))
    for sp in _leaf_parsers(p):
        sp.formatter_class = _HelpFormatter
        sp.set_defaults(parser_=sp)  # a usage error found after parsing names its subcommand
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        getattr(args, "parser_", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with _silenced(getattr(args, "quiet", False)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except XfastError as err:
        print(f"xfast: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file operation no stage turned into an XfastError
        where = f"{err.filename}: " if err.filename else ""
        print(f"xfast: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xfast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
