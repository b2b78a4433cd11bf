"""The export-layer half of scrubbing: it sits on the SDK's pipeline.

Spans are scrubbed by a span exporter wrapper and metrics by a metric
exporter wrapper, on the export thread: ``counter.add`` costs what it costs
on the bare SDK, and an attribute value is looked at once per export, not
once per measurement. Both wrappers sit in front of the spooling exporters,
so what reaches the disk spool is already scrubbed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    Buckets,
    ExponentialHistogramDataPoint,
    Gauge,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from otelprod._compat import otel_sdk
from otelprod._scrub import Scrubber, scrubber
from otelprod._scrub._logfilter import scrub_library_logs

_log = logging.getLogger("otelprod._pipeline.scrubbing")

_Point = NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint


class _ScrubbedSpan(ReadableSpan):
    """A copy of a finished span that keeps the original's dropped counts."""

    def __init__(self, original: ReadableSpan, **changes: Any) -> None:
        fields: dict[str, Any] = {
            "name": original.name, "context": original.context, "parent": original.parent,
            "resource": original.resource, "attributes": original.attributes,
            "events": original.events, "links": original.links, "kind": original.kind,
            "status": original.status, "start_time": original.start_time,
            "end_time": original.end_time,
            "instrumentation_scope": original.instrumentation_scope,
        }
        fields.update(changes)
        super().__init__(**fields)
        self._dropped = (original.dropped_attributes, original.dropped_events,
                         original.dropped_links)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]


def _attrs_changed(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    return before is not None and any(after[k] is not v for k, v in before.items())


def scrub_span(span: ReadableSpan, scrub: Scrubber | None = None) -> ReadableSpan:
    """``span`` itself when nothing in it is secret, else a scrubbed copy."""
    s = scrub or scrubber
    changes: dict[str, Any] = {}
    name = s.scrub_text(span.name)
    if name != span.name:  # f"charge {card}": a name is no place for a secret either
        changes["name"] = name
    if span.attributes and not s.is_clean(span.attributes):
        attrs = s.scrub_mapping(span.attributes)
        if _attrs_changed(span.attributes, attrs):
            changes["attributes"] = attrs
    events: list[Event] = []
    events_changed = False
    for event in span.events:
        event_name = s.scrub_text(event.name)
        if event_name == event.name and (not event.attributes or s.is_clean(event.attributes)):
            events.append(event)
            continue
        event_attrs = s.scrub_mapping(event.attributes or {})
        if event_name != event.name or _attrs_changed(event.attributes, event_attrs):
            events_changed = True
            events.append(Event(event_name, event_attrs, event.timestamp))
        else:
            events.append(event)
    if events_changed:
        changes["events"] = events
    links: list[Link] = []
    links_changed = False
    for link in span.links:
        link_attrs = s.scrub_mapping(link.attributes or {})
        if _attrs_changed(link.attributes, link_attrs):
            links_changed = True
            links.append(Link(link.context, link_attrs))
        else:
            links.append(link)
    if links_changed:
        changes["links"] = links
    description = span.status.description
    if description:
        cleaned = s.scrub_text(description)
        if cleaned != description:
            changes["status"] = Status(span.status.status_code, cleaned)
    return _ScrubbedSpan(span, **changes) if changes else span


class ScrubbingSpanExporter(SpanExporter):
    """Hands scrubbed copies of spans (names included) to ``inner``; the rest is forwarded."""

    def __init__(self, inner: SpanExporter, scrub: Scrubber | None = None) -> None:
        self._inner = inner
        self._scrubber = scrub or scrubber
        self._first = True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        cleaned = []
        for span in spans:
            try:
                cleaned.append(scrub_span(span, self._scrubber))
            except Exception as exc:  # drop a span rather than leak it
                _log.warning("otelprod: a span could not be scrubbed (%r); dropped rather than "
                             "exported unscrubbed", exc)
        try:
            return self._inner.export(cleaned)
        finally:
            if self._first:  # the exporter modules are imported by now: filter their loggers
                self._first = False
                scrub_library_logs()

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self._inner, "force_flush", None)
        return bool(flush(timeout_millis)) if callable(flush) else True

    def __getattr__(self, name: str) -> Any:
        # health/spool status and such live on the wrapped exporter
        return getattr(self._inner, name)


