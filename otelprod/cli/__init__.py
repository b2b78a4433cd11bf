"""The ``otelprod`` command: ``run``, ``instrumentations``, ``demo``, ``doctor``, ``dlq``,
``spool``.

Each subcommand is a module of this package with ``register(subparsers)``;
the parsers it adds set ``func=callable(args) -> int``. The modules import
what they need inside their commands, so ``otelprod --help`` stays quick.
Everything a command prints is scrubbed (``_output``); a problem the user can
fix (a bad setting, a file that is not what it should be) is one line on
stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from otelprod.cli import demo, dlq, doctor, instrumentations, run, spool
from otelprod.cli._output import load_secrets, scrubbed_output
from otelprod.errors import OtelprodError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprod", description="The otelprod command: run, instrumentations, demo, "
                                     "doctor, dlq and spool.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (run, instrumentations, demo, doctor, dlq, spool):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    with scrubbed_output():
        load_secrets()
        args = build_parser().parse_args(argv)
        try:
            result: Any = args.func(args)
        except KeyboardInterrupt:
            return 130
        except (OtelprodError, sqlite3.DatabaseError, OSError) as exc:
            print(f"otelprod {args.command}: {exc}", file=sys.stderr)
            return 2
        except Exception:
            traceback.print_exc()  # scrubbed like everything else
            return 1
        return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
