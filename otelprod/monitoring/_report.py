"""Status reports: everything monitoring knows, as one JSON-serialisable dict.

Every status report of otelprod (this one, and the whole system's of
``ProductionSystem.get_system_status()``) is made here the same way: each
section is gathered on its own (:func:`gather`), so one failing part (Redis
down behind a breaker, a module mid-upgrade) leaves a hole with the reason in
it rather than no report at all; the finished report (:func:`finish`) is
valid JSON and goes through the scrubber: it is meant to be served over HTTP.
"""

from __future__ import annotations

import datetime as _dt
import enum
import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from otelprod import _telemetry
from otelprod._scrub import scrubber
from otelprod.monitoring._model import HealthCheckResult, HealthStatus, iso, utcnow

if TYPE_CHECKING:
    from otelprod.monitoring._alerts import AlertManager
    from otelprod.monitoring._health import HealthChecker
    from otelprod.monitoring._metrics_facade import MetricsCollector
    from otelprod.monitoring._system_metrics import SystemMetrics

_log = logging.getLogger("otelprod.monitoring")


def jsonable(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that ``json.dumps`` takes and that is valid JSON (no NaN)."""
    if depth > 32:
        return "…"
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, _dt.datetime):
        return iso(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return jsonable(to_dict(), depth + 1)
        except Exception:
            pass
    return _telemetry.truncate(value, 200)


def _section(name: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        _log.debug("status report section %s failed", name, exc_info=True)
        return {"error": f"{type(exc).__name__}: {_telemetry.truncate(str(exc), 200)}"}


def gather(sections: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each section's value, or ``{"error": ...}`` for a section that raised."""
    return {name: _section(name, fn) for name, fn in sections.items()}


def finish(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report as valid JSON (no NaN, enums as values), secrets scrubbed."""
    return scrubber.scrub_mapping(jsonable(report))


def _error_handling() -> dict[str, Any]:
    from otelprod import error_handling

    return error_handling.status_report()


def _rate_limiters() -> Any:
    from otelprod.rate_limiter import rate_limit_manager

    return rate_limit_manager.get_all_stats()


class Monitored(Protocol):
    """What the report reads (a ``MonitoringSystem``)."""

    health_checker: HealthChecker
    alert_manager: AlertManager
    system_metrics: SystemMetrics
    metrics: MetricsCollector

    def export_status(self) -> Mapping[str, Any]: ...


def build_report(system: Monitored,
                 results: Mapping[str, HealthCheckResult | None] | None = None
                 ) -> dict[str, Any]:
    """The report; ``results`` are health results already gathered (else checks run now)."""
    checker = system.health_checker
    if results is None:
        results = checker.run_all()
    results = {**{n: None for n in checker.check_names}, **dict(results)}
    overall = checker.overall_status(dict(results))
    failing = checker.failing_critical(dict(results))
    checks: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        entry: dict[str, Any] = (result.to_dict() if result is not None else
                 {"component": name, "status": HealthStatus.UNKNOWN.value,
                  "message": "not run yet"})
        entry["critical"] = checker.is_critical(name)
        checks[name] = entry
    errors = _section("error_handling", _error_handling)
    gathered = gather({"alerts": system.alert_manager.summary,
                       "system": system.system_metrics.snapshot,
                       "rate_limiters": _rate_limiters, "exporter": system.export_status})
    report: dict[str, Any] = {
        "overall_status": overall.value,
        "ready": not failing,
        "failing_critical_checks": failing,
        "timestamp": iso(utcnow()),
        "checks": checks,
        "alerts": gathered["alerts"],
        "system": gathered["system"],
        "circuit_breakers": errors.get("circuit_breakers", errors) if isinstance(
            errors, dict) else errors,
        "errors": errors.get("errors", errors) if isinstance(errors, dict) else errors,
        "dead_letter_queue": errors.get("dead_letter_queue", errors) if isinstance(
            errors, dict) else errors,
        "rate_limiters": gathered["rate_limiters"],
        "exporter": gathered["exporter"],
        "metrics": {"instruments": system.metrics.instruments()},
        "notifiers": [_section("notifier", n.stats) if hasattr(n, "stats") else repr(n)
                      for n in system.alert_manager.notifiers],
    }
    return finish(report)
