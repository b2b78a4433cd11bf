"""loguru records into the OTLP log pipeline: a sink.

    from loguru import logger
    import otelprod.integrations.loguru

    logger.add(otelprod.integrations.loguru.sink, level="INFO")

Each record becomes an OTel log record: the message is the body, loguru's
level its severity (``SUCCESS`` and custom levels by their number), ``extra``
(``logger.bind``, ``logger.contextualize``) its attributes, an exception
(``logger.exception``, ``logger.opt(exception=...)``) ``exception.type``,
``.message`` and ``.stacktrace``, with the trace context active where it was
logged. loguru's own sinks (stderr by default) are untouched.

With ``enqueue=True`` loguru calls sinks from its own thread, where the trace
context of the caller is gone: add the patcher, which notes it on the record
first::

    logger.configure(patcher=otelprod.integrations.loguru.patcher)
    logger.add(otelprod.integrations.loguru.sink, enqueue=True)
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from opentelemetry import trace

from otelprod.integrations._records import emit, span_context

#: where :func:`patcher` notes the caller's span: (trace id, span id, flags)
SPAN_KEY = "otelprod.span"


def patcher(record: dict[str, Any]) -> None:
    """A loguru patcher: note the active span on the record, for a sink in another thread."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        record["extra"][SPAN_KEY] = (ctx.trace_id, ctx.span_id, int(ctx.trace_flags))


def sink(message: Any) -> None:
    """A loguru sink: hand the record to the OTLP log bridge. Never raises: a failure is
    said on the ``otelprod.integrations`` logger."""
    try:
        _send(message.record)
    except Exception as exc:
        logging.getLogger("otelprod.integrations").warning(
            "otelprod: a loguru record could not be sent: %s: %s", type(exc).__name__, exc)


def _send(record: dict[str, Any]) -> None:
    extra = dict(record["extra"])
    noted = extra.pop(SPAN_KEY, None)
    exception = record["exception"]
    exc_info = None
    if exception is not None and exception.value is not None:
        exc_info = (exception.type, exception.value, exception.traceback)
    level = record["level"]
    where = record["file"]
    with span_context(*noted) if noted else nullcontext():
        emit(record["name"] or "loguru", level.no, record["message"], extra,
             level_name=level.name, exc_info=exc_info, created=record["time"].timestamp(),
             pathname=where.path if where is not None else "", lineno=record["line"] or 0,
             func=record["function"])
