"""Turning another library's log event into a stdlib record for the OTLP log bridge."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otelprod._init import log_bridge

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

#: attributes every LogRecord has: a field of the same name is sent as ``extra.<name>``
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime"}


def exc_info_of(value: Any) -> ExcInfo | None:
    """``exc_info`` as logging takes it (True, an exception, a tuple) -> a tuple, or None."""
    if value is True:
        value = sys.exc_info()
    elif isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value  # type: ignore[return-value]
    return None


def attribute(value: Any) -> Any:
    """A value an OTel attribute can hold: primitives and lists of them as they are, the
    rest as text (a UUID, a datetime, an object: its ``str``)."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float))
                                                for v in value):
        return list(value)
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__qualname__}>"


def emit(name: str, level: int, message: str, fields: Mapping[str, Any], *,
         level_name: str | None = None, exc_info: ExcInfo | None = None,
         created: float | None = None, pathname: str = "", lineno: int = 0,
         func: str | None = None) -> bool:
    """Hand one event to the bridge; False when there is none (before ``init()``) or the
    bridge's level drops it. ``fields`` become the record's attributes."""
    bridge = log_bridge()
    if bridge is None or level < bridge.level:
        return False
    record = logging.LogRecord(name, level, pathname, lineno, message, None, exc_info, func)
    if level_name:
        record.levelname = level_name
    if created is not None:
        record.created = created
        record.msecs = (created - int(created)) * 1000
    for key, value in fields.items():
        if value is None:
            continue
        key = str(key)
        record.__dict__[f"extra.{key}" if key in _RESERVED else key] = attribute(value)
    bridge.handle(record)
    return True


@contextmanager
def span_context(trace_id: int, span_id: int, flags: int) -> Iterator[None]:
    """Make a span context captured elsewhere (another thread) the current one."""
    ctx = trace.SpanContext(trace_id, span_id, is_remote=False, trace_flags=trace.TraceFlags(flags))
    token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
    try:
        yield
    finally:
        otel_context.detach(token)
