"""Building the OTLP exporters of the three signals.

The SDK's exporters read the standard variables themselves (endpoint,
headers, certificates, compression, timeout); this module only decides the
protocol per signal, turns an explicit ``endpoint`` into per-signal URLs the
way the specification does, and wraps each exporter so that a forked worker
builds its own (gRPC channels and HTTP sessions must not cross a fork).

Behind the exporters sits the disk spool (``_spool``, ``_spool_link``): what
the collector does not take is kept on disk and sent when it is back, also by
the next process of the service after a crash.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import otelprod._pipeline.fork  # noqa: F401  (registers the child's metric reset at fork)
from otelprod import semconv
from otelprod._pipeline.settings import Settings
from otelprod._pipeline.spool.link import Policy, SignalLink, encode, sender_for
from otelprod._pipeline.spool.store import SpoolDir, service_dir
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


def prime_export_metrics() -> None:
    """Start the failure and drop series at zero, so dashboards and alerts
    see them (and their rate) from the first export on, not from the first outage."""
    try:
        for signal in semconv.Signal.ALL:
            _failure_counter().add(0, {semconv.SIGNAL: signal})
            record_drop(signal, 0)
    except Exception:
        pass


_dropped: Any = None


def record_drop(signal: str, count: int) -> None:
    """Count ``count`` items of ``signal`` that will never reach the collector."""
    global _dropped
    try:
        if _dropped is None:
            from otelprod._telemetry import meter

            _dropped = meter.create_counter(
                semconv.METRIC_EXPORT_DROPPED, unit="{item}",
                description="Spans, log records and metric points dropped before reaching "
                            "the collector (spool bound, rejected by the collector), by signal.")
        _dropped.add(count, {semconv.SIGNAL: signal})
    except Exception:
        pass


#: Exporters alive in this process, for the spool size gauge.
_live: weakref.WeakSet[Any] = weakref.WeakSet()
_gauge_lock = threading.Lock()
_gauge: Any = None


def _observe_spool(options: Any) -> Any:
    from opentelemetry.metrics import Observation

    for exporter in list(_live):
        link = exporter._link()
        if link is not None and link.spool is not None:
            yield Observation(link.spool.bytes_of(exporter.signal),
                              {semconv.SIGNAL: exporter.signal})


def _register_gauge() -> None:
    global _gauge
    with _gauge_lock:
        if _gauge is None:
            from otelprod._telemetry import meter

            _gauge = meter.create_observable_gauge(
                semconv.METRIC_EXPORT_SPOOL_SIZE, callbacks=[_observe_spool], unit="By",
                description="Bytes of telemetry waiting in the disk spool, by signal.")


class _PerProcess(Generic[E]):
    """Holds one object per process, built on first use in that process."""

    def __init__(self, factory: Callable[[], E | None]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = -1
        self._value: E | None = None
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def reset() -> None:  # a lock held by a parent's thread would never be released
                me = ref()
                if me is not None:
                    me._lock = threading.Lock()
            os.register_at_fork(after_in_child=reset)

    def get(self) -> E | None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # the parent's object is abandoned, not shut down: its channel
                    # and threads belong to the parent process
                    self._value = self._factory()
                    self._pid = os.getpid()
        return self._value

    def current(self) -> E | None:
        return self._value if self._pid == os.getpid() else None


@dataclass(frozen=True)
class SpoolConfig:
    """Where and how the exporters of one pipeline spool; shared by the three signals."""

    path: Path
    max_bytes: int
    policy: Policy

    def opener(self) -> _PerProcess[SpoolDir]:
        def open_spool() -> SpoolDir | None:
            try:
                return SpoolDir(self.path, self.max_bytes, on_drop=record_drop)
            except (OSError, ValueError) as exc:
                logging.getLogger("otelprod._spool").warning(
                    "otelprod: cannot use the spool directory %s (%s); telemetry that cannot "
                    "be sent is dropped", self.path, exc)
                return None
        return _PerProcess(open_spool)


class _Proc:
    """What one process uses to export one signal: the SDK exporter, and the link."""

    def __init__(self, exporter: Any, link: SignalLink | None) -> None:
        self.exporter = exporter
        self.link = link


class _ForkSafe:
    """Shared by the three exporters: one SDK exporter (and spool link) per process.

    Without a spool the SDK exporter exports as usual. With one, each batch is
    encoded once and goes through a :class:`SignalLink`: sent at once, or
    spooled to disk when the collector does not take it.
    """

    signal: str

    def _setup(self, factory: Callable[[], Any], spool: SpoolConfig | None,
               spool_dir: _PerProcess[SpoolDir] | None) -> None:
        self._factory = factory
        self._spool = spool
        self._spool_dir = spool_dir
        self.health = ExportHealth(self.signal)
        self._inner: _PerProcess[_Proc] = _PerProcess(self._build)
        if spool is not None:
            _live.add(self)
            _register_gauge()

    def _build(self) -> _Proc:
        exporter = self._factory()
        link = None
        spool_dir = self._spool_dir.get() if self._spool_dir is not None else None
        if self._spool is not None and spool_dir is not None:
            link = SignalLink(self.signal, sender_for(exporter, self.signal), spool_dir,
                              self._spool.policy, self.health, record_drop)
        return _Proc(exporter, link)

    def start(self) -> None:
        """Build this process's exporter and start replaying what an earlier process spooled."""
        self._inner.get()

    def _link(self) -> SignalLink | None:
        proc = self._inner.current()
        return proc.link if proc is not None else None

    def _send(self, batch: Any, timeout: float | None) -> bool | None:
        """True/False when the link took the batch; None to use the SDK exporter."""
        proc = self._inner.get()
        assert proc is not None
        if proc.link is None:
            return None
        data, count = encode(self.signal, batch)
        return proc.link.submit(data, count, timeout)

    def _export(self, batch: Any, timeout: float | None,
                direct: Callable[[Any], bool]) -> bool:
        """Send ``batch`` through the link, or through ``direct(sdk_exporter)`` without one.

        True when it was sent or spooled. An exporter bug must not kill the
        batch thread: it counts as a failed export.
        """
        try:
            sent = self._send(batch, timeout)
            if sent is not None:
                return sent
            proc = self._inner.get()
            assert proc is not None
            ok = direct(proc.exporter)
        except Exception as exc:
            self.health.record(False, repr(exc))
            return False
        self.health.record(ok)
        return ok

    def spool_status(self) -> dict[str, Any]:
        """spooling, spool_bytes, dropped and segments of this signal, in this process."""
        link = self._link()
        if link is not None:
            return link.status()
        return {"spooling": False, "spool_bytes": 0, "dropped": 0, "segments": 0,
                "spool_dir": str(self._spool.path) if self._spool else None}

    def _flush(self, timeout_millis: float) -> bool:
        proc = self._inner.current()
        if proc is None:
            return True
        if proc.link is not None:
            return proc.link.flush(timeout_millis / 1000)
        return bool(proc.exporter.force_flush(timeout_millis))

    def _close(self, timeout_millis: float | None) -> None:
        proc = self._inner.current()
        if proc is None:
            return
        if proc.link is not None:
            budget = self._spool.policy.shutdown_timeout if self._spool else 5.0
            if timeout_millis is not None:
                budget = min(budget, timeout_millis / 1000)
            proc.link.close(budget)  # closes the SDK exporter too
        elif self.signal == "metrics" and timeout_millis is not None:
            proc.exporter.shutdown(timeout_millis=timeout_millis)
        else:
            proc.exporter.shutdown()