def _scrub_exemplars(exemplars: Sequence[Exemplar], s: Scrubber) -> Sequence[Exemplar]:
    if not exemplars or all(not e.filtered_attributes or s.is_clean(e.filtered_attributes)
                            for e in exemplars):
        return exemplars
    return [replace(e, filtered_attributes=s.scrub_mapping(e.filtered_attributes))
            if e.filtered_attributes else e for e in exemplars]


def _scrub_point(point: _Point, s: Scrubber) -> _Point:
    attrs = point.attributes
    exemplars = _scrub_exemplars(point.exemplars, s)
    if (not attrs or s.is_clean(attrs)) and exemplars is point.exemplars:
        return point
    cleaned = s.scrub_mapping(attrs) if attrs else attrs
    return replace(point, attributes=cleaned, exemplars=exemplars)


def _key(attributes: Any) -> Any:
    return tuple(sorted((attributes or {}).items()))


def _downscale(buckets: Buckets, by: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, count in enumerate(buckets.bucket_counts):
        index = (buckets.offset + i) >> by
        out[index] = out.get(index, 0) + count
    return out


def _add_buckets(a: Buckets, a_by: int, b: Buckets, b_by: int) -> Buckets:
    counts = _downscale(a, a_by)
    for index, count in _downscale(b, b_by).items():
        counts[index] = counts.get(index, 0) + count
    if not counts:
        return Buckets(0, [])
    low, high = min(counts), max(counts)
    return Buckets(low, [counts.get(i, 0) for i in range(low, high + 1)])


def _merge(a: _Point, b: _Point, data: Any) -> _Point:
    """One point for two streams that scrubbing made identical (same attributes)."""
    starts = [t for t in (a.start_time_unix_nano, b.start_time_unix_nano) if t is not None]
    times: dict[str, Any] = {  # a gauge's points have no start time
        "start_time_unix_nano": min(starts) if starts else None,
        "time_unix_nano": max(a.time_unix_nano, b.time_unix_nano),
        "exemplars": [*a.exemplars, *b.exemplars]}
    if isinstance(a, NumberDataPoint) and isinstance(b, NumberDataPoint):
        if isinstance(data, Gauge):  # a gauge's value is the latest reading
            latest = a if a.time_unix_nano >= b.time_unix_nano else b
            return replace(latest, **times)
        return replace(a, value=a.value + b.value, **times)
    if isinstance(a, HistogramDataPoint) and isinstance(b, HistogramDataPoint) \
            and list(a.explicit_bounds) == list(b.explicit_bounds):
        return replace(a, count=a.count + b.count, sum=a.sum + b.sum,
                       bucket_counts=[x + y for x, y in zip(a.bucket_counts, b.bucket_counts,
                                                            strict=True)],
                       min=min(a.min, b.min), max=max(a.max, b.max), **times)
    if isinstance(a, ExponentialHistogramDataPoint) \
            and isinstance(b, ExponentialHistogramDataPoint):
        scale = min(a.scale, b.scale)
        a_by, b_by = a.scale - scale, b.scale - scale
        return replace(a, count=a.count + b.count, sum=a.sum + b.sum, scale=scale,
                       zero_count=a.zero_count + b.zero_count, flags=a.flags | b.flags,
                       positive=_add_buckets(a.positive, a_by, b.positive, b_by),
                       negative=_add_buckets(a.negative, a_by, b.negative, b_by),
                       min=min(a.min, b.min), max=max(a.max, b.max), **times)
    raise TypeError(f"cannot merge {type(a).__name__} and {type(b).__name__} points")


def _merge_collisions(points: list[_Point], data: Any) -> list[_Point]:
    """Streams whose attributes differed only in a secret are one stream once scrubbed."""
    keys = [_key(point.attributes) for point in points]
    try:
        if len(set(keys)) == len(keys):
            return points
    except TypeError:  # an unhashable attribute value: keep the points apart
        return points
    merged: dict[Any, _Point] = {}
    for key, point in zip(keys, points, strict=True):
        merged[key] = _merge(merged[key], point, data) if key in merged else point
    return list(merged.values())


def _scrub_metric(metric: Metric, s: Scrubber) -> Metric:
    data: Any = metric.data
    points = [_scrub_point(p, s) for p in data.data_points]
    name = s.scrub_text(metric.name)
    changed = any(new is not old for new, old in zip(points, data.data_points, strict=True))
    if not changed and name == metric.name:
        return metric
    if changed:
        data = replace(data, data_points=_merge_collisions(points, data))
    return replace(metric, name=name, data=data)


def scrub_metrics(data: MetricsData, scrub: Scrubber | None = None) -> MetricsData:
    """``data`` itself when no attribute in it is secret, else a scrubbed copy."""
    s = scrub or scrubber
    resource_metrics = []
    changed = False
    for rm in data.resource_metrics:
        scopes = []
        for sm in rm.scope_metrics:
            metrics = [_scrub_metric(m, s) for m in sm.metrics]
            if any(new is not old for new, old in zip(metrics, sm.metrics, strict=True)):
                changed = True
                sm = replace(sm, metrics=metrics)
            scopes.append(sm)
        resource_metrics.append(replace(rm, scope_metrics=scopes) if changed else rm)
    return MetricsData(resource_metrics=resource_metrics) if changed else data


class ScrubbingMetricExporter(MetricExporter):
    """Hands ``inner`` the collected metrics with secret attribute values replaced.

    Runs once per collection on the reader's thread, so the measurement hot
    path (``counter.add``) pays nothing. Streams that differed only in a
    secret value become one stream: their points are merged (sums added,
    histograms combined, the latest gauge reading kept), never sent twice
    under the same attributes.
    """

    def __init__(self, inner: MetricExporter, scrub: Scrubber | None = None) -> None:
        temporality, aggregation = otel_sdk.metric_preferences(inner)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._inner = inner
        self._scrubber = scrub or scrubber
        self._first = True

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        try:
            cleaned = scrub_metrics(metrics_data, self._scrubber)
        except Exception as exc:  # drop a collection rather than leak it
            _log.warning("otelprod: metrics could not be scrubbed (%r); this collection is "
                         "dropped rather than exported unscrubbed", exc)
            return MetricExportResult.FAILURE
        try:
            return self._inner.export(cleaned, timeout_millis=timeout_millis, **kwargs)
        finally:
            if self._first:
                self._first = False
                scrub_library_logs()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ScrubbingLogRecordProcessor(LogRecordProcessor):
    """Scrubs a log record's body and attributes in place, before export.

    The SDK hands every processor the same ``ReadWriteLogRecord`` in the
    order they were added, so this one must come before the batch processor:
    what it changes is what the batch processor later exports.
    """

    def __init__(self, scrub: Scrubber | None = None) -> None:
        self._scrubber = scrub or scrubber

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        with contextlib.suppress(Exception):  # a processor must never raise into logging
            scrub_log_record(log_record.log_record, self._scrubber)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def scrub_log_record(record: Any, scrub: Scrubber | None = None) -> None:
    """Scrub an API ``LogRecord``'s body and attributes in place."""
    s = scrub or scrubber
    if record.body is not None:
        record.body = s.scrub(record.body)
    attrs = record.attributes
    if not attrs or s.is_clean(attrs):
        return
    cleaned = s.scrub_mapping(attrs)
    changed = [k for k, v in cleaned.items() if attrs[k] is not v]
    if not changed:
        return
    try:
        for key in changed:
            attrs[key] = cleaned[key]
    except TypeError:  # an immutable mapping: replace it
        record.attributes = cleaned
