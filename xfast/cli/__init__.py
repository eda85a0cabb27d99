"""The ``xfast`` command line: one module per command, each a thin wrapper over a typed function.

A command module has ``NAME``, ``HELP``, optionally ``EPILOG``, ``add_arguments(parser)`` and
``run(args) -> int``; :data:`COMMANDS` lists them in the order ``xfast --help`` shows. Options
that several commands share are in :mod:`xfast.cli._args`.

Exit codes: 0 success, 1 a run that finished with failures, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

# torch, ONNX Runtime and CTranslate2 may share this process: make OpenMP threads wait
# passively before any of them is imported, or they spin against each other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from xfast import __version__  # noqa: E402
from xfast.cli import (bench_reference, compare, demo, evaluate, model_transfer, models, project,  # noqa: E402
                       serve, translate_test, translate_train)
from xfast.errors import XfastError  # noqa: E402

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS = (demo, evaluate, models, compare, bench_reference, serve, project, translate_test, translate_train,
            model_transfer)


@contextmanager
def _silenced(on: bool) -> Iterator[None]:
    """``--quiet``: only errors and the result; no notices about building models, no
    Hugging Face or transformers progress bars ("Loading weights"), no transformers messages
    below errors, no library warnings on the root logger, no Ray log lines (the Ray engine reads
    ``XFAST_QUIET``); all restored after."""
    if not on:
        yield
        return
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
    """The argument parser of every command."""
    p = _Parser(prog="xfast", description="High-throughput annotation projection for cross-lingual NER.")
    p.add_argument("--version", action="version", version=f"xfast {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sp = sub.add_parser(command.NAME, help=command.HELP, epilog=getattr(command, "EPILOG", None))
        command.add_arguments(sp)
        sp.set_defaults(func=command.run)
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
