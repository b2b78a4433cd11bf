"""otelprod's own settings: ``OTELPROD_*`` variables, overridden by ``init()`` keywords.

The standard ``OTEL_*`` variables are not read here: the SDK and its
exporters read them where they apply, so their semantics stay the SDK's.
Each setting is a declared key of :mod:`otelprod.config_manager`, so a bad
deployment gets one error listing every problem, each naming the variable
and the bad value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from otelprod.config_manager._environment import ENVIRONMENT_NAMES, normalize_environment
from otelprod.config_manager._schema import ConfigKey, ConfigSchema
from otelprod.errors import ConfigurationError
from otelprod.structured_logging import level_name

ENV_PREFIX = "OTELPROD_"
MiB = 1024 * 1024


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


def _lower(value: Any) -> Any:
    return str(value).strip().lower()


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
    ConfigKey("protocol", str, choices=("grpc", "http/protobuf", "http/json"), normalize=_lower,
              description="OTLP protocol (else OTEL_EXPORTER_OTLP_PROTOCOL)"),
    ConfigKey("health_port", int, min=0, max=65535, description="health endpoint port"),
    ConfigKey("health_host", str, default="0.0.0.0", description="health endpoint address"),
    ConfigKey("health_token", str, secret=True,
              description="bearer token for the detailed /health report"),
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
    ConfigKey("spool_max_bytes", int, default=256 * MiB, min=0, description="spool bound"),
    ConfigKey("spool_retry_initial", float, default=0.5, min=0, max=3600, exclusive_min=True,
              description="first delay (s) before re-probing a collector that is down"),
    ConfigKey("spool_retry_max", float, default=30.0, min=0, max=3600, exclusive_min=True,
              description="longest delay (s) between probes of a collector that is down"),
    ConfigKey("console", bool, description="print telemetry instead of exporting it"),
    ConfigKey("system_metrics", bool, default=True, description="system/process metrics"),
])


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
    for name in known:
        if overrides.get(name) is not None:
            values[name] = overrides[name]
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
