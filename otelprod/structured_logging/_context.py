"""The logging context: fields every log line in this thread or task carries.

It lives in a ``ContextVar`` holding an immutable snapshot, so each thread
starts empty, each asyncio task starts with a copy of its creator's context,
and nothing set inside one leaks into another. The context belongs to the
execution context, not to a logger: every logger used there sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("otelprod_log_context", default=_EMPTY)

#: attributes every LogRecord has; fields with these names get a trailing "_"
RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def field_name(key: str) -> str:
    """A record attribute name for ``key`` that cannot clobber the record's own."""
    return f"{key}_" if key in RESERVED else key


def current() -> Mapping[str, Any]:
    """The current context (read-only; never mutate it)."""
    return _CONTEXT.get()


def set_context(**fields: Any) -> None:
    """Add ``fields`` to the context of this thread or task."""
    merged = dict(_CONTEXT.get())
    merged.update(fields)
    _CONTEXT.set(MappingProxyType(merged))


def clear_context(*keys: str) -> None:
    """Remove ``keys`` from the context, or everything when none are given."""
    if not keys:
        _CONTEXT.set(_EMPTY)
        return
    remaining = {k: v for k, v in _CONTEXT.get().items() if k not in keys}
    _CONTEXT.set(MappingProxyType(remaining))


def get_context() -> dict[str, Any]:
    """A copy of the current context."""
    return dict(_CONTEXT.get())


@contextmanager
def bound_context(**fields: Any) -> Iterator[None]:
    """``fields`` in the context for the ``with`` block only."""
    merged = dict(_CONTEXT.get())
    merged.update(fields)
    token = _CONTEXT.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Copies the context onto records of any stdlib logger.

    Add it to a handler of your own so records from plain
    ``logging.getLogger()`` loggers carry the context fields as attributes
    too; records from :func:`get_logger` loggers already do. (otelprod's
    OTLP bridge and JSON lines take the context themselves.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            name = field_name(key)
            if name not in record.__dict__:
                record.__dict__[name] = value
        return True
