"""Capturing a process's spans, metric points and log records in memory, one test at a time.

OpenTelemetry lets a process set each global provider once, so the capture is
installed once per process, the first time a test asks for it, and each test
gets a fresh view (:class:`Telemetry`):

* no SDK provider installed yet (``otelprod.init()`` not called): capturing
  providers are installed; an ``init()`` called later in a test then reuses
  them (its ``REUSED`` mode), so what it emits is captured too. stdlib
  ``logging`` is bridged to them while no ``init()`` pipeline does it;
* SDK providers already installed (``init()`` ran at import, or another tool):
  the capture is added to them beside their exporters.

What is captured went through otelprod's scrubbing, as it would leave the process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelprod import _init
from otelprod._pipeline.log_bridge import LogBridge, bridge_logging
from otelprod._pipeline.scrubbing import ScrubbingLogRecordProcessor, ScrubbingSpanExporter
from otelprod._pipeline.settings import Settings
from otelprod.testing._model import CapturedLog, MetricPoint, renumbered

_DELTA = AggregationTemporality.DELTA

_log = logging.getLogger("otelprod.testing")


class CaptureSession:
    """The in-memory exporters and reader, installed on the global providers once."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.logs = InMemoryLogRecordExporter()
        self.reader = InMemoryMetricReader(preferred_temporality={
            Counter: _DELTA, UpDownCounter: _DELTA, Histogram: _DELTA,
            ObservableCounter: _DELTA, ObservableUpDownCounter: _DELTA})
        #: what could not be captured, and why (another tool's non-SDK provider)
        self.missing: dict[str, str] = {}
        self.bridge: logging.Handler | None = None
        self._install()

    def _install(self) -> None:
        tracer_provider = _sdk(trace.get_tracer_provider(), TracerProvider,
                               lambda: trace.set_tracer_provider(TracerProvider(
                                   shutdown_on_exit=False)), trace.get_tracer_provider)
        if tracer_provider is None:
            self.missing["traces"] = f"the tracer provider is {trace.get_tracer_provider()!r}"
        else:
            tracer_provider.add_span_processor(
                SimpleSpanProcessor(ScrubbingSpanExporter(self.spans)))

        meter_provider = metrics.get_meter_provider()
        if isinstance(meter_provider, MeterProvider):
            meter_provider.add_metric_reader(self.reader)
        else:
            metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader],
                                                     shutdown_on_exit=False))
            if not isinstance(metrics.get_meter_provider(), MeterProvider):
                self.missing["metrics"] = f"the meter provider is {meter_provider!r}"

        ours = not isinstance(_logs.get_logger_provider(), LoggerProvider)
        logger_provider = _sdk(_logs.get_logger_provider(), LoggerProvider,
                               lambda: _logs.set_logger_provider(LoggerProvider(
                                   shutdown_on_exit=False)), _logs.get_logger_provider)
        if logger_provider is None:
            self.missing["logs"] = f"the logger provider is {_logs.get_logger_provider()!r}"
            return
        logger_provider.add_log_record_processor(ScrubbingLogRecordProcessor())
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        if ours and not _bridged(logging.getLogger()):
            self.bridge = bridge_logging(logger_provider, Settings(log_level="DEBUG"))
            # init()'s own bridge takes over while its pipeline runs: no record twice
            self.bridge.addFilter(lambda record: _init.log_bridge() is None)


def _sdk(current: Any, kind: type, install: Any, get: Any) -> Any:
    """``current`` if it is an SDK provider, else one installed now (None when refused)."""
    if isinstance(current, kind):
        return current
    install()
    installed = get()
    return installed if isinstance(installed, kind) else None


def _bridged(root: logging.Logger) -> bool:
    """Whether a log bridge (otelprod's, or contrib's from another tool) is on ``root``."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    return any(isinstance(h, (LoggingHandler, LogBridge)) for h in root.handlers)


_session: CaptureSession | None = None
_session_lock = threading.Lock()


def capture_session() -> CaptureSession:
    """The process's capture, installed on first use."""
    global _session
    with _session_lock:
        if _session is None:
            _session = CaptureSession()
            for signal, why in _session.missing.items():
                _log.warning("otelprod.testing: %s are not captured: %s", signal, why)
        return _session


