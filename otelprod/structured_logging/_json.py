"""The JSON line format (the seed's, see DESIGN.md).

    {"timestamp": "2025-01-15T10:30:00.000Z", "level": "INFO",
     "message": "Processing request", "logger": "TGE_Monitor.my_module",
     "trace_id": "<32 hex>", "span_id": "<16 hex>", "user_id": "123",
     "extra": {"extra_field": "value"}}

Context fields go to the top level, other fields under ``extra``;
``trace_id``/``span_id`` appear when a span is active. Everything passes the
scrubber before it is serialised.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from otelprod._scrub import REDACTED, scrubber
from otelprod.structured_logging._context import RESERVED, current

#: fields of the line itself; a context field with one of these names goes to extra
_TOP = frozenset({"timestamp", "level", "message", "logger", "trace_id", "span_id", "extra",
                  "exception", "stack"})
#: record attributes added by OpenTelemetry's logging instrumentation
_SKIP = RESERVED | {"otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName"}


class ScrubbedText(str):
    """A message (and its record's fields) already scrubbed by a structured logger."""

    __slots__ = ()


#: What the caller's thread hands over to format a line later: the record's
#: attributes, its message, the current span's context and the logging context.
Captured = tuple[dict[str, Any], str, trace.SpanContext, Mapping[str, Any]]


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, trace ids from the current span.

    :meth:`capture` takes, in the thread that logged, all that depends on
    it (the message, the current span and context, a copy of the record's
    attributes); :meth:`format_captured` makes the line from that anywhere,
    so the queue handler of :func:`setup_json_logging` formats in its writer
    thread. :meth:`format` does both at once.
    """

    def __init__(self, *, scrub: bool = True) -> None:
        if not isinstance(scrub, bool):
            raise TypeError(f"scrub: expected True or False, got {type(scrub).__name__} "
                            f"{scrub!r}")
        super().__init__()
        self._scrub = scrub
        self._second = -1
        self._second_text = ""
        self._last_ids: tuple[Any, str, str] = (None, "", "")

    def _timestamp(self, created: float, msecs: float) -> str:
        """``2025-01-15T10:30:00.000Z``: UTC, millisecond precision."""
        second = int(created)
        if second != self._second:  # one strftime per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(msecs):03d}Z"

    @staticmethod
    def capture(record: logging.LogRecord) -> Captured:
        """What the line needs from the logging thread (cheap: no formatting)."""
        message = record.msg
        if record.args or (type(message) is not str and type(message) is not ScrubbedText):
            try:
                message = record.getMessage()  # now: the arguments may change later
            except Exception:  # a bad %-format must not lose the line
                message = f"{record.msg!r} % {record.args!r}"
        return (record.__dict__.copy(), message,
                trace.get_current_span().get_span_context(), current())

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        """The line as a dict (before scrubbing and serialisation)."""
        return self._entry(self.capture(record))

    def _entry(self, captured: Captured) -> dict[str, Any]:
        record, message, span_context, context = captured
        entry: dict[str, Any] = {
            "timestamp": self._timestamp(record["created"], record["msecs"]),
            "level": record["levelname"],
            "message": message,
            "logger": record["name"],
        }
        if span_context.is_valid:
            last = self._last_ids  # lines of one request repeat the span: format it once
            if last[0] is not span_context:
                last = self._last_ids = (span_context, format(span_context.trace_id, "032x"),
                                         format(span_context.span_id, "016x"))
            entry["trace_id"] = last[1]
            entry["span_id"] = last[2]
        extra: dict[str, Any] = {}
        for key, value in [item for item in record.items() if item[0] not in _SKIP]:
            plain = key[:-1] if key.endswith("_") and key[:-1] in RESERVED else key
            if plain in context and plain not in _TOP:
                entry[plain] = value
            else:
                extra[plain] = value
        for key, value in context.items():  # records of plain stdlib loggers
            if key not in entry and key not in _TOP:
                entry[key] = value
        if extra:
            entry["extra"] = extra
        exc_info = record.get("exc_info")
        if exc_info and exc_info[0] is not None:
            exc_type, exc, tb = exc_info
            entry["exception"] = {
                "type": exc_type.__name__,
                "message": str(exc),
                "stacktrace": "".join(traceback.format_exception(exc_type, exc, tb)),
            }
        elif record.get("exc_text"):
            entry["exception"] = {"stacktrace": record["exc_text"]}
        if record.get("stack_info"):
            entry["stack"] = record["stack_info"]
        return entry

    def format(self, record: logging.LogRecord) -> str:
        return self.format_captured(self.capture(record))

    def format_captured(self, captured: Captured) -> str:
        """The JSON line of a record :meth:`capture` took (in any thread)."""
        entry = self._entry(captured)
        record, context = captured[0], captured[3]
        if self._scrub and type(record.get("msg")) is ScrubbedText \
                and not record.get("args"):
            # a structured logger's record: message and fields are scrubbed already
            # (what a filter may have added since is checked: redacted values count as clean)
            if "exception" in entry:
                entry["exception"] = scrubber.scrub(entry["exception"])
            extra = entry.get("extra")
            if extra and not scrubber.is_clean({k: v for k, v in extra.items()
                                                if v != REDACTED}):
                entry["extra"] = scrubber.scrub_mapping(extra)
            for key in entry:
                if key not in _OURS and key in context and key not in record:
                    entry[key] = scrubber.scrub(entry[key])
        elif self._scrub:
            # timestamp, level, logger and ids are ours: only what the caller wrote
            for key, value in entry.items():
                if key not in _OURS:
                    entry[key] = scrubber.scrub(value)
            entry = _scrub_top(entry)
        try:
            return _encode(entry)
        except (TypeError, ValueError):  # e.g. a circular structure in a field
            entry = {k: entry[k] for k in ("timestamp", "level", "message", "logger")}
            entry["extra"] = {"format_error": "a field could not be serialised"}
            return _encode(entry)


#: one encoder for every line (json.dumps with options builds a new one per call)
_encode = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


_OURS = frozenset({"timestamp", "level", "logger", "trace_id", "span_id"})


def _scrub_top(entry: dict[str, Any]) -> dict[str, Any]:
    """Values of top-level (context) fields under sensitive keys."""
    for key in entry:
        if key not in _OURS and key not in _TOP and scrubber.is_sensitive_key(key) \
                and entry[key] not in (None, ""):
            entry[key] = REDACTED
    return entry
