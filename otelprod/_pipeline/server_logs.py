"""The web servers' own log records reach the log pipeline, with their request's trace.

uvicorn and gunicorn log on loggers that do not propagate to the root logger
(``uvicorn.error`` goes to ``uvicorn``, which stops; ``gunicorn.error`` stops
itself), so the OTLP bridge on the root logger never sees them. A handler
added to them would not last either: the servers (and ``logging.config.
dictConfig``) replace those loggers' handlers when they set up logging, which
under ``otelprod run`` happens after ``init()``. A logger *filter* is kept by
both, so otelprod taps each server logger with one: it hands the record to the
bridge and lets it through unchanged.

The error a server logs for an unhandled exception ("Exception in ASGI
application") comes after the request's server span has ended, so no trace is
active then. :class:`ServerSpanExceptions` marks each exception that escapes a
server span with that span's context as the span ends, and the tap sends the
record under it: the ERROR record carries the trace id of the failed request.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind

#: the servers' error loggers, always tapped
ERROR_LOGGERS = ("uvicorn.error", "gunicorn.error", "hypercorn.error")
#: their access loggers, tapped with the server_access_logs setting (a line per request)
ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access", "hypercorn.access")

#: the attribute on an exception that escaped a server span: that span's context
_SPAN_CONTEXT = "__otelprod_span_context__"


class ServerSpanExceptions(SpanProcessor):
    """Marks an exception escaping a server span with the span's context.

    Servers end their span while the exception propagates through them (in a
    ``finally`` or ``except`` block), where ``sys.exc_info()`` is that exception.
    """

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not SpanKind.SERVER:
            return
        exc = sys.exc_info()[1]
        if exc is not None and span.context is not None:
            try:
                setattr(exc, _SPAN_CONTEXT, span.context)
            except Exception:  # an exception type that refuses attributes: no correlation
                pass


def span_context_of(record: logging.LogRecord) -> SpanContext | None:
    """The context of the server span the record's exception escaped from, if any."""
    exc_info = record.exc_info
    if not exc_info or exc_info[1] is None:
        return None
    context = getattr(exc_info[1], _SPAN_CONTEXT, None)
    return context if isinstance(context, SpanContext) else None


class ServerLogTap(logging.Filter):
    """On a server logger: sends each record to the OTLP bridge, and lets it through."""

    def __init__(self, bridge: logging.Handler) -> None:
        super().__init__()
        self.bridge = bridge

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if record.levelno >= self.bridge.level and not self._reaches_bridge(record):
                self._send(record)
        except Exception:  # the server's logging must go on whatever happens here
            pass
        return True

    def _send(self, record: logging.LogRecord) -> None:
        context = span_context_of(record)
        if context is not None and not trace.get_current_span().get_span_context().is_valid:
            with trace.use_span(NonRecordingSpan(context)):
                self.bridge.handle(record)
        else:
            self.bridge.handle(record)

    def _reaches_bridge(self, record: logging.LogRecord) -> bool:
        """Whether the record propagates to a logger holding the bridge (then it goes there)."""
        logger: Any = logging.getLogger(record.name)
        while logger is not None:
            if self.bridge in logger.handlers:
                return True
            logger = logger.parent if logger.propagate else None
        return False


class ServerLogs:
    """The taps init() put on the server loggers, to take off at shutdown."""

    def __init__(self, bridge: logging.Handler, *, access_logs: bool) -> None:
        self.tap = ServerLogTap(bridge)
        self.names = ERROR_LOGGERS + (ACCESS_LOGGERS if access_logs else ())
        for name in self.names:
            logging.getLogger(name).addFilter(self.tap)

    def detach(self) -> None:
        for name in self.names:
            logging.getLogger(name).removeFilter(self.tap)


def attach(bridge: logging.Handler | None, tracer_provider: Any, *,
           access_logs: bool) -> ServerLogs | None:
    """Tap the server loggers into ``bridge``; mark exceptions leaving server spans."""
    add_span_processor = getattr(tracer_provider, "add_span_processor", None)
    if callable(add_span_processor):
        add_span_processor(ServerSpanExceptions())
    if bridge is None:
        return None
    return ServerLogs(bridge, access_logs=access_logs)


__all__ = ["ACCESS_LOGGERS", "ERROR_LOGGERS", "ServerLogTap", "ServerLogs",
           "ServerSpanExceptions", "attach", "span_context_of"]
