"""Non-blocking JSON output: capture in the caller, format and write in a background thread.

The stdlib's own pair does it: a :class:`logging.handlers.QueueHandler` takes
in the caller what the line needs from there (the message, the current span
and context, a copy of the record's attributes: see
:meth:`JsonFormatter.capture`) and queues it; a
:class:`logging.handlers.QueueListener` thread formats the JSON line and hands
it to the output handlers (a ``StreamHandler`` for stdout, a
``RotatingFileHandler`` for the file), which do the slow I/O. A full queue drops the line and counts
it rather than blocking the application. :func:`flush_logging` waits until
every line queued so far is written; at exit (and from ``otelprod.shutdown()``)
:func:`shutdown_logging` drains the queue within a deadline, and lines logged
after that are written synchronously, so none is lost. Across a fork the
output handlers' locks are held, so no write is half done in the child, which
gets a fresh queue and listener thread.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from otelprod import _forks
from otelprod._compat import stdlib
from otelprod.errors import ConfigurationError
from otelprod.structured_logging._json import JsonFormatter

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_INTERVAL = 0.05
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Flush:
    """A marker put on the queue: the listener sets ``done`` when it gets there."""

    def __init__(self) -> None:
        self.done = threading.Event()


def _as_record(line: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": line})


#: at most this many queued lines are formatted and written together
_BATCH = 4096
#: a write is at most this many characters (unless one line is longer). Few, large
#: writes: each one lets go of the GIL, and while the application's threads are busy
#: logging, getting it back takes the writer a whole switch interval (5 ms).
_CHUNK_CHARS = 1024 * 1024


_NOTHING = object()


class _Batch(list[Any]):
    """Queued items the listener took off the queue together."""


class _Listener(logging.handlers.QueueListener):
    """The stdlib's listener, taking captured records and flush markers off the queue.

    It takes whatever is queued (up to ``batch`` items), formats the
    lines and writes them in one go per output. When the queue runs empty it
    pauses ``interval`` seconds (unless a flush or stop hurries it) before
    waiting for the next line, so a busy application wakes it a few times a
    second instead of once per line.
    """

    def __init__(self, lines: queue.SimpleQueue[Any], *handlers: logging.Handler,
                 render: Callable[[Any], str], interval: float, batch: int = _BATCH) -> None:
        super().__init__(lines, *handlers)
        self.lines = lines
        self.render = render
        self.batch = batch
        self.interval = interval
        self.hurry = threading.Event()
        self._pending: Any = _NOTHING  # a marker met while taking a batch: next
        self._stop = stdlib.queue_listener_sentinel(self)
        rotating = [h.maxBytes for h in handlers
                    if isinstance(h, logging.handlers.RotatingFileHandler) and h.maxBytes > 0]
        # a file rolls over before a write that would pass maxBytes: keep writes well under
        self.chunk_chars = min([_CHUNK_CHARS, *(m // 2 for m in rotating)])

    def _next(self, block: bool) -> Any:
        pending, self._pending = self._pending, _NOTHING
        if pending is not _NOTHING:
            return pending
        try:
            return self.lines.get_nowait()
        except queue.Empty:
            pass
        if self.hurry.wait(self.interval):
            self.hurry.clear()
        return self.lines.get(block)

    def dequeue(self, block: bool) -> Any:
        first = self._next(block)
        if first is self._stop or isinstance(first, _Flush):
            return first
        batch = _Batch((first,))
        take = self.lines.get_nowait
        while len(batch) < self.batch:
            try:
                item = take()
            except queue.Empty:
                break
            if item is self._stop or isinstance(item, _Flush):
                self._pending = item  # after this batch is written
                break
            batch.append(item)
        return batch

    def handle(self, record: Any) -> None:
        if isinstance(record, _Flush):
            for handler in self.handlers:
                try:
                    handler.flush()
                except Exception:
                    pass
            record.done.set()
            return
        chunk: list[str] = []
        size = 0
        for line in map(self.render, record):
            if chunk and size + len(line) > self.chunk_chars:
                super().handle(_as_record("\n".join(chunk)))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            super().handle(_as_record("\n".join(chunk)))


class JsonQueueHandler(logging.handlers.QueueHandler):
    """Queues what a JSON line needs from the caller; the listener formats and writes it.

    The caller takes no handler lock, formats nothing and waits for no I/O.
    ``targets`` are the output handlers. With a formatter other than a
    :class:`JsonFormatter` set, or while the writer is behind (half of
    ``queue_size`` waiting), lines are formatted in the caller. A full queue
    drops the line and counts it in ``dropped``.
    """

    def __init__(self, targets: list[logging.Handler], queue_size: int,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self.queue: queue.SimpleQueue[Any]
        super().__init__(queue.SimpleQueue())
        self._json = JsonFormatter()
        self.setFormatter(self._json)
        self.targets = targets
        self.queue_size = queue_size
        self.interval = interval
        self.dropped = 0
        self._held: list[Any] = []
        self._listener: _Listener | None = self._start_listener()
        _forks.register(self, before=JsonQueueHandler._before_fork,
                        after_in_parent=JsonQueueHandler._after_fork_in_parent,
                        after_in_child=JsonQueueHandler._after_fork_in_child)

    def _start_listener(self) -> _Listener:
        # besides the queue, the writer holds a quarter of queue_size at most
        listener = _Listener(self.queue, *self.targets, render=self.render,
                             interval=self.interval,
                             batch=max(1, min(_BATCH, self.queue_size // 4)))
        listener.start()
        return listener

    def handle(self, record: logging.LogRecord) -> Any:
        # No handler lock: the queue is thread-safe and formatting is reentrant.
        rv = self.filter(record) if self.filters else True
        if isinstance(rv, logging.LogRecord):
            record = rv
        if rv:
            self.emit(record)
        return rv

    def prepare(self, record: logging.LogRecord) -> Any:
        formatter = self.formatter
        if type(formatter) is JsonFormatter:
            return formatter.capture(record)  # the listener formats it
        return self.format(record)  # another formatter: the line itself

    def render(self, item: Any) -> str:
        """The line of a queued item (in the listener's thread); never raises."""
        if type(item) is str:
            return item
        formatter = self.formatter
        if not isinstance(formatter, JsonFormatter):  # replaced since the capture
            formatter = self._json
        try:
            return formatter.format_captured(item)
        except Exception:  # the listener thread must live on: say what could not be written
            record = item[0]
            return json.dumps({"timestamp": None, "level": record.get("levelname"),
                               "message": "otelprod: this log line could not be formatted",
                               "logger": record.get("name")})

    def emit(self, record: logging.LogRecord) -> None:
        try:
            listener = self._listener
            if listener is None:  # after shutdown: synchronously
                self._write_now(self.format(record))
                return
            depth = self.queue.qsize()
            if depth < self.queue_size // 2:
                self.queue.put_nowait(self.prepare(record))
            elif depth < self.queue_size:
                # The writer is behind (it competes for the GIL with every logging
                # thread): the caller formats its line, leaving it only the writing.
                self.queue.put_nowait(self.format(record))
            else:
                self.dropped += 1  # never block the application on slow output
        except Exception:
            self.handleError(record)

    def _write_now(self, line: str) -> None:
        for target in self.targets:
            try:
                target.handle(_as_record(line))
            except Exception:  # a full disk must not reach the caller
                pass

    def _flush_targets(self) -> bool:
        ok = True
        for target in self.targets:
            try:
                target.flush()
            except Exception:
                ok = False
        return ok

    def flush_queue(self, timeout: float) -> bool:
        """Wait until every line queued so far is written (and the outputs flushed)."""
        if self._listener is None:
            return self._flush_targets()
        return self._drain(self._listener, timeout)

    def _drain(self, listener: _Listener, timeout: float, *, then_stop: bool = False) -> bool:
        marker = _Flush()
        self.queue.put_nowait(marker)
        if then_stop:
            listener.enqueue_sentinel()  # after the marker: the thread ends once it is done
        listener.hurry.set()
        return marker.done.wait(timeout)

    def stop(self, timeout: float) -> bool:
        """Write what is queued (within ``timeout``) and stop the listener; lines
        logged from now on are written synchronously."""
        listener, self._listener = self._listener, None
        ok = True
        if listener is not None:
            ok = self._drain(listener, timeout, then_stop=True)
        return self._flush_targets() and ok

    def close(self) -> None:
        self.stop(1.0)
        for target in self.targets:
            target.close()
        super().close()

    def _before_fork(self) -> None:
        # Hold the outputs' locks across fork(), so no write is half done in the child.
        self._held = [t.lock for t in self.targets
                      if t.lock is not None and t.lock.acquire(timeout=1.0)]

    def _after_fork_in_parent(self) -> None:
        for lock in self._held:
            lock.release()
        self._held = []

    def _after_fork_in_child(self) -> None:
        # logging renewed the outputs' locks already; the parent's listener thread
        # does not exist here: a fresh queue and listener.
        self._held = []
        if self._listener is not None:
            self.queue = queue.SimpleQueue()
            self._listener = self._start_listener()


_lock = threading.Lock()
_handler: JsonQueueHandler | None = None
_logger: logging.Logger | None = None
_atexit_registered = False


#: names logging also knows a level by -> its canonical name
LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}


