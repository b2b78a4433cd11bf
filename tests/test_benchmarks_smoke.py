"""The benchmarks keep working: ``python -m benchmarks --quick`` runs every module.

Only that they run and report is asserted; their figures are read, not gated
(timings on a shared machine are no test).
"""

from __future__ import annotations

import re
import subprocess
import sys

from benchmarks.__main__ import modules
from tests.conftest import REPO, python_env


def test_every_benchmark_module_runs_and_reports_rows() -> None:
    found = modules()
    assert len(found) >= 7, found
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick"], cwd=REPO,
                            env=python_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("benchmark ", 1)[1]
    rows = [line for line in table.splitlines()[1:] if line.strip()]
    assert len(rows) >= 30, table
    # every row carries a ratio against its anchor ("inf" where the anchor measured 0, as
    # libinjection detecting none of a small held-out part)
    assert all(re.search(r" (?:-?\d+\.\d\d|inf)x ", row) for row in rows), table
