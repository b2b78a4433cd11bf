"""Monitoring and alerting: health checks, metrics, system metrics, alerts, health endpoints.

    from otelprod.monitoring import monitoring_system, HealthCheckResult, HealthStatus

    monitoring_system.health_checker.register_check("database", check_database)
    monitoring_system.metrics.increment("api_requests_total")
    monitoring_system.alert_manager.raise_alert("High Error Rate", "...",
                                                AlertSeverity.WARNING, "api_server")
    status = monitoring_system.get_status_report()

Everything is OpenTelemetry underneath: health results are the
``health.check.status`` gauge, the facade's metrics are OTel instruments,
alerts are log records and ``alerts.*`` metrics. ``otelprod.init()`` calls
``monitoring_system.start()`` for the background parts and serves the health
endpoints when given ``health_port``.
"""

from __future__ import annotations

from otelprod.monitoring._alerts import AlertManager, Notifier
from otelprod.monitoring._builtin import (
    breakers_check,
    dead_letter_check,
    disk_space_check,
    exporter_check,
    memory_check,
)
from otelprod.monitoring._endpoints import health_asgi_app, health_wsgi_app
from otelprod.monitoring._health import HealthChecker
from otelprod.monitoring._metrics_facade import MetricsCollector
from otelprod.monitoring._model import (
    Alert,
    AlertSeverity,
    AlertStatus,
    HealthCheckResult,
    HealthStatus,
)
from otelprod.monitoring._notifiers import WebhookNotifier, alertmanager_payload
from otelprod.monitoring._server import HealthServer, serve_health
from otelprod.monitoring._system import MonitoringSystem, monitoring_system
from otelprod.monitoring._system_metrics import SystemMetrics

__all__ = [
    "Alert",
    "AlertManager",
    "AlertSeverity",
    "AlertStatus",
    "HealthCheckResult",
    "HealthChecker",
    "HealthServer",
    "HealthStatus",
    "MetricsCollector",
    "MonitoringSystem",
    "Notifier",
    "SystemMetrics",
    "WebhookNotifier",
    "alertmanager_payload",
    "breakers_check",
    "dead_letter_check",
    "disk_space_check",
    "exporter_check",
    "health_asgi_app",
    "health_wsgi_app",
    "memory_check",
    "monitoring_system",
    "serve_health",
]
