"""``otelprod run -- <command>``: trace a program without changing its code.

Like ``opentelemetry-instrument`` (and ``logfire run``): the command runs with
OpenTelemetry's auto-instrumentation bootstrap first on ``PYTHONPATH`` (its
``sitecustomize`` runs in every Python process the command starts, worker
processes included), with otelprod as the distro and the configurator
(:mod:`otelprod.distro`). So otelprod starts before the program's code, from
the same ``OTELPROD_*`` and ``OTEL_*`` variables ``init()`` reads, and the
installed instrumentations are active before the program imports its
libraries. ``otelprod run -- uvicorn app:app``, ``otelprod run -- gunicorn -w 4
app:app``, ``otelprod run -- python manage.py runserver``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any


def child_environment(environ: Mapping[str, str], cwd: str) -> dict[str, str]:
    """The command's environment: otelprod as distro and configurator, bootstrap on the path."""
    from opentelemetry.instrumentation import auto_instrumentation

    from otelprod.distro import NAME

    env = dict(environ)
    env.setdefault("OTEL_PYTHON_DISTRO", NAME)
    env.setdefault("OTEL_PYTHON_CONFIGURATOR", NAME)
    bootstrap = os.path.dirname(os.path.abspath(auto_instrumentation.__file__))
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != bootstrap]
    if cwd not in path:  # the program's own modules, as when it is run from here
        path.insert(0, cwd)
    env["PYTHONPATH"] = os.pathsep.join([bootstrap, *path])
    return env


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("otelprod run: give the command to run, e.g. otelprod run -- uvicorn app:app",
              file=sys.stderr)
        return 2
    executable = shutil.which(command[0])
    if executable is None:
        print(f"otelprod run: command not found: {command[0]}", file=sys.stderr)
        return 127
    env = child_environment(os.environ, os.getcwd())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, command, env)
    return 0  # not reached: the command replaced this process


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run a command with otelprod and the installed instrumentations active "
                    "(otelprod run -- uvicorn app:app)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the command and its arguments, after --")
    parser.set_defaults(func=cmd_run)
