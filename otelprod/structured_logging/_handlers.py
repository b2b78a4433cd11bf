"""Non-blocking JSON output: format in the caller, write in a background thread.

The caller formats the line (so the current span and context are its own)
and puts it on a bounded queue; one writer thread does the slow I/O to
stdout and the rotating file. A full queue drops the line and counts it
rather than blocking the application. :func:`flush_logging` waits until
every line queued so far is written; at exit (and from ``otelprod.shutdown()``)
:func:`shutdown_logging` drains the queue within a deadline, and lines
logged after that are written synchronously, so none is lost. A forked
child gets a fresh queue and writer thread.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import sys
import threading
from pathlib import Path
from typing import IO, Any

from otelprod.errors import ConfigurationError
from otelprod.structured_logging._json import JsonFormatter

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Flush:
    """A marker put on the queue: the writer sets ``done`` when it gets there."""

    def __init__(self) -> None:
        self.done = threading.Event()


class _Writer(logging.handlers.QueueListener):
    """The background thread that writes queued lines to the real handlers."""

    def __init__(self, q: queue.Queue[Any], *handlers: logging.Handler) -> None:
        super().__init__(q, *handlers, respect_handler_level=True)
        self._q = q

    def start(self) -> None:
        self._thread = thread = threading.Thread(
            target=self._monitor, name="otelprod-log-writer",  # type: ignore[attr-defined]
            daemon=True)
        thread.start()

    def handle(self, record: Any) -> None:
        if isinstance(record, _Flush):
            for handler in self.handlers:
                try:
                    handler.flush()
                except Exception:
                    pass
            record.done.set()
            return
        super().handle(record)

    def stop_within(self, timeout: float) -> bool:
        """Drain the queue and stop; False if the writer did not finish in time."""
        thread = self._thread
        if thread is None:
            return True
        try:
            self._q.put(None, timeout=timeout)  # QueueListener's sentinel
        except queue.Full:
            return False
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class JsonQueueHandler(logging.handlers.QueueHandler):
    """Formats records as JSON lines in the caller and queues them for the writer."""

    def __init__(self, targets: list[logging.Handler], queue_size: int) -> None:
        self._queue_size = queue_size
        self._q: queue.Queue[Any] = queue.Queue(queue_size)
        super().__init__(self._q)
        self.setFormatter(JsonFormatter())
        self.targets = targets
        self.dropped = 0
        self._writer: _Writer | None = None
        self._start_writer()

    def _start_writer(self) -> None:
        self._writer = _Writer(self._q, *self.targets)
        self._writer.start()

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self._q.put_nowait(record)
        except queue.Full:
            self.dropped += 1  # never block the application on slow output

    def emit(self, record: logging.LogRecord) -> None:
        writer = self._writer
        if writer is None or not writer.running:  # after shutdown: write synchronously
            try:
                line = self.prepare(record)
                for target in self.targets:
                    if line.levelno >= target.level:
                        target.handle(line)
            except Exception:
                self.handleError(record)
            return
        super().emit(record)

    def flush_queue(self, timeout: float) -> bool:
        """Wait until every line queued so far is written (and the files flushed)."""
        writer = self._writer
        if writer is None or not writer.running:
            for target in self.targets:
                target.flush()
            return True
        marker = _Flush()
        try:
            self._q.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def stop(self, timeout: float) -> bool:
        writer, self._writer = self._writer, None
        ok = writer.stop_within(timeout) if writer is not None else True
        for target in self.targets:
            try:
                target.flush()
            except Exception:
                ok = False
        return ok

    def close(self) -> None:
        self.stop(1.0)
        for target in self.targets:
            target.close()
        super().close()

    def _after_fork(self) -> None:
        # The parent's writer thread does not exist here: a fresh queue and thread.
        self._q = queue.Queue(self._queue_size)
        self.queue = self._q
        self._start_writer()


_lock = threading.Lock()
_handler: JsonQueueHandler | None = None
_logger: logging.Logger | None = None
_hooks_installed = False


def _parse_level(level: int | str) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.strip().upper() in (*_LEVELS, "WARN", "FATAL"):
        name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level.strip().upper(),
                                                             level.strip().upper())
        return int(logging.getLevelName(name))
    raise ConfigurationError(
        f"level: must be one of {', '.join(_LEVELS)} or an int, "
        f"got {type(level).__name__} {level!r}")


def setup_json_logging(
    level: int | str = "INFO",
    log_file: str | os.PathLike[str] | None = None,
    *,
    console: bool = True,
    stream: IO[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backup_count: int = DEFAULT_BACKUP_COUNT,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    logger: logging.Logger | None = None,
) -> JsonQueueHandler:
    """Write JSON lines to stdout (``console``) and/or a rotating ``log_file``.

    Installs one non-blocking handler on the root logger (or ``logger``)
    and sets its level; calling again replaces the previous setup. The
    file's directory is created; the file rotates at ``max_bytes`` keeping
    ``backup_count`` old files.
    """
    global _handler, _logger, _hooks_installed
    numeric = _parse_level(level)
    if queue_size < 1:
        raise ConfigurationError(f"queue_size: must be >= 1, got {queue_size!r}")
    targets: list[logging.Handler] = []
    plain = logging.Formatter("%(message)s")
    if console:
        out = logging.StreamHandler(stream if stream is not None else sys.stdout)
        out.setFormatter(plain)
        targets.append(out)
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        rotating.setFormatter(plain)
        targets.append(rotating)
    handler = JsonQueueHandler(targets, queue_size)
    target_logger = logger if logger is not None else logging.getLogger()
    with _lock:
        previous, previous_logger = _handler, _logger
        _handler, _logger = handler, target_logger
        if not _hooks_installed:
            atexit.register(_at_exit)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_after_fork_in_child)
            _hooks_installed = True
    if previous is not None and previous_logger is not None:
        previous_logger.removeHandler(previous)
        previous.close()
    target_logger.addHandler(handler)
    target_logger.setLevel(numeric)
    return handler


def get_json_handler() -> JsonQueueHandler | None:
    """The handler :func:`setup_json_logging` installed, if any."""
    return _handler


def flush_logging(timeout: float = 5.0) -> bool:
    """Wait until every JSON line logged so far is written; False on timeout."""
    handler = _handler
    return True if handler is None else handler.flush_queue(timeout)


def shutdown_logging(timeout: float = 5.0) -> bool:
    """Drain the queue and stop the writer; later lines are written synchronously.

    ``otelprod.shutdown()`` calls it; it also runs at exit.
    """
    handler = _handler
    return True if handler is None else handler.stop(timeout)


def _at_exit() -> None:
    try:
        shutdown_logging(5.0)
    except Exception:
        pass


def _after_fork_in_child() -> None:
    handler = _handler
    if handler is not None and handler._writer is not None:
        try:
            handler._after_fork()
        except Exception:
            pass