def level_name(text: str) -> str:
    """``text`` as a canonical level name: stripped, upper case, aliases resolved."""
    name = text.strip().upper()
    return LEVEL_ALIASES.get(name, name)


def _parse_level(level: int | str) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level_name(level) in _LEVELS:
        return int(logging.getLevelName(level_name(level)))
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
    global _handler, _logger, _atexit_registered
    numeric = _parse_level(level)
    problems = [f"{key}: must be an int >= {low}, got {type(value).__name__} {value!r}"
                for key, value, low in (("queue_size", queue_size, 1), ("max_bytes", max_bytes, 0),
                                        ("backup_count", backup_count, 0))
                if isinstance(value, bool) or not isinstance(value, int) or value < low]
    if log_file is not None and not (isinstance(log_file, (str, os.PathLike)) and str(log_file)):
        problems.append(f"log_file: must be a file path (str or os.PathLike) or None, got "
                        f"{type(log_file).__name__} {log_file!r}")
    if not isinstance(console, bool):
        problems.append(f"console: must be True or False, got {type(console).__name__} "
                        f"{console!r}")
    if problems:
        raise ConfigurationError(problems)
    targets: list[logging.Handler] = []
    if console:
        targets.append(logging.StreamHandler(stream if stream is not None else sys.stdout))
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        targets.append(logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"))
    handler = JsonQueueHandler(targets, queue_size)
    target_logger = logger if logger is not None else logging.getLogger()
    with _lock:
        previous, previous_logger = _handler, _logger
        _handler, _logger = handler, target_logger
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
    if previous is not None and previous_logger is not None:
        previous_logger.removeHandler(previous)
        previous.close()
    target_logger.addHandler(handler)
    target_logger.setLevel(numeric)
    return handler


def get_json_handler() -> JsonQueueHandler | None:
    """The handler :func:`setup_json_logging` installed, if any."""
    return _handler


def _check_timeout(timeout: Any) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 <= timeout < float("inf"):
        raise ValueError(f"timeout: expected a finite number of seconds >= 0, got "
                         f"{type(timeout).__name__} {timeout!r}")


def flush_logging(timeout: float = 5.0) -> bool:
    """Wait until every JSON line logged so far is written; False on timeout."""
    _check_timeout(timeout)
    handler = _handler
    return True if handler is None else handler.flush_queue(timeout)


def shutdown_logging(timeout: float = 5.0) -> bool:
    """Drain the queue and stop the writer; later lines are written synchronously.

    ``otelprod.shutdown()`` calls it; it also runs at exit.
    """
    _check_timeout(timeout)
    handler = _handler
    return True if handler is None else handler.stop(timeout)


def _at_exit() -> None:
    try:
        shutdown_logging(5.0)
    except Exception:
        pass
