"""The structured logger: a thin front on a stdlib logger.

It logs through ``logging`` so every handler sees its records: the JSON
handler, the OpenTelemetry bridge that ``otelprod.init()`` installs, and
whatever the application added. Context fields and keyword fields become
attributes of the ``LogRecord``, hence attributes of the OTel log record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from otelprod._scrub import scrubber
from otelprod.structured_logging import _context
from otelprod.structured_logging._context import field_name
from otelprod.structured_logging._json import ScrubbedText

_PRIMITIVES = (str, bool, int, float)


def _attribute(value: Any) -> Any:
    """A value both JSON and OTel attributes accept, else its ``str``."""
    if value is None or isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)):
        return [_attribute(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _attribute(v) for k, v in value.items()}
    return str(value)


def _render(msg: Any, args: tuple[Any, ...]) -> str | None:
    """``msg % args`` as the stdlib would; None when that fails (the stdlib reports it)."""
    text = msg if isinstance(msg, str) else str(msg)
    if not args:
        return text
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]  # type: ignore[assignment]  # the stdlib's "%(name)s" form
    try:
        return text % args
    except Exception:
        return None


class StructuredLogger:
    """Logs JSON-ready records with the context and keyword fields attached.

        logger.set_context(user_id="123")
        logger.info("Processing request", extra_field="value")

    ``set_context``/``clear_context`` act on the context of the current
    thread or asyncio task (shared by every logger there). ``bind`` returns
    a logger that adds its own fields to the context of each line it logs.
    """

    __slots__ = ("_bound", "logger", "name")

    def __init__(self, name: str, *, logger: logging.Logger | None = None,
                 bound: Mapping[str, Any] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty str, got {type(name).__name__} "
                             f"{name!r}")
        self.name = name
        self.logger = logger if logger is not None else logging.getLogger(name)
        self._bound: dict[str, Any] = dict(bound or {})

    # --- context ------------------------------------------------------------------
    def set_context(self, **fields: Any) -> None:
        _context.set_context(**fields)

    def clear_context(self, *keys: str) -> None:
        _context.clear_context(*keys)

    def get_context(self) -> dict[str, Any]:
        return {**_context.get_context(), **self._bound}

    def bind(self, **fields: Any) -> StructuredLogger:
        """A logger whose lines also carry ``fields`` as context fields."""
        return StructuredLogger(self.name, logger=self.logger, bound={**self._bound, **fields})

    # --- logging ------------------------------------------------------------------
    def isEnabledFor(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)

    def log(self, level: int, msg: Any, *args: Any, exc_info: Any = None,
            stack_info: bool = False, stacklevel: int = 1,
            extra: Mapping[str, Any] | None = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self._log(level, msg, args, exc_info, stack_info, stacklevel, extra, fields)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self._emit(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self._emit(logging.INFO, msg, args, kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.WARNING):
            self._emit(logging.WARNING, msg, args, kwargs)

    warn = warning

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.ERROR):
            self._emit(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.ERROR):
            self._emit(logging.ERROR, msg, args, {"exc_info": exc_info, **kwargs})

    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.CRITICAL):
            self._emit(logging.CRITICAL, msg, args, kwargs)

    fatal = critical

    def _emit(self, level: int, msg: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        exc_info = kwargs.pop("exc_info", None)
        stack_info = kwargs.pop("stack_info", False)
        stacklevel = kwargs.pop("stacklevel", 1)
        extra = kwargs.pop("extra", None)
        self._log(level, msg, args, exc_info, stack_info, stacklevel + 1, extra, kwargs)

    def _log(self, level: int, msg: Any, args: tuple[Any, ...], exc_info: Any,
             stack_info: bool, stacklevel: int, extra: Mapping[str, Any] | None,
             fields: Mapping[str, Any]) -> None:
        context = _context.current()
        attributes: dict[str, Any] = {}
        for source in (context, self._bound, extra or {}, fields):
            for key, value in source.items():
                attributes[field_name(str(key))] = _attribute(value)
        # Scrub once, here, so that every handler (the OTel bridge, the JSON
        # lines, stdlib's last-resort stderr, the application's own) gets the
        # scrubbed message and fields.
        text = _render(msg, args)
        if text is not None:
            msg, args = ScrubbedText(scrubber.scrub_text(text)), ()
        attributes = scrubber.scrub_mapping(attributes)
        if self._bound:  # bound fields are context fields for the JSON line
            token = _context._CONTEXT.set({**context, **self._bound})
            try:
                self.logger.log(level, msg, *args, exc_info=exc_info, stack_info=stack_info,
                                stacklevel=stacklevel + 2, extra=attributes)
            finally:
                _context._CONTEXT.reset(token)
            return
        self.logger.log(level, msg, *args, exc_info=exc_info, stack_info=stack_info,
                        stacklevel=stacklevel + 2, extra=attributes)

    def __repr__(self) -> str:
        return f"<StructuredLogger {self.name} ({logging.getLevelName(self.logger.level)})>"


