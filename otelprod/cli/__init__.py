"""The ``otelprod`` command: ``run``, ``instrumentations``, ``demo``, ``doctor``, ``dlq``,
``spool``.

Each subcommand is a module of this package with ``register(subparsers)``;
the parsers it adds set ``func=callable(args) -> int``. The modules import
what they need inside their commands, so ``otelprod --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from otelprod.cli import demo, dlq, doctor, instrumentations, run, spool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprod", description="The otelprod command: run, instrumentations, demo, "
                                     "doctor, dlq and spool.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (run, instrumentations, demo, doctor, dlq, spool):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: Any = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
