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


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, trace ids from the current span.

    Format in the thread that logged (as the queue handler of
    :func:`setup_json_logging` does), so the current span and context are
    the caller's.
    """

    def __init__(self, *, scrub: bool = True) -> None:
        if not isinstance(scrub, bool):
            raise TypeError(f"scrub: expected True or False, got {type(scrub).__name__} "
                            f"{scrub!r}")
        super().__init__()
        self._scrub = scrub
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        """``2025-01-15T10:30:00.000Z``: UTC, millisecond precision."""
        second = int(record.created)
        if second != self._second:  # one strftime per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        """The line as a dict (before serialisation)."""
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        entry: dict[str, Any] = {
            "timestamp": self._timestamp(record),
            "level": record.levelname,
            "message": message,
            "logger": record.name,
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = trace.format_trace_id(span_context.trace_id)
            entry["span_id"] = trace.format_span_id(span_context.span_id)
        context = current()
        extra: dict[str, Any] = {}
        for key, value in record.__dict__.items():
            if key in _SKIP:
                continue
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
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            entry["exception"] = {
                "type": exc_type.__name__,
                "message": str(exc),
                "stacktrace": "".join(traceback.format_exception(exc_type, exc, tb)),
            }
        elif record.exc_text:
            entry["exception"] = {"stacktrace": record.exc_text}
        if record.stack_info:
            entry["stack"] = record.stack_info
        return entry

    def format(self, record: logging.LogRecord) -> str:
        entry = self.entry(record)
        if self._scrub and type(record.msg) is ScrubbedText and not record.args:
            # a structured logger's record: message and fields are scrubbed already
            if "exception" in entry:
                entry["exception"] = scrubber.scrub(entry["exception"])
            context = current()
            for key in entry:
                if key not in _OURS and key in context and key not in record.__dict__:
                    entry[key] = scrubber.scrub(entry[key])
        elif self._scrub:
            # timestamp, level, logger and ids are ours: only what the caller wrote
            for key, value in entry.items():
                if key not in _OURS:
                    entry[key] = scrubber.scrub(value)
            entry = _scrub_top(entry)
        try:
            return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):  # e.g. a circular structure in a field
            entry = {k: entry[k] for k in ("timestamp", "level", "message", "logger")}
            entry["extra"] = {"format_error": "a field could not be serialised"}
            return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))


_OURS = frozenset({"timestamp", "level", "logger", "trace_id", "span_id"})


def _scrub_top(entry: dict[str, Any]) -> dict[str, Any]:
    """Values of top-level (context) fields under sensitive keys."""
    for key in entry:
        if key not in _OURS and key not in _TOP and scrubber.is_sensitive_key(key) \
                and entry[key] not in (None, ""):
            entry[key] = REDACTED
    return entry
