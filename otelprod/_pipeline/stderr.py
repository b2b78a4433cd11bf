"""otelprod's own warnings reach a person: on stderr, once per condition.

After ``init()`` the root logger has a handler (the OTel log bridge), so
Python's last-resort stderr output never fires again, and a warning such as
"the collector does not take traces" would only travel into the very OTLP
stream that is failing. This handler sits on the ``otelprod`` logger and
writes otelprod's WARNING and ERROR records to stderr when no handler of the
application's own would show them. Each condition (logger and message
template) is said once, then at most once a minute with the count of repeats
in between, so a collector that stays down does not flood the terminal.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

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
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for handler in logger.handlers:
                if handler is not self and not self._ours(handler) \
                        and record.levelno >= handler.level:
                    return True
            logger = logger.parent if logger.propagate else None
        return False


def install(ours: Callable[[logging.Handler], bool]) -> PersonHandler:
    """Put a :class:`PersonHandler` on the ``otelprod`` logger; ``ours`` tells our own
    handlers (the OTel bridge) from the application's."""
    handler = PersonHandler(ours)
    logging.getLogger("otelprod").addHandler(handler)
    return handler


def uninstall(handler: PersonHandler) -> None:
    logging.getLogger("otelprod").removeHandler(handler)