class ForkSafeSpanExporter(_ForkSafe, SpanExporter):
    signal = "traces"

    def __init__(self, factory: Callable[[], SpanExporter], spool: SpoolConfig | None = None,
                 spool_dir: _PerProcess[SpoolDir] | None = None) -> None:
        self._setup(factory, spool, spool_dir)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        ok = self._export(spans, None,
                          lambda sdk: sdk.export(spans) is SpanExportResult.SUCCESS)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        self._close(timeout_millis)


class ForkSafeLogExporter(_ForkSafe, LogRecordExporter):
    signal = "logs"

    def __init__(self, factory: Callable[[], LogRecordExporter],
                 spool: SpoolConfig | None = None,
                 spool_dir: _PerProcess[SpoolDir] | None = None) -> None:
        self._setup(factory, spool, spool_dir)

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        ok = self._export(batch, None,
                          lambda sdk: sdk.export(batch) is LogRecordExportResult.SUCCESS)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        self._close(timeout_millis)


class ForkSafeMetricExporter(_ForkSafe, MetricExporter):
    signal = "metrics"

    def __init__(self, factory: Callable[[], MetricExporter],
                 spool: SpoolConfig | None = None,
                 spool_dir: _PerProcess[SpoolDir] | None = None) -> None:
        probe = factory()  # temporality and aggregation preferences come from the real one
        MetricExporter.__init__(
            self,
            preferred_temporality=probe._preferred_temporality,
            preferred_aggregation=probe._preferred_aggregation,
        )
        probe.shutdown()
        self._setup(factory, spool, spool_dir)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        ok = self._export(metrics_data, timeout_millis / 1000, lambda sdk: sdk.export(
            metrics_data, timeout_millis=timeout_millis, **kwargs) is MetricExportResult.SUCCESS)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        # the SDK's metric reader passes its remaining time as ``timeout`` (ms)
        self._close(kwargs.get("timeout", timeout_millis))