class Telemetry:
    """What the process emitted since this view was made (or last cleared).

    Spans and log records are the SDK's, as exported; metric points are summed
    over the test (counters, histograms) or the latest (gauges). Set
    ``deterministic = True`` to get ids renumbered 1, 2, … in the order spans
    started and every timestamp replaced by its rank in seconds (1 s, 2 s, …),
    so that the same test gives the same values on every run.
    """

    def __init__(self, session: CaptureSession | None = None) -> None:
        self._session = session or capture_session()
        self.deterministic = False
        self._points: dict[tuple[str, frozenset[tuple[str, Any]]], MetricPoint] = {}
        self.clear()

    def clear(self) -> None:
        """Forget everything captured so far."""
        self._session.spans.clear()
        self._session.logs.clear()
        self._session.reader.get_metrics_data()  # deltas up to now belong to nobody
        self._points.clear()

    # --- spans ------------------------------------------------------------------------------
    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, in the order they ended (by ``name``, when given)."""
        spans = list(self._session.spans.get_finished_spans())
        if self.deterministic:
            spans = renumbered(spans, self._raw_logs()).spans
        return [s for s in spans if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (AssertionError naming what there is)."""
        found = self.spans(name)
        if len(found) != 1:
            names = sorted({s.name for s in self.spans()})
            raise AssertionError(f"expected one span named {name!r}, found {len(found)}; "
                                 f"spans captured: {names}")
        return found[0]

    def events(self, name: str | None = None, *, span: str | ReadableSpan | None = None
               ) -> list[Event]:
        """Span events (called ``name``), on every span or on ``span`` (a span or its name)."""
        spans = [self.span(span)] if isinstance(span, str) else \
            [span] if span is not None else self.spans()
        return [e for s in spans for e in s.events if name is None or e.name == name]

    # --- metrics ----------------------------------------------------------------------------
    def metric_points(self, name: str, attributes: Mapping[str, Any] | None = None
                      ) -> list[MetricPoint]:
        """Points of the metric ``name`` whose attributes include ``attributes``."""
        self._collect()
        wanted = dict(attributes or {})
        return [p for (metric, _), p in self._points.items() if metric == name
                and all(p.attributes.get(k) == v for k, v in wanted.items())]

    def metric_value(self, name: str, attributes: Mapping[str, Any] | None = None) -> float:
        """The sum over matching points: a counter's increase, a gauge's values, a
        histogram's count of recordings. 0 when there is none."""
        return sum(p.count if p.kind == "histogram" else p.value
                   for p in self.metric_points(name, attributes))

    def metric_names(self) -> set[str]:
        self._collect()
        return {name for name, _ in self._points}

    def _collect(self) -> None:
        data = self._session.reader.get_metrics_data()
        if data is None:
            return
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        self._add(metric.name, point, metric.data)

    def _add(self, name: str, point: Any, data: Any) -> None:
        attrs = dict(point.attributes or {})
        key = (name, frozenset(attrs.items()))
        known = self._points.get(key)
        cumulative = getattr(data, "aggregation_temporality", _DELTA) != _DELTA
        if isinstance(point, HistogramDataPoint):
            if known is None or cumulative:
                self._points[key] = MetricPoint.of_histogram(name, attrs, point)
            else:
                known.add_histogram(point)
        elif isinstance(point, NumberDataPoint):
            if known is None or cumulative or not hasattr(data, "is_monotonic"):
                kind = "sum" if hasattr(data, "is_monotonic") else "gauge"
                self._points[key] = MetricPoint(name, attrs, kind, point.value)
            else:
                known.value += point.value

    # --- logs -------------------------------------------------------------------------------
    def logs(self, body: str | None = None, *, level: str | None = None) -> list[CapturedLog]:
        """Log records in the order they were emitted, filtered by ``body`` (equal) and
        ``level`` (severity text: INFO, WARN, ERROR, FATAL…)."""
        raw = self._raw_logs()
        records = renumbered(list(self._session.spans.get_finished_spans()), raw).logs \
            if self.deterministic else [CapturedLog.of(r) for r in raw]
        return [r for r in records if (body is None or r.body == body)
                and (level is None or r.severity_text == level.upper())]

    def _raw_logs(self) -> list[Any]:
        return list(self._session.logs.get_finished_logs())
