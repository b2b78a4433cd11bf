"""The production system: every feature wired together behind one object.

``otelprod.init()`` builds one :class:`ProductionSystem` and starts it,
handing down what the features need from the telemetry pipeline: the service
name of the resource and the export status (the monitoring checks and the
status report show it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from otelprod import config_manager, error_handling, structured_logging
from otelprod._pipeline.settings import Settings
from otelprod._pipeline.status import ExportStatus
from otelprod.config_manager import Environment
from otelprod.monitoring import HealthServer, monitoring_system, serve_health
from otelprod.monitoring._report import finish, gather
from otelprod.rate_limiter import rate_limit_manager

_log = logging.getLogger("otelprod")


class ProductionSystem:
    """Holds the features init() started; ``get_system_status()`` reports on them all.

    Attributes the seed uses: ``obs_system`` (structured logging and request
    tracing), ``config``, ``monitoring``, ``error_handler``, ``rate_limits``.
    """

    def __init__(self, settings: Settings, config_overrides: dict[str, Any] | None = None, *,
                 service_name: str | None = None,
                 export_status: Callable[[], ExportStatus] = ExportStatus.not_initialized
                 ) -> None:
        self.settings = settings
        self.service_name = service_name or settings.service_name or "unknown_service"
        self._export_status = export_status
        self.config_overrides = dict(config_overrides or {})
        self.started_at = time.time()
        self.config = config_manager.get_config()
        self.obs_system = structured_logging.initialize_observability(
            settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or "otelprod")
        self.monitoring = monitoring_system
        self.error_handler = error_handling.error_handler
        self.rate_limits = rate_limit_manager
        self.health_server: HealthServer | None = None
        self._started = False

    def start(self) -> None:
        """Start every feature; each one that fails is logged and the rest still start."""
        if self._started:
            return
        self._started = True
        for step in (self._configure, self._start_logging, self._start_monitoring,
                     self._start_health_server):
            try:
                step()
            except Exception:
                _log.exception("otelprod: %s failed", step.__name__.strip("_"))

    def _configure(self) -> None:
        try:
            self.config.environment = Environment.parse(self.settings.environment)
        except Exception:
            pass  # a free-form deployment name ("demo", "eu-prod-2") keeps the config's own
        if self.config_overrides:
            self.config.update(self.config_overrides, source="init")

    def _start_logging(self) -> None:
        if self.settings.json_logs or self.settings.log_file:
            structured_logging.setup_json_logging(
                self.settings.log_level, self.settings.log_file,
                console=self.settings.json_logs)

    def _start_monitoring(self) -> None:
        self.monitoring.start(system_metrics=self.settings.system_metrics,
                              export_status=lambda: self._export_status().to_dict())

    def _start_health_server(self) -> None:
        if self.settings.health_port is not None:
            host, port = self.settings.health_host, self.settings.health_port
            try:
                self.health_server = serve_health(port, host, self.settings.health_token)
            except OSError as exc:  # e.g. the port is taken: the service runs on without it
                _log.warning("otelprod: the health server cannot listen on %s port %s (%s); "
                             "the service runs without health endpoints", host, port, exc)
                return
            _log.info("otelprod: health endpoints on %s", self.health_server.url)

    def stop(self) -> None:
        """Stop what start() started; logs are flushed last so nothing said is lost."""
        if not self._started:
            return
        self._started = False
        steps: list[Callable[[], Any]] = [self.monitoring.stop,
                                           structured_logging.flush_logging]
        if self.health_server is not None:
            steps.insert(0, self.health_server.stop)
        for step in steps:
            try:
                step()
            except Exception:
                _log.debug("otelprod: stopping %r failed", step, exc_info=True)

    def get_system_status(self) -> dict[str, Any]:
        """JSON-serialisable status of every feature, secrets scrubbed."""
        status: dict[str, Any] = {
            "service": self.service_name,
            "environment": self.settings.environment,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
        }
        status.update(gather({
            "telemetry": lambda: self._export_status().to_dict(),
            "monitoring": self.monitoring.get_status_report,
            "error_handling": error_handling.status_report,
            "rate_limiting": self.rate_limits.get_all_stats,
            "config": config_manager.status_report,
            "performance": self.obs_system.get_performance_report,
        }))
        return finish(status)
