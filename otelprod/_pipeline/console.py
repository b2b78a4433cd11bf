"""Readable terminal rendering of telemetry, for ``otelprod demo`` without a collector.

One line per span (with its events indented below), per log record and per
metric stream, instead of the SDK console exporters' JSON dumps.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otelprod import _forks

_lock = threading.Lock()  # one line block at a time, whichever signal's thread prints it


def _attrs(attributes: Any, limit: int = 6) -> str:
    items = list((attributes or {}).items())
    shown = " ".join(f"{k}={v}" for k, v in items[:limit])
    return shown + (f" (+{len(items) - limit})" if len(items) > limit else "")


class _Console:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        # the parent's export thread may have held the lock at fork
        _forks.register(self, after_in_child=_renew_lock)

    def _write(self, lines: list[str]) -> None:
        stream = self._stream or sys.stdout
        with _lock:
            stream.write("\n".join(lines) + "\n")
            stream.flush()


def _renew_lock(_: object) -> None:
    global _lock
    _lock = threading.Lock()


class ConsoleSpanExporter(_Console, SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        lines = []
        for span in spans:
            ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            status = "" if span.status.is_ok else f" [{span.status.status_code.name}]"
            lines.append(f"  span  {span.name:<40} {ms:8.2f} ms{status}  "
                         f"trace={span.context.trace_id:032x}"[:140])
            for event in span.events:
                lines.append(f"        └ {event.name}  {_attrs(event.attributes)}"[:160])
        if lines:
            self._write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class ConsoleLogExporter(_Console, LogRecordExporter):
    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        lines = []
        for item in batch:
            record = getattr(item, "log_record", item)
            lines.append(f"  log   {record.severity_text or '':<5} {record.body}"[:160])
        if lines:
            self._write(lines)
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class ConsoleMetricExporter(_Console, MetricExporter):
    def __init__(self, stream: TextIO | None = None) -> None:
        _Console.__init__(self, stream)
        MetricExporter.__init__(self)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        lines = []
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        value: Any = getattr(point, "value", None)
                        if value is None:
                            value = f"count={getattr(point, 'count', '?')} " \
                                    f"sum={getattr(point, 'sum', 0):.4g}"
                        lines.append(f"  metric {metric.name:<34} {value}  "
                                     f"{_attrs(point.attributes, 3)}"[:160])
        if lines:
            self._write(lines)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass
