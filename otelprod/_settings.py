"""otelprod's own settings: ``OTELPROD_*`` variables, overridden by ``init()`` keywords.

The standard ``OTEL_*`` variables are not read here: the SDK and its
exporters read them where they apply, so their semantics stay the SDK's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from otelprod.errors import ConfigurationError


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
    json_logs: bool = False
    log_level: str = "INFO"
    log_file: str | None = None
    spool_dir: str | None = None
    spool_max_bytes: int = 256 * 1024 * 1024
    console: bool | None = None
    system_metrics: bool = True


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, raw: Any, kind: type) -> Any:
    if raw is None or isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    if kind is bool and isinstance(raw, str):
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValueError(f"{name}: expected a boolean (true/false), got {raw!r}")
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}: expected {kind.__name__}, got {type(raw).__name__} {raw!r}"
        ) from None


def load_settings(**overrides: Any) -> Settings:
    """Settings from ``OTELPROD_*`` variables, with keyword ``overrides`` winning.

    Every problem is reported at once in one :class:`ConfigurationError`.
    """
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(overrides) - set(known))
    problems = [f"{k}: unknown setting (known: {', '.join(sorted(known))})" for k in unknown]
    values: dict[str, Any] = {}
    for name, field in known.items():
        kind = {"int": int, "float": float, "bool": bool, "str": str}[
            str(field.type).split("|")[0].strip()
        ]
        raw = overrides.get(name)
        if raw is None:
            raw = os.environ.get(f"OTELPROD_{name.upper()}")
        if raw is None:
            continue
        try:
            values[name] = _convert(name, raw, kind)
        except ValueError as exc:
            problems.append(str(exc))
    if values.get("health_port") is not None and not 0 <= values["health_port"] <= 65535:
        problems.append(f"health_port: must be within 0..65535, got {values['health_port']!r}")
    for name in ("shutdown_timeout", "export_timeout"):
        if name in values and values[name] <= 0:
            problems.append(f"{name}: must be > 0, got {values[name]!r}")
    if problems:
        raise ConfigurationError(problems)
    return Settings(**values)
