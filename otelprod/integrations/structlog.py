"""structlog events into the OTLP log pipeline.

structlog's own loggers (the default ``PrintLogger``, ``WriteLogger``, …) write
past stdlib ``logging``, so ``init()``'s log bridge never sees them. Put
:func:`send_to_otel` in the processor chain, before the renderer and before
``format_exc_info``/``dict_tracebacks`` (it needs the exception itself)::

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(),
        otelprod.integrations.structlog.send_to_otel,
        structlog.processors.JSONRenderer(),
    ])

Each event becomes an OTel log record: ``event`` is the body, the level its
severity, the ``logger`` key (``log.bind(logger="shop.orders")``) its scope, the
other keys its attributes, ``exc_info`` (or ``log.exception``)
``exception.type``/``.message``/``.stacktrace``, with the trace context active
where it was logged. It passes the event on unchanged, so the console output
stays what it was.

structlog configured to write through stdlib ``logging``
(``logger_factory=structlog.stdlib.LoggerFactory()``) needs none of this: its
records reach the bridge like any stdlib record, and ending the chain with
``structlog.stdlib.render_to_log_kwargs`` makes the fields attributes. The
processor then steps aside (a record would otherwise be sent twice).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from otelprod.integrations._records import emit, exc_info_of

#: structlog's method names and level names -> stdlib levels
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO,
          "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
          "exception": logging.ERROR, "critical": logging.CRITICAL, "fatal": logging.CRITICAL}
#: keys that are the record itself rather than its attributes
_NOT_ATTRIBUTES = frozenset({"event", "level", "timestamp", "exc_info", "logger",
                             "_record", "_from_structlog", "_logger", "_name"})


def send_to_otel(logger: Any, method_name: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: send the event to the OTLP log pipeline, return it unchanged.

    Never raises: a failure is said once a minute on the ``otelprod.integrations`` logger.
    """
    if isinstance(logger, logging.Logger):
        return event_dict  # stdlib logging carries it to the bridge already
    try:
        _send(logger, method_name, event_dict)
    except Exception as exc:
        logging.getLogger("otelprod.integrations").warning(
            "otelprod: a structlog event could not be sent: %s: %s", type(exc).__name__, exc)
    return event_dict


def _send(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> None:
    level_name = str(event_dict.get("level") or method_name).lower()
    level = LEVELS.get(level_name, logging.INFO)
    exc_info = event_dict.get("exc_info")
    if exc_info is None and method_name == "exception":
        exc_info = True
    fields = {k: v for k, v in event_dict.items() if k not in _NOT_ATTRIBUTES}
    timestamp = event_dict.get("timestamp")
    name = event_dict.get("logger") or getattr(logger, "name", None) or "structlog"
    emit(str(name), level, str(event_dict.get("event", "")), fields,
         exc_info=exc_info_of(exc_info),
         created=float(timestamp) if isinstance(timestamp, (int, float)) else None)
