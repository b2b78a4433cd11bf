"""Installing the tracer, meter and logger providers, and taking them down again.

:func:`install` builds a provider per signal with its processors and views
(or reuses the SDK providers another tool installed), behind the scrubbing
processors, exporting OTLP through the fork-safe spooling exporters or to the
terminal, and bridges stdlib ``logging`` to the logger provider
(``log_bridge``).
"""

from __future__ import annotations

import enum
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, ParentBasedTraceIdRatio, Sampler

from otelprod import semconv
from otelprod._compat import otel_sdk
from otelprod._pipeline import stderr
from otelprod._pipeline.exporters import Exporters, build_otlp_exporters
from otelprod._pipeline.log_bridge import BridgeLoggerProvider, LogBridge, bridge_logging
from otelprod._pipeline.scrubbing import ScrubbingMetricExporter, ScrubbingSpanExporter
from otelprod._pipeline.settings import Settings
from otelprod._pipeline.status import DropLedger, ExportStatus, prime_export_metrics
from otelprod._scrub._logfilter import scrub_library_logs

_log = logging.getLogger("otelprod.bootstrap")


class PipelineMode(str, enum.Enum):
    """Where the telemetry goes."""

    OTLP = "otlp"  # to a collector, with the disk spool behind the exporters
    CONSOLE = "console"  # rendered on the terminal
    REUSED = "reused"  # every signal's provider is another tool's
    DISABLED = "disabled"  # OTEL_SDK_DISABLED: nothing is installed


@dataclass
class Pipeline:
    """What init() installed, and how to take it down again."""

    settings: Settings
    resource: Resource
    mode: PipelineMode
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    exporters: Exporters | None = None
    ledger: DropLedger = field(default_factory=DropLedger)  # every loss, by signal and reason
    processors: dict[str, Any] = field(default_factory=dict)  # our batch processors by signal
    log_handler: LogBridge | None = None  # a logging.Handler; attach it to any logger
    stderr_handler: stderr.PersonHandler | None = None  # otelprod's warnings for a person
    owned: list[str] = field(default_factory=list)  # signals whose providers we installed

    def export_status(self) -> ExportStatus:
        """How the export is going, for the status report and the exporter health check."""
        if self.exporters is None:
            by_reason = self.ledger.by_reason()
            return ExportStatus(enabled=self.mode is not PipelineMode.DISABLED,
                                mode=self.mode.value,
                                connected=True if self.mode is PipelineMode.CONSOLE else None,
                                dropped=sum(by_reason.values()), dropped_by_reason=by_reason)
        return ExportStatus.of_signals(self.mode.value, {
            signal: self.exporters.signal_status(signal) for signal in semconv.Signal.ALL})

    def shutdown(self, deadline: float) -> bool:
        """Flush and stop the providers we installed by ``deadline`` (monotonic).

        Runs in the calling thread: at interpreter exit Python 3.12+ refuses to
        start threads. The exporters are told the deadline, so no send outlasts
        it; what is left then goes to the disk spool. False when something was
        not flushed, or not by the deadline.
        """
        if self.exporters is not None:
            self.exporters.set_deadline(deadline)
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler.stop()  # where else it is attached, later records are counted
        providers: dict[str, Any] = {"traces": self.tracer_provider,
                                     "metrics": self.meter_provider,
                                     "logs": self.logger_provider}
        flushed = True
        for signal in self.owned:
            flushed = _flush_then_stop(providers[signal], deadline) and flushed
        self.ledger.reconcile()
        for signal, processor in self.processors.items():  # what the deadline left queued
            try:
                self.ledger.record(signal, otel_sdk.queued(processor),
                                   semconv.DropReason.SHUTDOWN_DEADLINE)
            except Exception:
                pass
        if self.exporters is not None:
            self.exporters.save_drops()
        if self.stderr_handler is not None:  # last: what the flush said reached a person
            stderr.uninstall(self.stderr_handler)
        return flushed and time.monotonic() <= deadline

    def flush(self, deadline: float) -> bool:
        """Export what the providers we installed hold, by ``deadline``; keep them running.

        Like :meth:`shutdown` in the calling thread, and as strict: an export the
        deadline cuts goes to the spool.
        """
        if self.exporters is not None:
            self.exporters.set_deadline(deadline)
        providers: dict[str, Any] = {"traces": self.tracer_provider,
                                     "metrics": self.meter_provider,
                                     "logs": self.logger_provider}
        flushed = True
        try:
            for signal in self.owned:
                millis = max(1, int((deadline - time.monotonic()) * 1000))
                try:
                    flushed = bool(providers[signal].force_flush(millis)) and flushed
                except Exception:
                    flushed = False
        finally:
            if self.exporters is not None:
                self.exporters.set_deadline(None)
        return flushed and time.monotonic() <= deadline


def sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def sampler(settings: Settings) -> Sampler | None:
    """Parent-based ratio sampling at ``sample_rate``; None (the SDK reads
    ``OTEL_TRACES_SAMPLER`` and ``_ARG``) when that variable is set: it wins."""
    if os.environ.get("OTEL_TRACES_SAMPLER", "").strip():
        return None
    if settings.sample_rate >= 1.0:
        return DEFAULT_ON  # the same decisions as a ratio of 1, without computing one
    return ParentBasedTraceIdRatio(settings.sample_rate)


def _views() -> list[View]:
    # Durations are in seconds: give them buckets meant for seconds.
    return [View(instrument_type=Histogram, instrument_unit="s",
                 aggregation=ExplicitBucketHistogramAggregation(
                     list(semconv.DURATION_BUCKETS_S)))]


