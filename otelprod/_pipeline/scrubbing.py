"""The export-layer half of scrubbing: it sits on the SDK's pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from otelprod._scrub import Scrubber, scrubber


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
    if span.attributes and not s.is_clean(span.attributes):
        attrs = s.scrub_mapping(span.attributes)
        if _attrs_changed(span.attributes, attrs):
            changes["attributes"] = attrs
    events: list[Event] = []
    events_changed = False
    for event in span.events:
        if not event.attributes or s.is_clean(event.attributes):
            events.append(event)
            continue
        event_attrs = s.scrub_mapping(event.attributes)
        if _attrs_changed(event.attributes, event_attrs):
            events_changed = True
            events.append(Event(event.name, event_attrs, event.timestamp))
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
    """Hands scrubbed copies of spans to ``inner``; everything else is forwarded.

    The span name is left alone: names are low-cardinality by convention and
    dashboards group by them.
    """

    def __init__(self, inner: SpanExporter, scrub: Scrubber | None = None) -> None:
        self._inner = inner
        self._scrubber = scrub or scrubber

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        cleaned = []
        for span in spans:
            try:
                cleaned.append(scrub_span(span, self._scrubber))
            except Exception:  # drop a span rather than leak it
                continue
        return self._inner.export(cleaned)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self._inner, "force_flush", None)
        return bool(flush(timeout_millis)) if callable(flush) else True

    def __getattr__(self, name: str) -> Any:
        # health/spool status and such live on the wrapped exporter
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
