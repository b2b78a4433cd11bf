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

from otelprod._scrub import REDACTED, scrubber
from otelprod.structured_logging import _context
from otelprod.structured_logging._context import RESERVED
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


def _clean_fields(sources: tuple[Mapping[str, Any], ...]) -> dict[str, Any]:
    """The record attributes of ``sources`` (later ones win): renamed where they
    would clobber the record's own, made JSON/OTel-ready by :func:`_attribute`,
    and scrubbed as :meth:`Scrubber.scrub_mapping` would, in one pass.

    Plain strings and numbers, nearly every field, take the short way: a key
    decision and a text scrub, both cached by the scrubber.
    """
    out: dict[str, Any] = {}
    sensitive = scrubber.is_sensitive_key
    scrub_text = scrubber.scrub_text
    for source in sources:
        for key, value in source.items():
            name = str(key)
            if name in RESERVED:
                name += "_"
            kind = type(value)
            if kind is str:
                out[name] = REDACTED if value and sensitive(name) else scrub_text(value)
            elif kind is int or kind is float or kind is bool:
                out[name] = REDACTED if sensitive(name) else value
            elif value is None:
                out[name] = None
            else:
                value = _attribute(value)
                out[name] = REDACTED if value != "" and sensitive(name) \
                    else scrubber.scrub(value)
    return out


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
            fields.update(exc_info=exc_info, stack_info=stack_info, stacklevel=stacklevel,
                          extra=extra)
            self._log(level, msg, args, fields)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self._log(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self._log(logging.INFO, msg, args, kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.WARNING):
            self._log(logging.WARNING, msg, args, kwargs)

    warn = warning

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.ERROR):
            self._log(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.ERROR):
            kwargs["exc_info"] = exc_info
            self._log(logging.ERROR, msg, args, kwargs)

    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.CRITICAL):
            self._log(logging.CRITICAL, msg, args, kwargs)

    fatal = critical

    def _log(self, level: int, msg: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Log ``msg % args`` with the fields in ``kwargs`` (the logging keywords of
        ``Logger.log`` taken out of it). Called by the method the caller called, so
        ``stacklevel`` counts two frames of ours."""
        exc_info = kwargs.pop("exc_info", None)
        stack_info = kwargs.pop("stack_info", False)
        stacklevel = kwargs.pop("stacklevel", 1) + 2
        extra = kwargs.pop("extra", None)
        context = _context.current()
        # Scrub once, here, so that every handler (the OTel bridge, the JSON
        # lines, stdlib's last-resort stderr, the application's own) gets the
        # scrubbed message and fields.
        attributes = _clean_fields((context, self._bound, extra, kwargs) if extra
                                   else (context, self._bound, kwargs))
        text = _render(msg, args)
        if text is not None:
            msg, args = ScrubbedText(scrubber.scrub_text(text)), ()
        if self._bound:  # bound fields are context fields for the JSON line
            token = _context._CONTEXT.set({**context, **self._bound})
            try:
                self.logger.log(level, msg, *args, exc_info=exc_info, stack_info=stack_info,
                                stacklevel=stacklevel, extra=attributes)
            finally:
                _context._CONTEXT.reset(token)
            return
        self.logger.log(level, msg, *args, exc_info=exc_info, stack_info=stack_info,
                        stacklevel=stacklevel, extra=attributes)

    def __repr__(self) -> str:
        return f"<StructuredLogger {self.name} ({logging.getLevelName(self.logger.level)})>"


