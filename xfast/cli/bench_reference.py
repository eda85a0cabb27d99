"""``xfast bench-reference``: the paper's code (a local checkout) and xfast on the same inputs."""

from __future__ import annotations

import argparse

from xfast import benchref

NAME = "bench-reference"
HELP = "run the paper's code (a local checkout) and xfast on the same inputs, stage by stage: equal outputs and speed"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast bench-reference`` options."""
    benchref.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run ``xfast bench-reference``."""
    return benchref.main(args)
