"""The export checks of ``otelprod doctor``: one real export per signal.

Each check sends a real item (a test span, a metric point, a log record)
through the same exporters ``init()`` would build, so headers, TLS and
protocol are exercised exactly as in production.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otelprod._pipeline.exporters import build_otlp_exporters
from otelprod._pipeline.settings import Settings


def _check_traces(exporter: Any, resource: Resource) -> None:
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("otelprod.doctor").start_as_current_span("otelprod.doctor"):
        pass


def _check_metrics(exporter: Any, resource: Resource) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    provider.get_meter("otelprod.doctor").create_counter("otelprod.doctor.checks").add(1)
    provider.force_flush()


def _check_logs(exporter: Any, resource: Resource) -> None:
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    from opentelemetry._logs import LogRecord, SeverityNumber

    provider.get_logger("otelprod.doctor").emit(LogRecord(
        body="otelprod doctor check", severity_text="INFO",
        severity_number=SeverityNumber.INFO))


@dataclass(frozen=True)
class ExportCheck:
    """How one real export of one signal went."""

    signal: str
    protocol: str
    endpoint: str
    ok: bool
    error: str | None
    seconds: float


def check_exports(settings: Settings) -> list[ExportCheck]:
    """Export one item per signal through the exporters init() would build (no spool)."""
    exporters = build_otlp_exporters(settings, spool=False)  # a check must not spool
    resource = Resource.create({"service.name": settings.service_name or "otelprod-doctor"})
    checks = {"traces": _check_traces, "metrics": _check_metrics, "logs": _check_logs}
    results = []
    for signal, check in checks.items():
        exporter = getattr(exporters, signal)
        target = exporters.targets[signal]
        started = time.monotonic()
        try:
            check(exporter, resource)
        except Exception as exc:  # report, don't crash the doctor
            exporter.health.record(False, repr(exc))
        health = exporter.health
        results.append(ExportCheck(signal, target.protocol, target.describe(),
                                   health.last_ok is True, health.last_error,
                                   time.monotonic() - started))
    return results
