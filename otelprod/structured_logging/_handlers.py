"""Non-blocking JSON output: format in the caller, write in a background thread.

The caller formats the line (so the current span and context are its own)
and appends it to a bounded buffer; one writer thread does the slow I/O to
stdout and the rotating file, in batches. A full buffer drops the line and
counts it rather than blocking the application. :func:`flush_logging` waits until
every line buffered so far is written; at exit (and from ``otelprod.shutdown()``)
:func:`shutdown_logging` drains the buffer within a deadline, and lines
logged after that are written synchronously, so none is lost. A forked
child gets a fresh buffer and writer thread; no write is in progress at the fork.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any

from otelprod.errors import ConfigurationError
from otelprod.structured_logging._json import JsonFormatter

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_INTERVAL = 0.05
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Flush:
    """A marker put on the queue: the writer sets ``done`` when it gets there."""

    def __init__(self) -> None:
        self.done = threading.Event()


class _Target:
    """Where lines go, a batch at a time: one write (and one flush) per batch."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        with self.lock:
            self.stream.write("".join(lines))
            self.stream.flush()

    def flush(self) -> None:
        with self.lock:
            self.stream.flush()

    def close(self) -> None:
        self.flush()


class _RotatingFile(_Target):
    """A file that rotates at ``max_bytes`` (the stdlib handler does the renaming)."""

    def __init__(self, path: Path, max_bytes: int, backup_count: int) -> None:
        self.handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        super().__init__(self._stream())
        self.max_bytes = max_bytes
        self.size = self.stream.tell()

    def _stream(self) -> IO[str]:
        stream = self.handler.stream
        if stream is None:  # delay=False opens it at once; this is for the type checker
            stream = self.handler._open()
        return stream

    def write(self, lines: list[str]) -> None:
        with self.lock:
            pending: list[str] = []
            for line in lines:
                n = len(line.encode("utf-8")) if not line.isascii() else len(line)
                if self.max_bytes > 0 and self.size > 0 and self.size + n > self.max_bytes:
                    self.stream.write("".join(pending))
                    pending = []
                    self.handler.doRollover()
                    self.stream = self._stream()
                    self.size = 0
                pending.append(line)
                self.size += n
            self.stream.write("".join(pending))
            self.stream.flush()

    def close(self) -> None:
        with self.lock:
            self.handler.close()


def write_lines(targets: list[_Target], lines: list[str]) -> None:
    for target in targets:
        try:
            target.write(lines)
        except Exception:  # a full disk must not kill the writer, nor reach the caller
            pass


class _Writer:
    """The background thread: drains the buffer in batches to the output handlers.

    After each batch it pauses ``interval`` seconds (unless a flush or stop
    hurries it), so a busy application wakes it a few times a second
    instead of once per line.
    """

    def __init__(self, targets: list[_Target], interval: float) -> None:
        self.targets = targets
        self.interval = interval
        self.buffer: deque[Any] = deque()
        self.wake = threading.Event()
        self.hurry = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="otelprod-log-writer",
                                       daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and not self.stopping

    def _run(self) -> None:
        buffer = self.buffer
        while True:
            self.wake.wait()
            self.wake.clear()
            batch: list[str] = []
            while buffer:
                item = buffer.popleft()
                if isinstance(item, _Flush):
                    self._write(batch)
                    batch = []
                    item.done.set()
                    continue
                batch.append(item)
                if len(batch) >= 1000:
                    self._write(batch)
                    batch = []
            self._write(batch)
            if self.stopping:
                self._flush_targets()
                return
            if self.hurry.wait(self.interval):
                self.hurry.clear()

    def _write(self, batch: list[str]) -> None:
        if batch:
            write_lines(self.targets, batch)

    def _flush_targets(self) -> None:
        for target in self.targets:
            try:
                target.flush()
            except Exception:
                pass

    def flush(self, timeout: float) -> bool:
        marker = _Flush()
        self.buffer.append(marker)
        self.hurry.set()
        self.wake.set()
        return marker.done.wait(timeout)

    def stop(self, timeout: float) -> bool:
        self.stopping = True
        self.hurry.set()
        self.wake.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()


class JsonQueueHandler(logging.Handler):
    """Formats records as JSON lines in the caller and queues them for the writer.

    Appending to the buffer is the caller's only cost beyond formatting: no
    lock is taken, no I/O is waited for.
    """

    def __init__(self, targets: list[_Target], queue_size: int,
                 interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.targets = targets
        self.queue_size = queue_size
        self.interval = interval
        self.dropped = 0
        self._held: list[_Target] = []
        self._writer: _Writer | None = _Writer(targets, interval)

    def handle(self, record: logging.LogRecord) -> Any:
        # No handler lock: the buffer is thread-safe and formatting is reentrant.
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):
            record = rv
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            writer = self._writer
            if writer is None or not writer.running:  # after shutdown: synchronously
                write_lines(self.targets, [line])
                return
            if len(writer.buffer) >= self.queue_size:
                self.dropped += 1  # never block the application on slow output
                return
            writer.buffer.append(line)
            if not writer.wake.is_set():
                writer.wake.set()
        except Exception:
            self.handleError(record)

    def flush_queue(self, timeout: float) -> bool:
        """Wait until every line queued so far is written (and the files flushed)."""
        writer = self._writer
        if writer is None or not writer.running:
            for target in self.targets:
                target.flush()
            return True
        return writer.flush(timeout)

    def stop(self, timeout: float) -> bool:
        writer, self._writer = self._writer, None
        ok = writer.stop(timeout) if writer is not None else True
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

    def _before_fork(self) -> None:
        # Hold the output locks across fork(), so no write is half done in the child.
        self._held = [t for t in self.targets if t.lock.acquire(timeout=1.0)]

    def _after_fork_in_parent(self) -> None:
        for target in self._held:
            target.lock.release()
        self._held = []

    def _after_fork(self) -> None:
        for target in self.targets:
            target.lock = threading.Lock()
        self._held = []
        # The parent's writer thread does not exist here: a fresh buffer and thread.
        if self._writer is not None:
            self._writer = _Writer(self.targets, self.interval)


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
    targets: list[_Target] = []
    if console:
        targets.append(_Target(stream if stream is not None else sys.stdout))
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        targets.append(_RotatingFile(path, max_bytes, backup_count))
    handler = JsonQueueHandler(targets, queue_size)
    target_logger = logger if logger is not None else logging.getLogger()
    with _lock:
        previous, previous_logger = _handler, _logger
        _handler, _logger = handler, target_logger
        if not _hooks_installed:
            atexit.register(_at_exit)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                                    after_in_child=_after_fork_in_child)
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


def _before_fork() -> None:
    handler = _handler
    if handler is not None:
        try:
            handler._before_fork()
        except Exception:
            pass


def _after_fork_in_parent() -> None:
    handler = _handler
    if handler is not None:
        try:
            handler._after_fork_in_parent()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    handler = _handler
    if handler is not None:
        try:
            handler._after_fork()
        except Exception:
            pass
