"""``monitoring_system``: health checks, metrics, system metrics and alerts in one object.

It works as soon as it is imported (the seed's examples need no ``init()``);
``start()``, which ``otelprod.init()`` calls, adds what runs in the background
or reaches into other modules: the built-in checks and their scheduler, the
system metrics, and the alerts raised by breakers and CRITICAL errors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from otelprod import _telemetry, semconv
from otelprod.monitoring import _builtin
from otelprod.monitoring._alerts import AlertManager
from otelprod.monitoring._builtin import ExportStatusSource, export_not_initialized
from otelprod.monitoring._health import HealthChecker
from otelprod.monitoring._metrics_facade import MetricsCollector
from otelprod.monitoring._model import AlertSeverity, HealthCheckResult, HealthStatus
from otelprod.monitoring._report import build_report
from otelprod.monitoring._system_metrics import SystemMetrics

if TYPE_CHECKING:
    from otelprod.error_handling import BreakerTransition

_log = logging.getLogger("otelprod.monitoring")

#: interval of the built-in checks (they are cheap, but there is no hurry either)
BUILTIN_INTERVAL = 30.0


class MonitoringSystem:
    def __init__(self) -> None:
        self.health_checker = HealthChecker()
        self.metrics = MetricsCollector()
        self.alert_manager = AlertManager()
        self.system_metrics = SystemMetrics()
        self._lock = threading.Lock()
        self._started = False
        self._wired: list[tuple[Any, str, Any]] = []  # (target, remove method, listener)
        self._export_status: ExportStatusSource = export_not_initialized
        self.health_checker.add_status_listener(self._on_health_change)

    @property
    def started(self) -> bool:
        return self._started

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, *, system_metrics: bool = True, builtin_checks: bool = True,
              background_checks: bool = True,
              export_status: ExportStatusSource | None = None) -> None:
        """Start the background parts; idempotent (a second call changes nothing).

        ``export_status`` tells the exporter check and the status report how
        the telemetry export is going (``otelprod.init()`` passes its own).
        """
        for key, value in (("system_metrics", system_metrics), ("builtin_checks", builtin_checks),
                           ("background_checks", background_checks)):
            if not isinstance(value, bool):
                raise TypeError(f"{key}: expected True or False, got {type(value).__name__} "
                                f"{value!r}")
        if export_status is not None and not callable(export_status):
            raise TypeError(f"export_status: expected a callable() -> mapping or None, got "
                            f"{type(export_status).__name__} {export_status!r}")
        with self._lock:
            if self._started:
                return
            self._started = True
            if export_status is not None:
                self._export_status = export_status
        if builtin_checks:
            for name, check in _builtin.builtin_checks(self.export_status).items():
                if not self.health_checker.has_check(name):
                    self.health_checker.register_check(name, check, critical=False,
                                                       timeout=5.0, interval=BUILTIN_INTERVAL)
        self._wire_error_handling()
        if system_metrics:
            try:
                self.system_metrics.start()
            except Exception:
                _log.warning("system metrics could not start", exc_info=True)
        if background_checks:
            self.health_checker.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the background parts and send what notifiers have queued (within ``timeout``)."""
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not 0 <= timeout < float("inf"):
            raise ValueError(f"timeout: expected a finite number of seconds >= 0, got "
                             f"{type(timeout).__name__} {timeout!r}")
        with self._lock:
            if not self._started:
                return
            self._started = False
            wired, self._wired = self._wired, []
            self._export_status = export_not_initialized
        for target, method, listener in wired:
            try:
                getattr(target, method)(listener)
            except Exception:
                pass
        self.health_checker.stop(min(timeout, 1.0))
        self.system_metrics.stop()
        for notifier in self.alert_manager.notifiers:
            flush = getattr(notifier, "flush", None)
            if callable(flush):
                try:
                    flush(timeout)
                except Exception:
                    pass

    def _wire_error_handling(self) -> None:
        try:
            from otelprod import error_handling
        except Exception:
            _log.warning("otelprod.error_handling is unavailable: no alerts for breakers and "
                         "critical errors", exc_info=True)
            return
        handler = error_handling.error_handler
        handler.add_critical_listener(self._on_critical_error)
        error_handling.add_breaker_state_listener(self._on_breaker_change)
        self._wired = [(handler, "remove_critical_listener", self._on_critical_error),
                       (error_handling, "remove_breaker_state_listener",
                        self._on_breaker_change)]

    # --- automatic alerts -------------------------------------------------------------------
    def _on_health_change(self, name: str, previous: HealthStatus, result: HealthCheckResult,
                          critical: bool) -> None:
        key = f"health:{name}"
        if result.status in (HealthStatus.UNHEALTHY, HealthStatus.DEGRADED):
            unhealthy = result.status is HealthStatus.UNHEALTHY
            severity = (AlertSeverity.CRITICAL if unhealthy and critical else
                        AlertSeverity.ERROR if unhealthy else AlertSeverity.WARNING)
            self.alert_manager.raise_alert(
                f"Health check {name} is {result.status.value}", result.message or "",
                severity, name, {semconv.HEALTH_CHECK_NAME: name}, dedup_key=key)
        elif result.status is HealthStatus.HEALTHY:
            self.alert_manager.resolve_by_key(key, "health check recovered")

    def _on_breaker_change(self, change: BreakerTransition) -> None:
        name = change.name
        key = f"circuitbreaker:{name}"
        if change.new == semconv.CircuitBreakerState.OPEN:
            self.alert_manager.raise_alert(
                f"Circuit breaker {name} is open",
                f"{change.previous} -> open ({change.reason}): calls to {name} are rejected "
                "until it recovers",
                AlertSeverity.ERROR, name, {semconv.CIRCUITBREAKER_NAME: name}, dedup_key=key)
        elif change.new == semconv.CircuitBreakerState.CLOSED:
            self.alert_manager.resolve_by_key(key, "circuit breaker closed")

    def _on_critical_error(self, error: BaseException, context: str, severity: Any,
                           additional_info: Mapping[str, Any] | None) -> None:
        error_type = type(error).__qualname__
        self.alert_manager.raise_alert(
            f"Critical error: {error_type}", _telemetry.truncate(str(error), 300),
            AlertSeverity.CRITICAL, context or "application", {semconv.ERROR_TYPE: error_type})

    # --- reports -------------------------------------------------------------------------
    def export_status(self) -> Mapping[str, Any]:
        """How the telemetry export is going (``not_initialized`` until started with one)."""
        return self._export_status()

    def get_status_report(self) -> dict[str, Any]:
        """Health (checks run now), alerts, system figures, breakers, rate limiters, the
        dead-letter queue and the exporter's state: JSON-serialisable and scrubbed."""
        return build_report(self)

    async def aget_status_report(self) -> dict[str, Any]:
        """The same, for async code: async checks run on the caller's event loop."""
        import asyncio

        results = await self.health_checker.arun_all()
        return await asyncio.to_thread(build_report, self, results)

    def get_overall_status(self) -> HealthStatus:
        return self.health_checker.get_overall_status()


monitoring_system = MonitoringSystem()
