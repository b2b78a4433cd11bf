"""Building the OTLP exporters of the three signals.

The SDK's exporters read the standard variables themselves (endpoint,
headers, certificates, compression, timeout); this module only decides the
protocol per signal, turns an explicit ``endpoint`` into per-signal URLs the
way the specification does, and wraps each exporter so that a forked worker
builds its own (gRPC channels and HTTP sessions must not cross a fork).

Behind the exporters sits the disk spool (``spool.link``, ``spool.store``):
what the collector does not take is kept on disk and sent when it is back,
also by the next process of the service after a crash. Whatever is lost on
the way, for whatever reason, is counted in the pipeline's
:class:`~otelprod._pipeline.status.DropLedger`.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from opentelemetry.metrics import CallbackOptions, ObservableGauge, Observation
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otelprod import _forks, semconv
from otelprod._compat import otel_sdk
from otelprod._pipeline.settings import Settings
from otelprod._pipeline.spool.link import Policy, SignalLink, SpoolStatus
from otelprod._pipeline.spool.store import SpoolDir, service_dir
from otelprod._pipeline.spool.wire import encode, item_count, sender_for
from otelprod._pipeline.status import DropLedger, ExportHealth, SignalStatus
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


#: Each channel has subchannels of its own: gRPC shares them process-wide by default,
#: so the three signals' channels to one collector shared one connection's reconnect
#: backoff (up to 2 minutes), and the new channel the link opens after UNAVAILABLE came
#: back still in it; the spool's probes, with their own backoff, decide when to retry.
#: The backoff of a channel itself is capped at a few seconds for the same reason.
GRPC_CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),
                        ("grpc.initial_reconnect_backoff_ms", 100),
                        ("grpc.max_reconnect_backoff_ms", 2000))


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
        kwargs["channel_options"] = GRPC_CHANNEL_OPTIONS
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


#: Exporters alive in this process, for the spool size gauge.
_live: weakref.WeakSet[_ForkSafe] = weakref.WeakSet()
_gauge_lock = threading.Lock()
_gauge: ObservableGauge | None = None


def _observe_spool(options: CallbackOptions) -> Iterator[Observation]:
    for exporter in list(_live):
        link = exporter._link()
        if link is not None:
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
        _forks.register(self, after_in_child=_PerProcess._renew_lock)

    def _renew_lock(self) -> None:  # a lock held by a parent's thread would never be released
        self._lock = threading.Lock()

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

    def opener(self, ledger: DropLedger) -> _PerProcess[SpoolDir]:
        def open_spool() -> SpoolDir | None:
            try:
                spool = SpoolDir(self.path, self.max_bytes, on_drop=ledger.record)
            except (OSError, ValueError) as exc:
                logging.getLogger("otelprod._pipeline.spool").warning(
                    "otelprod: cannot use the spool directory %s (%s); telemetry that cannot "
                    "be sent is dropped", self.path, exc)
                return None
            if spool.problem:  # the links still count every loss; the writes retry
                logging.getLogger("otelprod._pipeline.spool").warning(
                    "otelprod: the spool directory is not usable (%s); telemetry that cannot "
                    "be sent is dropped (and counted) until it is", spool.problem)
            return spool
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
               spool_dir: _PerProcess[SpoolDir] | None, ledger: DropLedger | None) -> None:
        self._factory = factory
        self._spool = spool
        self._spool_dir = spool_dir
        self.ledger = ledger or DropLedger()
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
                              self._spool.policy, self.health, self.ledger)
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
        batch thread, nor lose the batch unseen: it is a failed export whose
        items are counted as dropped (``export_error``), as are those of a
        failed export without a spool (``export_failed``).
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
            self.ledger.record(self.signal, item_count(self.signal, batch),
                               semconv.DropReason.EXPORT_ERROR)
            return False
        self.health.record(ok)
        if not ok:
            self.ledger.record(self.signal, item_count(self.signal, batch),
                               semconv.DropReason.EXPORT_FAILED)
        return ok

    def set_deadline(self, deadline: float | None) -> None:
        """From now on no export of this process outlasts ``deadline`` (monotonic);
        None lifts it."""
        link = self._link()
        if link is not None:
            link.set_deadline(deadline)

    def spool_status(self) -> SpoolStatus:
        """spooling, spool_bytes, segments and spool errors of this signal, in this process."""
        link = self._link()
        if link is not None:
            return link.status()
        return SpoolStatus(spooling=False, spool_bytes=0, segments=0,
                           spool_dir=str(self._spool.path) if self._spool else None,
                           spool_errors=0, spool_problem=None)

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
                 spool_dir: _PerProcess[SpoolDir] | None = None,
                 ledger: DropLedger | None = None) -> None:
        self._setup(factory, spool, spool_dir, ledger)

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
                 spool_dir: _PerProcess[SpoolDir] | None = None,
                 ledger: DropLedger | None = None) -> None:
        self._setup(factory, spool, spool_dir, ledger)

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
                 spool_dir: _PerProcess[SpoolDir] | None = None,
                 ledger: DropLedger | None = None) -> None:
        # The temporality and aggregation preferences come from the real exporter,
        # which then serves this process (a forked child builds its own).
        first, pid = [factory()], os.getpid()
        temporality, aggregation = otel_sdk.metric_preferences(first[0])
        MetricExporter.__init__(self, preferred_temporality=temporality,
                                preferred_aggregation=aggregation)

        def first_then_new() -> MetricExporter:
            return first.pop() if first and os.getpid() == pid else factory()

        self._setup(first_then_new, spool, spool_dir, ledger)

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
    traces: ForkSafeSpanExporter
    metrics: ForkSafeMetricExporter
    logs: ForkSafeLogExporter
    targets: dict[str, Target]
    ledger: DropLedger
    spool: SpoolConfig | None = None

    def set_deadline(self, deadline: float | None) -> None:
        """Shutdown has begun: every export ends by ``deadline``, what remains is spooled
        (None: the flush that set it is over)."""
        for exporter in (self.traces, self.metrics, self.logs):
            if isinstance(exporter, _ForkSafe):
                exporter.set_deadline(deadline)

    def save_drops(self) -> None:
        """Append the losses not saved yet to the spool's drop log (for ``spool status``)."""
        for exporter in (self.traces, self.metrics, self.logs):
            link = exporter._link()
            if link is not None:
                link.save_drops()
                return

    def signal_status(self, signal: str) -> SignalStatus:
        """Where ``signal`` goes, how its exports went, and what of it is spooled."""
        exporter: _ForkSafe = getattr(self, signal)
        target = self.targets[signal]
        health = exporter.health
        by_reason = self.ledger.by_reason(signal)
        return SignalStatus(protocol=target.protocol, endpoint=target.describe(),
                            exports=health.exports, failures=health.failures,
                            connected=health.last_ok, last_error=health.last_error,
                            dropped=sum(by_reason.values()), dropped_by_reason=by_reason,
                            **exporter.spool_status())


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
                    hang_timeout=min(settings.export_hang_timeout, settings.export_timeout),
                    retry_initial=settings.spool_retry_initial, retry_max=retry_max,
                    poll_interval=min(1.0, retry_max), rescan_every=min(10.0, 10 * retry_max),
                    shutdown_timeout=settings.shutdown_timeout)
    path = service_dir(settings.spool_dir, service_name or spool_service_name(settings))
    return SpoolConfig(path, settings.spool_max_bytes, policy)


