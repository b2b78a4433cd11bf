#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the checks and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else
        echo "redis-server is missing: install Debian's redis-server package" >&2
        exit 1
    fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,bench]"

.venv/bin/ruff check otelprod tests benchmarks
.venv/bin/mypy
# the pipeline, the compatibility modules and the fork registry are held to --strict
.venv/bin/mypy --strict otelprod/_pipeline otelprod/_compat otelprod/_forks.py
# the layout: layers, no cycles, features on the OpenTelemetry API only (pyproject.toml)
.venv/bin/lint-imports
# pytest exits 5 when it collects no test: that must fail, and it does here.
.venv/bin/python -m pytest "$@"
