"""Activating the OpenTelemetry instrumentations installed beside the application.

Modelled on ``opentelemetry-instrument`` (``opentelemetry.instrumentation.
auto_instrumentation._load_instrumentors``): every ``opentelemetry_instrumentor``
entry point is a contrib instrumentation package; it is activated unless
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names it (``*`` for all), otelprod's
``instrument`` setting leaves it out, or the library it instruments is absent
or at a version it does not support (contrib's own
``get_dist_dependency_conflicts`` decides). Each skip says why in one INFO
line; an instrumentor that fails is a WARNING, never an exception, and the
others still load. (They are said on a ``otelprod._pipeline`` logger: an
application's own handlers show them, they never enter the OTLP log stream,
and the warnings reach stderr through ``_pipeline/stderr.py``.)

Two instrumentations are otelprod's own business and never loaded here:
``logging`` (its handler on the root logger would be a second bridge, exporting
every record twice) and ``system_metrics`` (otelprod reports system and process
metrics itself).

Before anything loads, the environment is prepared the way a distro does it
(:mod:`otelprod._pipeline.http_conventions`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otelprod._pipeline.http_conventions import (
    ASGI_FRAMEWORKS,
    SERVER_FRAMEWORKS,
    prepare_environment,
    server_excluded_urls,
)
from otelprod._pipeline.settings import Settings

_log = logging.getLogger("otelprod._pipeline.instrumentation")

ENTRY_POINT_GROUP = "opentelemetry_instrumentor"
DISABLED_ENV = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"

#: instrumentations otelprod does itself, and why it never loads the contrib one
OWN = {
    "logging": "otelprod bridges logging itself (a second handler would export every record "
               "twice)",
    "system_metrics": "otelprod reports system and process metrics itself",
}

# States of one instrumentation, as init() leaves it and `otelprod instrumentations` shows it.
ACTIVE = "active"
DEFERRED = "deferred"  # loaded; activates when its framework is ready (Django's settings)
DISABLED = "disabled"
NOT_SELECTED = "not selected"
OTELPROD = "done by otelprod"
ABSENT = "library absent"
CONFLICT = "version conflict"
FAILED = "failed"


@dataclass(frozen=True)
class Instrumentation:
    """One installed instrumentation package and what became of it."""

    name: str  # the entry-point name: "fastapi", "aiohttp-client", ...
    distribution: str  # "opentelemetry-instrumentation-fastapi"
    version: str
    state: str
    reason: str = ""


# --- which instrumentations, and why not ---------------------------------------------------
def disabled_names(environ: Mapping[str, str] | None = None) -> set[str]:
    env = os.environ if environ is None else environ
    return {name.strip() for name in env.get(DISABLED_ENV, "").split(",") if name.strip()}


def selected_names(settings: Settings) -> set[str] | None:
    """None for every installed instrumentation, else the names ``instrument`` lists."""
    text = settings.instrument
    if text == "true":
        return None
    if text == "false":
        return set()
    return set(text.split(","))


def installed_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Every ``opentelemetry_instrumentor`` entry point, one per name (the first found)."""
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(entry_point.name, entry_point)
    return list(seen.values())


def _distribution(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str, Any]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return entry_point.value.split(":")[0], "", None
    return str(dist.metadata["Name"]), str(dist.version), dist