def build_otlp_exporters(settings: Settings, *, spool: bool = True,
                         service_name: str | None = None,
                         ledger: DropLedger | None = None) -> Exporters:
    """Fork-safe OTLP exporters for the three signals, with the disk spool behind them.

    ``spool=False`` gives plain SDK exporting (one real export, e.g. for
    ``otelprod doctor``). With the spool, a background thread starts at once so
    that what an earlier process of the service left on disk is sent soon.
    Losses are counted in ``ledger`` (the pipeline's; a new one by default).
    """
    targets = resolve_targets(settings)
    timeout = settings.export_timeout
    ledger = ledger or DropLedger()
    config = spool_config(settings, service_name) if spool else None
    spool_dir = config.opener(ledger) if config is not None else None

    def factory(signal: str) -> Callable[[], Any]:
        return lambda: _new_exporter(targets[signal], timeout)

    traces = ForkSafeSpanExporter(factory("traces"), config, spool_dir, ledger)
    metrics = ForkSafeMetricExporter(factory("metrics"), config, spool_dir, ledger)
    logs = ForkSafeLogExporter(factory("logs"), config, spool_dir, ledger)
    forked: list[_ForkSafe] = [traces, metrics, logs]
    exporters = Exporters(traces=traces, metrics=metrics, logs=logs, targets=targets,
                          ledger=ledger, spool=config)
    if config is not None:
        def start() -> None:
            for exporter in forked:
                try:
                    exporter.start()
                except Exception:
                    pass
        threading.Thread(target=start, daemon=True, name="otelprod-spool-start").start()
    return exporters
