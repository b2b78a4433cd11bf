"""What a test reads: metric points, log records, and their deterministic renumbering."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext

#: what one rank of time is worth in deterministic mode: one second, in ns
TICK_NS = 1_000_000_000


@dataclass
class MetricPoint:
    """One attribute set of one metric over the test: ``value`` for a counter (its
    increase) or a gauge (its latest value); ``count``, ``sum``, ``min``, ``max`` and
    ``bucket_counts`` for a histogram."""

    name: str
    attributes: dict[str, Any]
    kind: str  # "sum", "gauge" or "histogram"
    value: float = 0
    count: int = 0
    sum: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")
    bucket_counts: list[int] = field(default_factory=list)
    explicit_bounds: list[float] = field(default_factory=list)

    @classmethod
    def of_histogram(cls, name: str, attributes: dict[str, Any], point: Any) -> MetricPoint:
        found = cls(name, attributes, "histogram",
                    explicit_bounds=list(point.explicit_bounds),
                    bucket_counts=[0] * len(point.bucket_counts))
        found.add_histogram(point)
        return found

    def add_histogram(self, point: Any) -> None:
        if not point.count:
            return
        self.count += point.count
        self.sum += point.sum
        self.min = min(self.min, point.min)
        self.max = max(self.max, point.max)
        self.bucket_counts = [a + b for a, b in zip(self.bucket_counts, point.bucket_counts,
                                                    strict=True)]


@dataclass(frozen=True)
class CapturedLog:
    """One exported log record, flattened."""

    body: Any
    severity_text: str | None
    severity_number: int | None
    attributes: dict[str, Any]
    trace_id: int
    span_id: int
    timestamp: int | None
    scope: str | None
    event_name: str | None = None

    @classmethod
    def of(cls, readable: Any, trace_id: int | None = None, span_id: int | None = None,
           timestamp: int | None = None) -> CapturedLog:
        record = readable.log_record
        scope = readable.instrumentation_scope
        severity = record.severity_number
        return cls(body=record.body, severity_text=record.severity_text,
                   severity_number=severity.value if severity is not None else None,
                   attributes=dict(record.attributes or {}),
                   trace_id=(record.trace_id or 0) if trace_id is None else trace_id,
                   span_id=(record.span_id or 0) if span_id is None else span_id,
                   timestamp=record.timestamp if timestamp is None else timestamp,
                   scope=scope.name if scope is not None else None,
                   event_name=getattr(record, "event_name", None))


class _Numbering:
    """Numbers handed out in order of first request: 1, 2, …; 0 stays 0 (no id)."""

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}

    def __call__(self, value: int) -> int:
        if not value:
            return 0
        return self._numbers.setdefault(value, len(self._numbers) + 1)


@dataclass
class Renumbered:
    spans: list[ReadableSpan]
    logs: list[CapturedLog]


def renumbered(spans: Sequence[ReadableSpan], logs: Iterable[Any]) -> Renumbered:
    """Copies whose trace and span ids are 1, 2, … in the order spans started, and whose
    timestamps are their rank among every timestamp captured, in seconds."""
    logs = list(logs)
    times: set[int] = set()
    for span in spans:
        times.update(t for t in (span.start_time, span.end_time) if t is not None)
        times.update(e.timestamp for e in span.events)
    for readable in logs:
        if readable.log_record.timestamp is not None:
            times.add(readable.log_record.timestamp)
    rank = {t: (i + 1) * TICK_NS for i, t in enumerate(sorted(times))}
    trace_ids, span_ids = _Numbering(), _Numbering()
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        if span.context is not None:
            trace_ids(span.context.trace_id)
            span_ids(span.context.span_id)

    def context(ctx: SpanContext | None) -> SpanContext | None:
        if ctx is None:
            return None
        return SpanContext(trace_ids(ctx.trace_id), span_ids(ctx.span_id), ctx.is_remote,
                           ctx.trace_flags, ctx.trace_state)

    def time(t: int | None) -> int | None:
        return rank.get(t) if t is not None else None

    copies = [ReadableSpan(
        name=s.name, context=context(s.context), parent=context(s.parent),
        resource=s.resource, attributes=s.attributes,
        events=[Event(e.name, e.attributes, time(e.timestamp)) for e in s.events],
        links=[Link(context(link.context), link.attributes)  # type: ignore[arg-type]
               for link in s.links],
        kind=s.kind, status=s.status, start_time=time(s.start_time),
        end_time=time(s.end_time), instrumentation_scope=s.instrumentation_scope)
        for s in spans]
    records = [CapturedLog.of(r, trace_id=trace_ids(r.log_record.trace_id or 0),
                              span_id=span_ids(r.log_record.span_id or 0),
                              timestamp=time(r.log_record.timestamp)) for r in logs]
    return Renumbered(copies, records)
