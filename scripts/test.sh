#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the checks and the tests.
#   bash scripts/test.sh                  # python3, into .venv
#   PYTHON=python3.12 bash scripts/test.sh [pytest args]   # another interpreter, into .venv-3.12
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
if [ -z "${VENV:-}" ]; then
    if [ -n "${PYTHON:-}" ]; then
        VENV=.venv-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    else
        VENV=.venv
    fi
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test,bench]"
echo "== $("$VENV/bin/python" --version) in $VENV"
# caches per environment: CI runs two Pythons at once in one checkout
export MYPY_CACHE_DIR="$VENV/.mypy_cache" RUFF_CACHE_DIR="$VENV/.ruff_cache"

"$VENV/bin/ruff" check otelprod tests benchmarks
"$VENV/bin/mypy"
# the pipeline, the compatibility modules and the fork registry are held to --strict
"$VENV/bin/mypy" --strict otelprod/_pipeline otelprod/_compat otelprod/_forks.py
# the layout: layers, no cycles, features on the OpenTelemetry API only (pyproject.toml)
"$VENV/bin/lint-imports" --cache-dir "$VENV/.import_linter_cache"
# pytest exits 5 when it collects no test: that must fail, and it does here.
"$VENV/bin/python" -m pytest -o cache_dir="$VENV/.pytest_cache" "$@"
