"""A small bounded pool of *daemon* threads for running health checks.

``concurrent.futures.ThreadPoolExecutor`` joins its workers at interpreter
exit, so one check stuck in a socket read would hang the process's shutdown.
Health checks may hang by definition; these workers never hold the exit up.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from otelprod import _forks

T = TypeVar("T")

class DaemonPool:
    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers: expected an int >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = (
            queue.SimpleQueue())
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # workers waiting for work
        self._pending = 0  # work queued and not taken yet
        _forks.register(self, after_in_child=DaemonPool._after_fork)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._queue.put((future, fn))
            self._pending += 1
            spawn = self._pending > self._idle and self._threads < self.max_workers
            if spawn:
                self._threads += 1
        if spawn:
            try:
                threading.Thread(target=self._work, daemon=True,
                                 name=f"{self.name}-{self._threads}").start()
            except RuntimeError:  # the interpreter exits (3.12 starts no thread): no worker
                with self._lock:  # more; the work waits for one, or for its timeout
                    self._threads -= 1
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            future, fn = self._queue.get()
            with self._lock:
                self._idle -= 1
                self._pending -= 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # the future carries it to the waiter
                future.set_exception(exc)

    def _after_fork(self) -> None:
        # the workers did not survive the fork; queued work belongs to the parent
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = self._idle = self._pending = 0

