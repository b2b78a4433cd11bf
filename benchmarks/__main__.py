"""``python -m benchmarks [--quick] [name ...]``: every benchmark, one table.

Each ``benchmarks/bench_*.py`` module runs in its own interpreter (a process
has one global tracer provider, and one module's leftovers must not tilt
another's figures) and hands back its rows as JSON. Every row is a ratio
against an anchor measured in the same run; the header says on what machine
and with which versions. A module that fails is reported in the table and
the run goes on; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks._harness import Result, print_table

HERE = Path(__file__).resolve().parent
PACKAGES = ("otelprod", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc",
            "grpcio", "protobuf", "tenacity", "pybreaker", "structlog", "limits")
_CHILD = """
import json, sys
from dataclasses import asdict
import importlib
module = importlib.import_module("benchmarks." + sys.argv[1])
rows = module.run(quick=sys.argv[2] == "1")
print("\\n" + json.dumps([asdict(r) for r in rows]))
"""


def modules() -> list[str]:
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def machine() -> list[str]:
    load = ""
    if hasattr(os, "getloadavg"):
        load = " (load average {:.2f} {:.2f} {:.2f})".format(*os.getloadavg())
    return [
        f"machine: {cpu_model()}, {os.cpu_count()} cores{load}, {platform.system()} "
        f"{platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}",
        f"versions: {versions()}",
    ]


def run_module(name: str, quick: bool, timeout: float) -> tuple[list[Result], str | None]:
    """The module's rows, or an error message."""
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, name, "1" if quick else "0"],
                              cwd=HERE.parent, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [], f"failed (exit {done.returncode}): {tail}"
    try:
        return [Result(**row) for row in json.loads(lines[-1])], None
    except (ValueError, TypeError) as exc:
        return [], f"bad output: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds each")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--timeout", type=float, default=600, help="per module, seconds")
    parser.add_argument("names", nargs="*", help="only these modules (e.g. bench_pipeline)")
    args = parser.parse_args(argv)
    names = [n if n.startswith("bench_") else f"bench_{n}" for n in args.names] or modules()
    unknown = sorted(set(names) - set(modules()))
    if unknown:
        parser.error(f"no such benchmark module: {', '.join(unknown)} "
                     f"(known: {', '.join(modules())})")
    rows: list[Result] = []
    failures: list[str] = []
    started = time.monotonic()
    for name in names:
        print(f"... {name}", file=sys.stderr, flush=True)
        got, error = run_module(name, args.quick, args.timeout)
        rows.extend(got)
        if error is not None:
            failures.append(name)
            rows.append(Result(f"{name}: {error}"[:52], "", float("nan"), "", float("nan"),
                               note=error))
    print()
    for line in machine():
        print(line)
    print(f"mode: {'quick' if args.quick else 'full'}, {len(names)} modules, "
          f"{time.monotonic() - started:.0f} s\n")
    print_table(rows)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], default=str))
    if failures:
        print(f"\nfailed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
