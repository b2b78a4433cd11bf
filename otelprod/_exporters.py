"""Building the OTLP exporters of the three signals.

The SDK's exporters read the standard variables themselves (endpoint,
headers, certificates, compression, timeout); this module only decides the
protocol per signal, turns an explicit ``endpoint`` into per-signal URLs the
way the specification does, and wraps each exporter so that a forked worker
builds its own (gRPC channels and HTTP sessions must not cross a fork).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otelprod import semconv
from otelprod._settings import Settings
from otelprod.errors import ConfigurationError

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"
PROTOCOLS = (GRPC, HTTP_PROTOBUF)
_HTTP_PATHS = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}


@dataclass(frozen=True)
class Target:
    """Where one signal goes: the protocol and, when set explicitly, the endpoint."""

    signal: str
    protocol: str
    endpoint: str | None  # None: the exporter reads OTEL_EXPORTER_OTLP_* itself

    def describe(self) -> str:
        if self.endpoint:
            return self.endpoint
        env = os.environ
        specific = env.get(f"OTEL_EXPORTER_OTLP_{self.signal.upper()}_ENDPOINT")
        if specific:
            return specific
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or (
            "http://localhost:4317" if self.protocol == GRPC else "http://localhost:4318"
        )
        if self.protocol == GRPC:
            return base
        return base.rstrip("/") + "/" + _HTTP_PATHS[self.signal]


def resolve_targets(settings: Settings) -> dict[str, Target]:
    """The protocol and endpoint of each signal, per the OTLP exporter specification."""
    targets = {}
    for signal in semconv.Signal.ALL:
        protocol = (
            settings.protocol
            or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or HTTP_PROTOBUF
        ).strip().lower()
        if protocol not in PROTOCOLS:
            raise ConfigurationError(
                f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}"
                " (from the protocol argument or OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL)"
            )
        endpoint = settings.endpoint
        if endpoint and protocol == HTTP_PROTOBUF:
            endpoint = endpoint.rstrip("/") + "/" + _HTTP_PATHS[signal]
        targets[signal] = Target(signal, protocol, endpoint)
    return targets


def _new_exporter(target: Target, timeout: float) -> Any:
    kwargs: dict[str, Any] = {"timeout": timeout}
    if target.endpoint:
        kwargs["endpoint"] = target.endpoint
    if target.protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc import (
            _log_exporter as glog,
        )
        from opentelemetry.exporter.otlp.proto.grpc import (
            metric_exporter as gmetric,
        )
        from opentelemetry.exporter.otlp.proto.grpc import (
            trace_exporter as gtrace,
        )

        cls: Any = {"traces": gtrace.OTLPSpanExporter, "metrics": gmetric.OTLPMetricExporter,
                    "logs": glog.OTLPLogExporter}[target.signal]
    else:
        from opentelemetry.exporter.otlp.proto.http import (
            _log_exporter as hlog,
        )
        from opentelemetry.exporter.otlp.proto.http import (
            metric_exporter as hmetric,
        )
        from opentelemetry.exporter.otlp.proto.http import (
            trace_exporter as htrace,
        )

        cls = {"traces": htrace.OTLPSpanExporter, "metrics": hmetric.OTLPMetricExporter,
               "logs": hlog.OTLPLogExporter}[target.signal]
    return cls(**kwargs)


E = TypeVar("E")


class ExportHealth:
    """What the exporters of one signal have seen: the basis of ``export_status()``."""

    def __init__(self, signal: str) -> None:
        self.signal = signal
        self.exports = 0
        self.failures = 0
        self.last_ok: bool | None = None
        self.last_error: str | None = None
        self._attrs = {semconv.SIGNAL: signal}

    def record(self, ok: bool, error: str | None = None) -> None:
        self.exports += 1
        self.last_ok = ok
        if not ok:
            self.failures += 1
            self.last_error = error
            _failure_counter().add(1, self._attrs)

    def snapshot(self) -> dict[str, Any]:
        return {"exports": self.exports, "failures": self.failures,
                "connected": self.last_ok, "last_error": self.last_error}


_failures: Any = None


def _failure_counter() -> Any:
    global _failures
    if _failures is None:
        from otelprod._telemetry import meter

        _failures = meter.create_counter(
            semconv.METRIC_EXPORT_FAILURES, unit="{export}",
            description="Exports the collector did not accept, by signal.")
    return _failures


class _PerProcess(Generic[E]):
    """Holds one exporter per process, built on first use in that process."""

    def __init__(self, factory: Callable[[], E]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = -1
        self._exporter: E | None = None

    def get(self) -> E:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # the parent's exporter is abandoned, not shut down: its channel
                    # and threads belong to the parent process
                    self._lock = threading.Lock()
                    self._exporter = self._factory()
                    self._pid = os.getpid()
        assert self._exporter is not None
        return self._exporter

    def current(self) -> E | None:
        return self._exporter if self._pid == os.getpid() else None


class ForkSafeSpanExporter(SpanExporter):
    def __init__(self, factory: Callable[[], SpanExporter]) -> None:
        self._inner = _PerProcess(factory)
        self.health = ExportHealth("traces")

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        try:
            result = self._inner.get().export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch thread
            self.health.record(False, repr(exc))
            return SpanExportResult.FAILURE
        self.health.record(result is SpanExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        inner = self._inner.current()
        return inner.force_flush(timeout_millis) if inner else True

    def shutdown(self) -> None:
        inner = self._inner.current()
        if inner:
            inner.shutdown()


class ForkSafeLogExporter(LogRecordExporter):
    def __init__(self, factory: Callable[[], LogRecordExporter]) -> None:
        self._inner = _PerProcess(factory)
        self.health = ExportHealth("logs")

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        try:
            result = self._inner.get().export(batch)
        except Exception as exc:
            self.health.record(False, repr(exc))
            return LogRecordExportResult.FAILURE
        self.health.record(result is LogRecordExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        inner = self._inner.current()
        return bool(inner.force_flush(timeout_millis)) if inner else True

    def shutdown(self) -> None:
        inner = self._inner.current()
        if inner:
            inner.shutdown()


class ForkSafeMetricExporter(MetricExporter):
    def __init__(self, factory: Callable[[], MetricExporter]) -> None:
        self._inner = _PerProcess(factory)
        probe = factory()  # temporality and aggregation preferences come from the real one
        super().__init__(
            preferred_temporality=probe._preferred_temporality,
            preferred_aggregation=probe._preferred_aggregation,
        )
        probe.shutdown()
        self.health = ExportHealth("metrics")

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        try:
            result = self._inner.get().export(metrics_data, timeout_millis=timeout_millis,
                                              **kwargs)
        except Exception as exc:
            self.health.record(False, repr(exc))
            return MetricExportResult.FAILURE
        self.health.record(result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        inner = self._inner.current()
        return inner.force_flush(timeout_millis) if inner else True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        inner = self._inner.current()
        if inner:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)


@dataclass
class Exporters:
    traces: SpanExporter
    metrics: MetricExporter
    logs: LogRecordExporter
    targets: dict[str, Target]


def build_otlp_exporters(settings: Settings) -> Exporters:
    """Fork-safe OTLP exporters for the three signals."""
    targets = resolve_targets(settings)
    timeout = settings.export_timeout

    def factory(signal: str) -> Callable[[], Any]:
        return lambda: _new_exporter(targets[signal], timeout)

    return Exporters(
        traces=ForkSafeSpanExporter(factory("traces")),
        metrics=ForkSafeMetricExporter(factory("metrics")),
        logs=ForkSafeLogExporter(factory("logs")),
        targets=targets,
    )
