"""The built-in health checks: disk, memory, the exporter, the dead-letter queue, breakers.

They are non-critical by default: a full disk or an open breaker degrades the
service's health without taking it out of a load balancer's rotation, which
is the caller's decision (register them again with ``critical=True``).
The other otelprod modules are imported inside the checks, so monitoring
keeps working when one of them is unavailable; the export status comes from
whoever installed the telemetry pipeline (``otelprod.init()`` hands it to
``monitoring_system.start()``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from otelprod import semconv
from otelprod.monitoring._model import HealthCheckResult, HealthStatus

Check = Callable[[], HealthCheckResult]
#: the exporter's state in the JSON form of ``otelprod._pipeline.status.ExportStatus``
ExportStatusSource = Callable[[], Mapping[str, Any]]


def export_not_initialized() -> Mapping[str, Any]:
    """The export status before ``otelprod.init()`` (and after ``shutdown()``)."""
    return {"enabled": False, "mode": "not_initialized"}


def _fraction(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{key}: expected a fraction in (0, 1], got {value!r}")
    return float(value)


def _thresholds(degraded_at: Any, unhealthy_at: Any) -> tuple[float, float]:
    degraded, unhealthy = _fraction("degraded_at", degraded_at), _fraction(
        "unhealthy_at", unhealthy_at)
    if degraded > unhealthy:
        raise ValueError(f"degraded_at: expected a fraction <= unhealthy_at ({unhealthy!r}), "
                         f"got {degraded!r}")
    return degraded, unhealthy


def disk_space_check(path: str = "/", degraded_at: float = 0.90,
                     unhealthy_at: float = 0.95) -> Check:
    """Used fraction of the filesystem holding ``path``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"path: expected a directory path (str or os.PathLike), got "
                        f"{type(path).__name__} {path!r}")
    degraded_at, unhealthy_at = _thresholds(degraded_at, unhealthy_at)

    def check() -> HealthCheckResult:
        usage = psutil.disk_usage(path)
        used = usage.used / usage.total if usage.total else 0.0
        status = (HealthStatus.UNHEALTHY if used >= unhealthy_at else
                  HealthStatus.DEGRADED if used >= degraded_at else HealthStatus.HEALTHY)
        return HealthCheckResult(
            "disk_space", status, f"{used:.1%} of {path} used, {usage.free / 2**30:.1f} GiB free",
            metadata={"path": path, "used_fraction": round(used, 4), "free_bytes": usage.free,
                      "degraded_at": degraded_at, "unhealthy_at": unhealthy_at})

    return check


def memory_check(degraded_at: float = 0.90, unhealthy_at: float = 0.95) -> Check:
    """Fraction of system memory not available."""
    degraded_at, unhealthy_at = _thresholds(degraded_at, unhealthy_at)

    def check() -> HealthCheckResult:
        memory = psutil.virtual_memory()
        used = 1 - memory.available / memory.total if memory.total else 0.0
        status = (HealthStatus.UNHEALTHY if used >= unhealthy_at else
                  HealthStatus.DEGRADED if used >= degraded_at else HealthStatus.HEALTHY)
        return HealthCheckResult(
            "memory", status, f"{used:.1%} of memory in use",
            metadata={"used_fraction": round(used, 4), "available_bytes": memory.available,
                      "degraded_at": degraded_at, "unhealthy_at": unhealthy_at})

    return check


def exporter_check(status_fn: ExportStatusSource = export_not_initialized) -> Check:
    """Is the collector taking our telemetry?

    Healthy when the last exports succeeded or export is off; degraded while
    telemetry goes to the disk spool; unhealthy when telemetry was dropped
    since the previous run; unknown before the first export attempt.
    """
    last_dropped: list[int] = []

    def check() -> HealthCheckResult:
        status = status_fn()
        dropped = int(status.get("dropped") or 0)
        newly_dropped = dropped - last_dropped[0] if last_dropped else dropped
        last_dropped[:] = [dropped]
        metadata: dict[str, Any] = {
            k: status.get(k) for k in ("enabled", "mode", "endpoint", "protocol", "connected",
                                       "spooling", "spool_bytes", "dropped", "failures")
            if k in status}
        if not status.get("enabled"):
            return HealthCheckResult("exporter", HealthStatus.HEALTHY,
                                     f"telemetry export is off ({status.get('mode', 'disabled')})",
                                     metadata=metadata)
        if newly_dropped > 0:
            return HealthCheckResult("exporter", HealthStatus.UNHEALTHY,
                                     f"{newly_dropped} telemetry item(s) dropped since the last "
                                     "check", metadata=metadata)
        if status.get("spooling"):
            return HealthCheckResult(
                "exporter", HealthStatus.DEGRADED,
                f"collector unreachable: spooling to disk ({status.get('spool_bytes', 0)} bytes)",
                metadata=metadata)
        connected = status.get("connected")
        if connected is True:
            return HealthCheckResult("exporter", HealthStatus.HEALTHY,
                                     "the collector accepts telemetry", metadata=metadata)
        if connected is False:
            return HealthCheckResult("exporter", HealthStatus.DEGRADED,
                                     "the last export to the collector failed",
                                     metadata=metadata)
        return HealthCheckResult("exporter", HealthStatus.UNKNOWN,
                                 "no export attempted yet", metadata=metadata)

    return check


def dead_letter_check(degraded_at: int = 100) -> Check:
    """Depth of the dead-letter queue: degraded from ``degraded_at`` items on."""
    if isinstance(degraded_at, bool) or not isinstance(degraded_at, int) or degraded_at < 1:
        raise ValueError(f"degraded_at: expected an int >= 1, got {degraded_at!r}")

    def check() -> HealthCheckResult:
        from otelprod.error_handling import dead_letter_queue

        size = dead_letter_queue.count()
        status = HealthStatus.DEGRADED if size >= degraded_at else HealthStatus.HEALTHY
        return HealthCheckResult("dead_letter_queue", status,
                                 f"{size} failed operation(s) waiting for replay",
                                 metadata={"size": size, "degraded_at": degraded_at})

    return check


def breakers_check() -> Check:
    """Degraded while any circuit breaker is open."""

    def check() -> HealthCheckResult:
        from otelprod.error_handling import get_circuit_breakers

        states = {name: b.state for name, b in get_circuit_breakers().items()}
        open_ = sorted(n for n, s in states.items() if s == semconv.CircuitBreakerState.OPEN)
        half = sorted(n for n, s in states.items()
                      if s == semconv.CircuitBreakerState.HALF_OPEN)
        if open_:
            return HealthCheckResult("circuit_breakers", HealthStatus.DEGRADED,
                                     f"open: {', '.join(open_)}",
                                     metadata={"states": states, "open": open_})
        message = (f"{len(states)} breaker(s), none open"
                   + (f"; half-open: {', '.join(half)}" if half else ""))
        return HealthCheckResult("circuit_breakers", HealthStatus.HEALTHY, message,
                                 metadata={"states": states, "open": []})

    return check


def builtin_checks(export_status: ExportStatusSource) -> dict[str, Check]:
    """The checks ``monitoring_system.start()`` registers, by name."""
    return {"disk_space": disk_space_check(), "memory": memory_check(),
            "exporter": exporter_check(export_status), "dead_letter_queue": dead_letter_check(),
            "circuit_breakers": breakers_check()}
