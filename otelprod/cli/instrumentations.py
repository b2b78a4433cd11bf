"""``otelprod instrumentations``: what is traced here, and what is missing (offline).

Two lists, from the installed distributions only (no network, nothing imported
but package metadata):

* each installed OpenTelemetry instrumentation and what ``init()`` makes of it
  here: active, disabled, done by otelprod, library absent, version conflict;
* each installed library that has a contrib instrumentation package which is
  not installed, with the pip command that adds them. The library ->
  instrumentation mapping is the installed ``opentelemetry-instrumentation``'s
  own (``opentelemetry.instrumentation.bootstrap_gen``, the table
  ``opentelemetry-bootstrap -a requirements`` uses), so its pins match the
  installed instrumentation release.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
from dataclasses import asdict
from typing import Any


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _otelprod_extras() -> dict[str, str]:
    """instrumentation package -> the otelprod extra that installs it (from our metadata)."""
    extras: dict[str, str] = {}
    for requirement in importlib.metadata.requires("otelprod") or []:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+).*;\s*extra\s*==\s*['\"]([\w\-]+)['\"]",
                         requirement)
        if match and match.group(1).startswith("opentelemetry-instrumentation-"):
            extras.setdefault(match.group(1).lower(), match.group(2))
    return extras


def missing_instrumentations() -> list[dict[str, Any]]:
    """Installed libraries whose instrumentation package is not installed."""
    from opentelemetry.instrumentation.bootstrap_gen import default_instrumentations, libraries
    from packaging.requirements import Requirement

    from otelprod._pipeline.instrumentation import OWN

    own = {name.replace("_", "-") for name in OWN}
    extras = _otelprod_extras()
    rows: dict[str, dict[str, Any]] = {}
    candidates = [(None, spec) for spec in default_instrumentations] + [
        (entry["library"], entry["instrumentation"]) for entry in libraries]
    for library, spec in candidates:
        instrumentation = Requirement(spec)
        package = instrumentation.name.lower()
        if package.removeprefix("opentelemetry-instrumentation-") in own \
                or _installed_version(package) is not None:
            continue
        found = "standard library"
        if library is not None:
            wanted = Requirement(library)
            version = _installed_version(wanted.name)
            if version is None or not wanted.specifier.contains(version, prereleases=True):
                continue
            found = f"{wanted.name} {version}"
        row = rows.setdefault(package, {"package": package, "requirement": spec,
                                        "libraries": [], "extra": extras.get(package)})
        row["libraries"].append(found)
    return sorted(rows.values(), key=lambda row: row["package"])


def report(settings: Any) -> dict[str, Any]:
    from otelprod._pipeline.instrumentation import survey

    return {"installed": [asdict(i) for i in survey(settings)],
            "missing": missing_instrumentations()}


def _print(data: dict[str, Any]) -> None:
    installed = data["installed"]
    print("Installed instrumentations (what otelprod.init() does with each here)")
    if not installed:
        print("  none")
    for row in installed:
        reason = f"  {row['reason']}" if row["reason"] else ""
        print(f"  {row['name']:<18} {row['version']:<10} {row['state']}{reason}")
    missing = data["missing"]
    print("\nInstalled libraries whose instrumentation is not installed")
    if not missing:
        print("  none: every installed library that contrib instruments is instrumented")
        return
    for row in missing:
        extra = f"  (otelprod[{row['extra']}])" if row["extra"] else ""
        print(f"  {', '.join(row['libraries']):<28} {row['requirement']}{extra}")
    print("\nTo add them:\n  pip install "
          + " ".join(f"'{row['requirement']}'" for row in missing))


def cmd_instrumentations(args: argparse.Namespace) -> int:
    from otelprod._pipeline.settings import load_settings

    data = report(load_settings())
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print(data)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "instrumentations", help="list the active instrumentations and the libraries whose "
                                 "instrumentation is not installed (offline)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=cmd_instrumentations)