@dataclass
class Exporters:
    traces: SpanExporter
    metrics: MetricExporter
    logs: LogRecordExporter
    targets: dict[str, Target]
    spool: SpoolConfig | None = None


def spool_service_name(settings: Settings) -> str:
    """The service whose spool this process uses: as the resource will name it."""
    if settings.service_name:
        return settings.service_name
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    return str(Resource.create().attributes.get(SERVICE_NAME, "unknown_service"))


def spool_config(settings: Settings, service_name: str | None = None) -> SpoolConfig | None:
    """The spool of ``settings``' service, or None when ``spool_max_bytes`` is 0."""
    if settings.spool_max_bytes <= 0:
        return None
    retry_max = max(settings.spool_retry_max, settings.spool_retry_initial)
    policy = Policy(export_timeout=settings.export_timeout,
                    retry_initial=settings.spool_retry_initial, retry_max=retry_max,
                    poll_interval=min(1.0, retry_max), rescan_every=min(10.0, 10 * retry_max),
                    shutdown_timeout=settings.shutdown_timeout)
    path = service_dir(settings.spool_dir, service_name or spool_service_name(settings))
    return SpoolConfig(path, settings.spool_max_bytes, policy)


def build_otlp_exporters(settings: Settings, *, spool: bool = True,
                         service_name: str | None = None) -> Exporters:
    """Fork-safe OTLP exporters for the three signals, with the disk spool behind them.

    ``spool=False`` gives plain SDK exporting (one real export, e.g. for
    ``otelprod doctor``). With the spool, a background thread starts at once so
    that what an earlier process of the service left on disk is sent soon.
    """
    targets = resolve_targets(settings)
    timeout = settings.export_timeout
    config = spool_config(settings, service_name) if spool else None
    spool_dir = config.opener() if config is not None else None

    def factory(signal: str) -> Callable[[], Any]:
        return lambda: _new_exporter(targets[signal], timeout)

    forked: list[_ForkSafe] = [ForkSafeSpanExporter(factory("traces"), config, spool_dir),
                               ForkSafeMetricExporter(factory("metrics"), config, spool_dir),
                               ForkSafeLogExporter(factory("logs"), config, spool_dir)]
    traces, metrics, logs = forked
    exporters = Exporters(traces=traces, metrics=metrics, logs=logs,  # type: ignore[arg-type]
                          targets=targets, spool=config)
    if config is not None:
        def start() -> None:
            for exporter in forked:
                try:
                    exporter.start()
                except Exception:
                    pass
        threading.Thread(target=start, daemon=True, name="otelprod-spool-start").start()
    return exporters
