"""otelprod's own settings: ``OTELPROD_*`` variables, overridden by ``init()`` keywords.

The standard ``OTEL_*`` variables are not read here: the SDK and its
exporters read them where they apply, so their semantics stay the SDK's.
Each setting is a declared key of :mod:`otelprod.config_manager`, so a bad
deployment gets one error listing every problem, each naming the variable
and the bad value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from otelprod.config_manager._environment import ENVIRONMENT_NAMES, normalize_environment
from otelprod.config_manager._schema import ConfigKey, ConfigSchema, ConfigValueError, describe
from otelprod.errors import ConfigurationError
from otelprod.structured_logging import level_name

ENV_PREFIX = "OTELPROD_"
MiB = 1024 * 1024
#: the resource detectors otelprod runs unless told otherwise (see _pipeline/resource.py)
DEFAULT_RESOURCE_DETECTORS = "process,os,host,container,k8s,cloud"
#: detectors otelprod has itself (the rest are the SDK's entry points)
OWN_RESOURCE_DETECTORS = ("container", "k8s", "cloud")
ALIASES = {"kubernetes": "k8s"}
#: Kubernetes-style health probes: left out of traces unless OTELPROD_EXCLUDED_URLS says otherwise
PROBE_ROUTES = "/health,/health/live,/health/ready"


@dataclass(frozen=True)
class Settings:
    service_name: str | None = None
    service_version: str | None = None
    environment: str = "development"
    endpoint: str | None = None
    protocol: str | None = None
    health_port: int | None = None
    health_host: str = "0.0.0.0"
    health_token: str | None = None
    health_report_open: bool = False
    health_worker_timeout: float = 10.0
    secrets_dir: str | None = None
    shutdown_timeout: float = 5.0
    export_timeout: float = 5.0
    export_hang_timeout: float = 0.5
    batch_delay: float = 1.0
    sigterm_flush: bool = True
    json_logs: bool = False
    log_level: str = "INFO"
    log_file: str | None = None
    spool_dir: str | None = None
    spool_max_bytes: int = 256 * MiB
    spool_retry_initial: float = 0.5
    spool_retry_max: float = 30.0
    console: bool | None = None
    system_metrics: bool = True
    capture_uncaught: bool = True
    sample_rate: float = 1.0
    resource_detectors: str = DEFAULT_RESOURCE_DETECTORS
    instrument: str = "true"
    excluded_urls: str = PROBE_ROUTES
    server_access_logs: bool = False


def _lower(value: Any) -> Any:
    return str(value).strip().lower()


def entry_point_detectors() -> set[str]:
    """Names of the installed ``opentelemetry_resource_detector`` entry points (the SDK's
    ``process``, ``os``, ``host``, ``otel``, and those of installed detector packages)."""
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="opentelemetry_resource_detector")}


def _detector_names(value: Any) -> str:
    """``"Process, os,,kubernetes"`` -> ``"process,os,k8s"``; ``none`` or nothing: no detector."""
    names = [n.strip().lower() for n in str(value).split(",") if n.strip()]
    names = [ALIASES.get(n, n) for n in names if n != "none"]
    unknown = [n for n in names if n not in OWN_RESOURCE_DETECTORS]
    if unknown:
        known = set(OWN_RESOURCE_DETECTORS) | entry_point_detectors()
        unknown = [n for n in unknown if n not in known]
        if unknown:
            raise ConfigValueError(
                f"unknown resource detector {', '.join(map(repr, unknown))} (known: "
                f"{', '.join(sorted(known))}, none)")
    return ",".join(dict.fromkeys(names))


#: Every setting, declared once: type, range, choices.
SCHEMA = ConfigSchema([
    ConfigKey("service_name", str, description="service.name of the resource"),
    ConfigKey("service_version", str, description="service.version of the resource"),
    # Free-form like deployment.environment.name ("demo", "prod-eu"); the
    # usual names' aliases ("prod") are canonicalised.
    ConfigKey("environment", str, default="development", pattern=r"[A-Za-z0-9][\w.\-]{0,63}",
              normalize=normalize_environment,
              description=f"deployment.environment.name, e.g. {', '.join(ENVIRONMENT_NAMES)}"),
    ConfigKey("endpoint", str, description="OTLP endpoint (else OTEL_EXPORTER_OTLP_ENDPOINT)"),
    ConfigKey("protocol", str, choices=("grpc", "http/protobuf"), normalize=_lower,
              description="OTLP protocol (else OTEL_EXPORTER_OTLP_PROTOCOL)"),
    ConfigKey("health_port", int, min=0, max=65535, description="health endpoint port"),
    ConfigKey("health_host", str, default="0.0.0.0", description="health endpoint address"),
    ConfigKey("health_token", str, secret=True,
              description="bearer token for the detailed /health report"),
    ConfigKey("health_report_open", bool, default=False,
              description="serve the detailed /health report without a token on any address"),
    ConfigKey("health_worker_timeout", float, default=10.0, min=0, max=3600,
              exclusive_min=True, description="seconds a pre-fork worker may go without a "
              "heartbeat before it counts as hung"),
    ConfigKey("secrets_dir", str, description="directory of secret files, one per secret "
              "(default /run/secrets); each value, and every SECRET_* variable, is scrubbed"),
    ConfigKey("shutdown_timeout", float, default=5.0, min=0, max=3600, exclusive_min=True,
              description="seconds to flush at shutdown"),
    ConfigKey("export_timeout", float, default=5.0, min=0, max=3600, exclusive_min=True,
              description="seconds per export attempt"),
    ConfigKey("export_hang_timeout", float, default=0.5, min=0, max=3600, exclusive_min=True,
              description="seconds a live export may go unanswered before its batch goes to "
                          "the spool (the answer is still awaited up to export_timeout)"),
    ConfigKey("batch_delay", float, default=1.0, min=0, max=3600, exclusive_min=True,
              description="seconds spans and log records wait in memory before export: "
                          "what a SIGKILL can lose (OTEL_BSP/BLRP_SCHEDULE_DELAY win if set)"),
    ConfigKey("sigterm_flush", bool, default=True,
              description="flush telemetry on SIGTERM, then run the handler that was there"),
    ConfigKey("json_logs", bool, default=False, description="JSON lines on stdout"),
    ConfigKey("log_level", str, default="INFO", description="level of the logging bridge",
              choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
              normalize=lambda value: level_name(str(value))),
    ConfigKey("log_file", str, description="also write JSON lines to this file (rotated)"),
    ConfigKey("spool_dir", str, description="where unsent telemetry waits on disk"),
    ConfigKey("spool_max_bytes", int, default=256 * MiB, min=0,
              description="spool bound in bytes; 0 turns the spool off (what the collector "
              "does not take is then dropped, and counted)"),
    ConfigKey("spool_retry_initial", float, default=0.5, min=0, max=3600, exclusive_min=True,
              description="first delay (s) before re-probing a collector that is down"),
    ConfigKey("spool_retry_max", float, default=30.0, min=0, max=3600, exclusive_min=True,
              description="longest delay (s) between probes of a collector that is down"),
    ConfigKey("console", bool, description="print telemetry instead of exporting it"),
    ConfigKey("system_metrics", bool, default=True, description="system/process metrics"),
    ConfigKey("capture_uncaught", bool, default=True,
              description="report uncaught exceptions (main thread, threads, asyncio, unraisable)"),
    ConfigKey("sample_rate", float, default=1.0, min=0.0, max=1.0,
              description="share of new traces kept (parent-based ratio); "
                          "OTEL_TRACES_SAMPLER wins when set"),
    ConfigKey("resource_detectors", str, default=DEFAULT_RESOURCE_DETECTORS,
              normalize=_detector_names,
              description="comma-separated resource detectors: process, os, host, container, "
                          "k8s, cloud, any opentelemetry_resource_detector entry point; none"),
    ConfigKey("instrument", str, default="true", normalize=lambda value: instrument_text(value),
              description="activate the installed OpenTelemetry instrumentations: true, false "
                          "or a comma-separated list of names (fastapi,requests,...)"),
    ConfigKey("excluded_urls", str, default=PROBE_ROUTES,
              description="routes left out of server traces: paths (/health) or regexes, "
                          "comma-separated"),
    ConfigKey("server_access_logs", bool, default=False,
              description="also send the servers' access logs (uvicorn.access, gunicorn.access)"),
])


def instrument_text(value: Any) -> str:
    """``init(instrument=...)`` or ``OTELPROD_INSTRUMENT`` as text: "true", "false" or
    "name,name" (entry-point names, lower case). Raises ConfigValueError naming what is allowed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return "true" if _BOOL_WORDS[value.strip().lower()] else "false"
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, (list, tuple, set, frozenset)) or not all(
            isinstance(name, str) for name in names):
        raise ConfigValueError(f"expected true, false or a list of instrumentation names, "
                               f"got {describe(value)}")
    cleaned = sorted({name.strip().lower() for name in names if name.strip()})
    bad = [name for name in cleaned if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", name)]
    if bad:
        raise ConfigValueError(f"instrumentation names are like 'fastapi' or 'aiohttp-client', "
                               f"got {', '.join(repr(b) for b in bad)}")
    return ",".join(cleaned) if cleaned else "false"


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def env_var(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def load_settings(*, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``OTELPROD_*`` variables, with keyword ``overrides`` winning.

    An override of ``None`` means "not given" and leaves the variable (or the
    default) in force. Every problem, unknown keywords included, is reported
    at once in one :class:`ConfigurationError`.
    """
    env = os.environ if environ is None else environ
    known = [f.name for f in fields(Settings)]
    problems = [f"{k}: unknown setting (known: {', '.join(known)})"
                for k in sorted(set(overrides) - set(known))]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if overrides.get("instrument") is not None and not isinstance(overrides["instrument"], str):
        try:  # the one setting that also takes a bool or a list: text for the schema
            overrides = {**overrides, "instrument": instrument_text(overrides["instrument"])}
        except ConfigValueError as exc:
            problems.append(f"instrument (from keyword argument): {exc}")
            overrides = {k: v for k, v in overrides.items() if k != "instrument"}
    for name in known:
        if overrides.get(name) is not None:
            value = overrides[name]
            key = SCHEMA.get(name)
            if isinstance(value, os.PathLike):  # spool_dir=Path(...)
                value = os.fspath(value)
            if key is not None and key.type is str and not isinstance(value, str):
                # a variable is always text; a keyword of the wrong type is a mistake
                shown = "(hidden)" if key.secret else repr(value)
                problems.append(f"{name} (from keyword argument): expected a string, got "
                                f"{type(value).__name__} {shown}")
                continue
            values[name] = value
            origin[name] = "keyword argument"
        elif env_var(name) in env:
            raw = env[env_var(name)]
            key = SCHEMA.get(name)
            if raw.strip() == "" and key is not None and key.type is not str:
                continue  # an empty variable is an unset one
            values[name] = raw
            origin[name] = env_var(name)
    checked, schema_problems = SCHEMA.problems(
        values, where=lambda n: f"{n} (from {origin[n]})" if n in origin else n)
    problems.extend(schema_problems)
    if problems:
        raise ConfigurationError(problems)
    if checked.get("health_token"):
        from otelprod._scrub import scrubber

        scrubber.register_secret(checked["health_token"])
    return Settings(**checked)


def describe_settings() -> list[dict[str, Any]]:
    """Every setting with its variable, type, default and description (for the CLI)."""
    return [{"name": key.name, "env": env_var(key.name), "type": key.type.__name__,
             "default": key.default, "description": key.description} for key in SCHEMA]
