"""Every integration extra installs beside every other one.

Contrib instrumentation releases pin ``opentelemetry-instrumentation`` and the
semantic conventions exactly, and the package index does not carry every one
at the newest release; the extras' bounds must leave pip one release they all
have. pip resolves them all together here (``pip install --dry-run``: it
reads the package index, installs nothing; about 20 s), and the environment
the tests run in must be consistent (``pip check``, offline).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

NOT_INTEGRATIONS = {"test", "bench"}


def integration_requirements() -> tuple[list[str], list[str]]:
    """(every requirement of every integration extra, the extras' names), self-references
    expanded, with otelprod's own dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    names = sorted(set(extras) - NOT_INTEGRATIONS)

    def expand(requirement: str) -> list[str]:
        match = re.fullmatch(r"otelprod\[([\w,\-]+)\]", requirement)
        if match is None:
            return [requirement]
        return [r for extra in match.group(1).split(",") for r in extras_of(extra)]

    def extras_of(name: str) -> list[str]:
        return [r for requirement in extras[name] for r in expand(requirement)]

    requirements = list(project["dependencies"])
    for name in names:
        requirements.extend(extras_of(name))
    return sorted(set(requirements)), names


def test_every_extra_is_declared_with_open_bounds() -> None:
    requirements, names = integration_requirements()
    assert {"fastapi", "flask", "django", "requests", "httpx", "aiohttp", "sqlalchemy",
            "sqlite3", "psycopg", "redis", "web"} <= set(names)
    for requirement in requirements:
        if requirement.startswith("opentelemetry-instrumentation-"):
            assert re.fullmatch(r"[\w\-]+>=0\.\d+b\d+", requirement), requirement


def test_every_extra_resolves_together(tmp_path: Path) -> None:
    requirements, _ = integration_requirements()
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), *requirements],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    contrib = {name: version for name, version in resolved.items()
               if name.startswith("opentelemetry-instrumentation")}
    wanted = {r.split(">=")[0].lower() for r in requirements
              if r.startswith("opentelemetry-instrumentation-")}
    assert wanted <= set(contrib), wanted - set(contrib)
    # one contrib release for all (they pin each other exactly), and its conventions
    assert len(set(contrib.values())) == 1, contrib
    assert resolved["opentelemetry-semantic-conventions"] == next(iter(contrib.values()))


def test_the_test_environment_is_consistent() -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