def install(settings: Settings, resource: Resource) -> Pipeline:
    """Install the providers of every signal (reusing the SDK providers already set)."""
    if sdk_disabled():
        return Pipeline(settings, resource, PipelineMode.DISABLED)

    tracer_provider = trace.get_tracer_provider()
    meter_provider = metrics.get_meter_provider()
    logger_provider = _logs.get_logger_provider()
    theirs = {  # SDK providers another tool installed: reuse them, build nothing for them
        "traces": isinstance(tracer_provider, TracerProvider),
        "metrics": isinstance(meter_provider, MeterProvider),
        "logs": isinstance(logger_provider, LoggerProvider),
    }
    exporters = None
    ledger = DropLedger()
    span_exporter: SpanExporter
    metric_exporter: MetricExporter
    log_exporter: LogRecordExporter
    if all(theirs.values()):
        mode = PipelineMode.REUSED
    elif settings.console:
        from otelprod._pipeline.console import (
            ConsoleLogExporter,
            ConsoleMetricExporter,
            ConsoleSpanExporter,
        )
        span_exporter, metric_exporter, log_exporter = (
            ConsoleSpanExporter(), ConsoleMetricExporter(), ConsoleLogExporter())
        mode = PipelineMode.CONSOLE
    else:
        exporters = build_otlp_exporters(settings, ledger=ledger)
        span_exporter, metric_exporter, log_exporter = (
            exporters.traces, exporters.metrics, exporters.logs)
        mode = PipelineMode.OTLP

    pipeline = Pipeline(settings, resource, mode, exporters=exporters, ledger=ledger)

    scrub_library_logs()  # the SDK's own log lines quote endpoints
    if isinstance(tracer_provider, TracerProvider):
        pipeline.tracer_provider = tracer_provider
        if settings.sample_rate < 1.0:
            _log.warning("otelprod: sample_rate=%s is not applied: the tracer provider "
                         "already installed keeps its own sampler", settings.sample_rate)
    else:
        tp = TracerProvider(resource=resource, shutdown_on_exit=False,
                            sampler=sampler(settings))
        span_processor = BatchSpanProcessor(
            ScrubbingSpanExporter(span_exporter),
            schedule_delay_millis=_batch_delay_millis(settings, "OTEL_BSP_SCHEDULE_DELAY"))
        _count_queue_drops(pipeline, "traces", span_processor)
        tp.add_span_processor(span_processor)
        trace.set_tracer_provider(tp)
        pipeline.tracer_provider = tp
        pipeline.owned.append("traces")

    if isinstance(meter_provider, MeterProvider):
        pipeline.meter_provider = meter_provider
    else:
        reader = PeriodicExportingMetricReader(  # OTEL_METRIC_EXPORT_INTERVAL
            ScrubbingMetricExporter(metric_exporter))
        mp = MeterProvider(resource=resource, metric_readers=[reader], views=_views(),
                           shutdown_on_exit=False)
        metrics.set_meter_provider(mp)
        pipeline.meter_provider = mp
        pipeline.owned.append("metrics")

    if isinstance(logger_provider, LoggerProvider):
        pipeline.logger_provider = logger_provider
    else:
        lp = BridgeLoggerProvider(  # scrubbing, then batching
            resource, log_exporter, on_drop=pipeline.ledger.record,
            schedule_delay_millis=_batch_delay_millis(settings, "OTEL_BLRP_SCHEDULE_DELAY"))
        _count_queue_drops(pipeline, "logs", lp.batch)
        _logs.set_logger_provider(lp)
        pipeline.logger_provider = lp
        pipeline.owned.append("logs")

    if exporters is not None and "metrics" in pipeline.owned:
        prime_export_metrics()
    if any(theirs.values()):
        _log.info("otelprod: reusing the SDK providers already installed for %s",
                  ", ".join(s for s in semconv.Signal.ALL if s not in pipeline.owned))
    pipeline.log_handler = bridge_logging(pipeline.logger_provider, settings)
    bridge = pipeline.log_handler
    pipeline.stderr_handler = stderr.install(ours=lambda handler: handler is bridge)
    return pipeline


def _batch_delay_millis(settings: Settings, variable: str) -> float | None:
    """The batch processor's schedule delay: the standard variable if set (None lets the
    SDK read it), else ``batch_delay``. It bounds what a SIGKILL loses: what waits in memory."""
    if os.environ.get(variable, "").strip():
        return None
    return settings.batch_delay * 1000


def _count_queue_drops(pipeline: Pipeline, signal: str, processor: Any) -> None:
    """Count what ``processor``'s full queue drops (and what it refuses after its
    shutdown) in the pipeline's ledger; remember it for what the shutdown leaves."""
    reasons = {"already_shutdown": semconv.DropReason.AFTER_SHUTDOWN}
    ledger = pipeline.ledger

    def on_drop(count: int, kind: str) -> None:
        ledger.record(signal, count, reasons.get(kind, semconv.DropReason.QUEUE_FULL))

    try:
        reconcile = otel_sdk.count_queue_drops(processor, on_drop)
    except otel_sdk.MissingInternal as exc:
        _log.warning("otelprod: items dropped by a full %s queue are not counted: %s",
                     signal, exc)
        return
    ledger.add_reconciler(reconcile)
    pipeline.processors[signal] = processor


def _flush_then_stop(provider: Any, deadline: float) -> bool:
    """Export what ``provider`` holds and shut it down; False when that failed."""
    millis = max(1, int((deadline - time.monotonic()) * 1000))
    try:
        if isinstance(provider, MeterProvider):
            provider.shutdown(timeout_millis=millis)  # its shutdown collects a last time
            return True
        flushed = bool(provider.force_flush(millis))
        provider.shutdown()
        return flushed
    except Exception:
        return False
