"""Warnings and errors still reach a person on stderr once the log bridge is installed.

After ``init()`` the root logger has a handler (the OTel log bridge), so
Python's last-resort stderr output never fires again: a warning such as "the
collector does not take traces" would only travel into the very OTLP stream
that is failing, and an application that configured no logging would lose its
tracebacks from the terminal (Flask, which adds its own stderr handler only
when it finds none, stops adding it too). Two handlers put that output back:

- :class:`PersonHandler` on the ``otelprod`` logger writes otelprod's WARNING
  and ERROR records when no handler of the application's own would show them;
  each condition (logger and message template) once, then at most once a
  minute with the count of repeats, so a collector that stays down does not
  flood the terminal;
- :class:`LastResortHandler` on the root logger hands every other record to
  ``logging.lastResort`` exactly when Python itself would have: no handler of
  the application's on the record's way up, and a level the last resort takes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

from otelprod import _forks

#: how long a condition stays quiet after it was said
REPEAT_AFTER_S = 60.0


class PersonHandler(logging.Handler):
    """Writes otelprod's warnings to stderr when nothing else would show them."""

    def __init__(self, ours: Callable[[logging.Handler], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._ours = ours
        self._clock = clock
        self._said: dict[tuple[str, object], tuple[float, int]] = {}
        self._said_lock = threading.Lock()
        self.last_resort: LastResortHandler | None = None  # its companion on the root logger
        _forks.register(self, after_in_child=PersonHandler._renew_lock)

    def _renew_lock(self) -> None:
        self._said_lock = threading.Lock()  # a parent thread may have held it at fork()

    def emit(self, record: logging.LogRecord) -> None:
        if self._shown_elsewhere(record):
            return
        repeats = self._due(record)
        if repeats is None:
            return
        try:
            text = self.format(record)
            if repeats:
                text += f" (said {repeats} more times in the last minute)"
            stream = sys.stderr
            if stream is not None:
                stream.write(text + "\n")
                stream.flush()
        except Exception:
            self.handleError(record)

    def _due(self, record: logging.LogRecord) -> int | None:
        """None while the condition is quiet; else the repeats suppressed since last said."""
        key = (record.name, record.msg)
        now = self._clock()
        with self._said_lock:
            last, suppressed = self._said.get(key, (None, 0))
            if last is not None and now - last < REPEAT_AFTER_S:
                self._said[key] = (last, suppressed + 1)
                return None
            self._said[key] = (now, 0)
            return suppressed

    def _shown_elsewhere(self, record: logging.LogRecord) -> bool:
        """Whether a handler of the application's, on the record's way up, takes it."""
        return any(record.levelno >= handler.level
                   for handler in _application_handlers(record, self._ours))


class LastResortHandler(logging.Handler):
    """What Python wrote to stderr before the bridge took the root logger: the
    application's records that no handler of its own takes, through
    ``logging.lastResort`` (None when the application silenced it)."""

    def __init__(self, ours: Callable[[logging.Handler], bool]) -> None:
        super().__init__(logging.NOTSET)
        self._ours = ours

    def handle(self, record: logging.LogRecord) -> bool:
        resort = logging.lastResort
        if (resort is None or record.levelno < resort.level
                or record.name == "otelprod" or record.name.startswith("otelprod.")
                or self._handled_elsewhere(record)):
            return False  # otelprod's own records are the PersonHandler's
        return bool(resort.handle(record))

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        raise NotImplementedError

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        """Whether a handler of the application's is on the record's way up: Python's
        own test for its last resort (the handlers' levels do not matter)."""
        return next(_application_handlers(record, self._ours), None) is not None


def _application_handlers(record: logging.LogRecord, ours: Callable[[logging.Handler], bool]
                          ) -> Iterator[logging.Handler]:
    """The handlers on ``record``'s way up that are the application's: not the OTel
    bridge (``ours``), not the two handlers of this module."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            if not (isinstance(handler, (PersonHandler, LastResortHandler)) or ours(handler)):
                yield handler
        logger = logger.parent if logger.propagate else None


def install(ours: Callable[[logging.Handler], bool]) -> PersonHandler:
    """Put a :class:`PersonHandler` on the ``otelprod`` logger and a
    :class:`LastResortHandler` on the root logger; ``ours`` tells our own handlers
    (the OTel bridge) from the application's."""
    handler = PersonHandler(ours)
    handler.last_resort = LastResortHandler(ours)
    logging.getLogger("otelprod").addHandler(handler)
    logging.getLogger().addHandler(handler.last_resort)
    return handler


def uninstall(handler: PersonHandler) -> None:
    logging.getLogger("otelprod").removeHandler(handler)
    if handler.last_resort is not None:
        logging.getLogger().removeHandler(handler.last_resort)