def screen(entry_point: importlib.metadata.EntryPoint, settings: Settings,
           environ: Mapping[str, str] | None = None) -> Instrumentation | None:
    """Why ``entry_point`` must not be activated, or None when it may be (no import)."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    name = entry_point.name
    dist_name, version, dist = _distribution(entry_point)

    def verdict(state: str, reason: str) -> Instrumentation:
        return Instrumentation(name, dist_name, version, state, reason)

    if name in OWN:
        return verdict(OTELPROD, OWN[name])
    disabled = disabled_names(environ)
    if "*" in disabled or name in disabled:
        return verdict(DISABLED, f"{DISABLED_ENV} disables it")
    selected = selected_names(settings)
    if selected is not None and name not in selected:
        return verdict(NOT_SELECTED, "not in the instrument setting (OTELPROD_INSTRUMENT)")
    if dist is not None:
        conflict = get_dist_dependency_conflicts(dist)
        if conflict is not None:
            installed = bool(conflict.found or conflict.found_any)
            reason = re.sub(r';\s*extra\s*==\s*"[^"]*"', "", str(conflict))
            return verdict(CONFLICT if installed else ABSENT, reason)
    return None


def survey(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Instrumentation]:
    """What init() would make of each installed instrumentation, without importing any."""
    out = []
    for entry_point in installed_entry_points():
        dist_name, version, _ = _distribution(entry_point)
        out.append(screen(entry_point, settings, environ)
                   or Instrumentation(entry_point.name, dist_name, version, ACTIVE))
    return sorted(out, key=lambda i: i.name)


# --- activating them ------------------------------------------------------------------------
def instrument_kwargs(name: str, settings: Settings) -> dict[str, Any]:
    """What otelprod passes to one instrumentor's ``instrument()``.

    Server frameworks get their excluded URLs explicitly: contrib reads the
    variables when its module is first imported, which may have been earlier.
    ASGI frameworks leave out the per-message send/receive spans.
    """
    framework_env = SERVER_FRAMEWORKS.get(name)
    if framework_env is None:
        return {}
    kwargs: dict[str, Any] = {"excluded_urls": server_excluded_urls(framework_env, settings)}
    if name in ASGI_FRAMEWORKS:
        kwargs["exclude_spans"] = ["receive", "send"]
    return kwargs


def activate_entry_point(entry_point: Any, settings: Settings,
                         **kwargs: Any) -> Instrumentation:
    """Load one instrumentor and instrument with it; never raises.

    Also what otelprod's distro does for each entry point under
    ``opentelemetry-instrument``, after its own screening.
    """
    from otelprod._pipeline import frameworks

    name = entry_point.name
    dist_name, version, _ = _distribution(entry_point)
    try:
        instrumentor_class = entry_point.load()
    except ModuleNotFoundError as exc:  # the library it instruments is not installed
        outcome = Instrumentation(name, dist_name, version, ABSENT, str(exc))
        _log.info("otelprod: not instrumenting %s: %s", name, exc)
        return outcome
    except Exception as exc:
        return _failed(name, dist_name, version, "loading", exc)
    try:
        instrumentor = instrumentor_class()
        if instrumentor.is_instrumented_by_opentelemetry:
            return Instrumentation(name, dist_name, version, ACTIVE, "instrumented already")
        arguments = {**instrument_kwargs(name, settings), **kwargs}
        if frameworks.defer(name, instrumentor, arguments):
            return Instrumentation(name, dist_name, version, DEFERRED,
                                   frameworks.DEFERRED_REASONS[name])
        instrumentor.instrument(**arguments)
        frameworks.after_instrumented(name, settings)
    except ModuleNotFoundError as exc:  # e.g. httpx's second entry point, for httpx2
        _log.info("otelprod: not instrumenting %s: %s", name, exc)
        return Instrumentation(name, dist_name, version, ABSENT, str(exc))
    except Exception as exc:
        return _failed(name, dist_name, version, "instrumenting with", exc)
    return Instrumentation(name, dist_name, version, ACTIVE)


def _failed(name: str, dist_name: str, version: str, doing: str,
            exc: BaseException) -> Instrumentation:
    # the name is part of the message template, so each failing instrumentation is
    # said on stderr (which says each template once a minute)
    _log.warning(f"otelprod: {doing} the {name} instrumentation failed; the service runs "
                 "without it: %r", exc, exc_info=exc)
    return Instrumentation(name, dist_name, version, FAILED, repr(exc))


def activate(settings: Settings) -> list[Instrumentation]:
    """Activate every installed instrumentation the settings allow; what became of each."""
    selected = selected_names(settings)
    if selected == set():
        return []
    prepare_environment(settings)
    outcomes = []
    for entry_point in installed_entry_points():
        screened = screen(entry_point, settings)
        if screened is None:
            outcomes.append(activate_entry_point(entry_point, settings, skip_dep_check=True))
            continue
        outcomes.append(screened)
        if screened.state in (ABSENT, CONFLICT):
            _log.info("otelprod: not instrumenting %s: %s", screened.name, screened.reason)
    _warn_unknown(selected, (o.name for o in outcomes))
    active = sorted(o.name for o in outcomes if o.state == ACTIVE)
    waiting = sorted(o.name for o in outcomes if o.state == DEFERRED)
    if active or waiting:
        _log.info("otelprod: instrumented %s%s", ", ".join(active) or "nothing yet",
                  f" (waiting for their framework: {', '.join(waiting)})" if waiting else "")
    return outcomes


def _warn_unknown(selected: set[str] | None, installed: Iterable[str]) -> None:
    if not selected:
        return
    names = set(installed)
    for name in sorted(selected - names):
        _log.warning(f"otelprod: instrument names {name!r}, but no instrumentation of that "
                     "name is installed (installed: %s); `otelprod instrumentations` "
                     "lists what to install", ", ".join(sorted(names)) or "none")


__all__ = ["ABSENT", "ACTIVE", "CONFLICT", "DEFERRED", "DISABLED", "FAILED", "NOT_SELECTED",
           "OTELPROD", "OWN", "Instrumentation", "activate", "activate_entry_point",
           "prepare_environment", "screen", "survey"]
