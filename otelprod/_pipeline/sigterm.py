"""On SIGTERM, flush the telemetry first, then do what the process did without otelprod.

What a process loses when it ends without a flush is what its batch
processors hold in memory: up to ``batch_delay`` seconds of spans and log
records (and the metrics since the last export). A SIGKILL cannot be helped.
A SIGTERM, which supervisors, Kubernetes, gunicorn and uvicorn send, can: by
default it ends a Python process at once, without ``atexit``, so otelprod
puts a handler in front of whatever was there. It calls ``on_term(final)``,
then chains:

* to the previous Python handler (the application's, a server's), which
  decides what happens next; ``final`` is then False (only a flush: the
  process goes on, e.g. through a graceful shutdown that ends in ``atexit``);
* to the default action: the handler is reset and the signal raised again,
  so the process still ends by SIGTERM (its exit status says so); ``final``
  is then True (a full shutdown: nothing else will run);
* to nothing, when SIGTERM was ignored.

Servers: gunicorn's arbiter and workers install their own SIGTERM handlers
(after otelprod's when the app is imported before them, as with
``preload_app``) and end through ``sys.exit``, so ``atexit`` flushes there.
uvicorn saves the handler it finds, restores it when it has shut down
gracefully and raises the signal again: otelprod's handler then runs last,
after the application's shutdown, and flushes everything.

A SIGTERM that arrives while a shutdown runs in the main thread waits for
it to finish (:func:`shutting_down`), then chains as above.

Like every Python signal handler, this one runs in the main thread, between
two bytecodes: a main thread blocked in one long C call (``time.sleep(60)``,
a lock without a timeout) runs it only when that call returns, and so does a
main thread that was just entering such a call when the signal came (a race
in CPython itself). Event loops and servers wake up often enough; a script
that sleeps for minutes does not end on SIGTERM until it wakes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class _Handler:
    def __init__(self, on_term: Callable[[bool], object], previous: Any) -> None:
        self.on_term = on_term
        self.previous = previous
        self.pending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        busy = _busy
        if busy is not None:
            if busy == threading.get_ident():  # the shutdown runs right under us
                self.pending = True
                return
            _idle.wait(_busy_wait_s)  # another thread shuts down: let it finish
        else:
            try:
                self.on_term(self.final)
            except Exception:  # the signal must still do what it did
                pass
        self.chain(signum, frame)

    @property
    def final(self) -> bool:
        """Whether the process ends with this signal (no handler of its own follows)."""
        return not callable(self.previous) and self.previous != signal.SIG_IGN

    def chain(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # SIG_DFL, or a handler not set from Python
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


_installed: _Handler | None = None
_busy: int | None = None  # the thread running a shutdown
_busy_wait_s = 30.0
_idle = threading.Event()
_idle.set()


def install(on_term: Callable[[bool], object]) -> bool:
    """Put the flushing handler in front of SIGTERM's current one; False when it
    cannot (not the main thread, or no SIGTERM on this platform)."""
    global _installed
    if not hasattr(signal, "SIGTERM") or \
            threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if isinstance(current, _Handler):
        current.on_term = on_term
        _installed = current
        return True
    handler = _Handler(on_term, current)
    try:
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return False
    _installed = handler
    return True


def uninstall() -> None:
    """Put the previous handler back, if ours is still the current one."""
    global _installed
    handler = _installed
    _installed = None
    if handler is None or threading.current_thread() is not threading.main_thread():
        return
    previous = handler.previous
    try:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous)
    except (ValueError, OSError, TypeError):
        pass


@contextmanager
def shutting_down(wait_s: float) -> Iterator[None]:
    """Mark a shutdown in progress: a SIGTERM meanwhile chains once it is over
    (waiting at most ``wait_s`` when the shutdown runs in another thread)."""
    global _busy, _busy_wait_s
    handler = _installed
    if _busy is not None:  # nested: the outer one settles it
        yield
        return
    _busy, _busy_wait_s = threading.get_ident(), wait_s
    _idle.clear()
    try:
        yield
    finally:
        _busy = None
        _idle.set()
        if handler is not None and handler.pending:
            handler.pending = False
            handler.chain(signal.SIGTERM, None)
