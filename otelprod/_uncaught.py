"""Uncaught exceptions become telemetry, then go where they went before.

``init()`` hooks the four places an exception can end up uncaught:
``sys.excepthook`` (the main thread), ``threading.excepthook`` (a thread), the
exception handler of every asyncio event loop (a task whose exception nobody
retrieved, a failing callback) and ``sys.unraisablehook`` (an exception in a
finalizer or a ``__del__``). Each one, before handing the exception to the hook
that was there before (always called, whatever happens here):

* sends a log record through the OTLP log bridge, on the ``otelprod.uncaught``
  logger: severity FATAL for the main thread, ERROR otherwise, with
  ``exception.type``, ``exception.message``, ``exception.stacktrace`` and the
  trace and span ids of the span the exception ended (found by
  ``_pipeline/failed_spans.py``, since every span it passed through has ended
  by now), or of the span still active, which then gets status ERROR;
* counts it in ``errors.handled`` with ``error.severity=critical`` and
  ``error.context`` saying where (``uncaught.main_thread``, …);
* for the main thread, raises a CRITICAL alert.

The main thread's record is emitted before the interpreter runs the atexit
hooks, so otelprod's own atexit flush sends it. Records leave through the log
pipeline's scrubbing like every other. The logger does not propagate: the
previous hook prints the traceback, the application's handlers need not print
it twice, and asyncio's own "Task exception was never retrieved" record for an
exception reported here does not reach the bridge a second time.

asyncio: the hook wraps ``asyncio.BaseEventLoop.call_exception_handler``, so it
sees every loop built on it, created before or after ``init()``, and whatever
handler a loop has (``loop.set_exception_handler`` replaces a handler, not this
method). Loops of other implementations (uvloop) are not covered.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otelprod import semconv
from otelprod._pipeline.failed_spans import span_context_of, watch
from otelprod._pipeline.providers import Pipeline
from otelprod.error_handling import ErrorSeverity, error_handler
from otelprod.monitoring import AlertSeverity, monitoring_system

LOGGER_NAME = "otelprod.uncaught"
_log = logging.getLogger("otelprod.bootstrap")
#: set on an exception once reported, so a second report (asyncio's own log record) is skipped
_REPORTED = "__otelprod_reported__"


class UncaughtHooks:
    """The installed hooks and what they chain to; ``uninstall()`` puts the previous back."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.logger = logging.getLogger(LOGGER_NAME)
        self.handler: logging.Handler = pipeline.log_handler or logging.NullHandler()
        self.active = False
        self._busy = threading.local()
        self._previous_sys: Callable[..., Any] = sys.excepthook
        self._previous_threading: Callable[..., Any] = threading.excepthook
        self._previous_unraisable: Callable[..., Any] = sys.unraisablehook
        self._previous_asyncio: Callable[..., Any] = asyncio.BaseEventLoop.call_exception_handler
        watch(pipeline.tracer_provider)

    # --- installing -----------------------------------------------------------------------
    def install(self) -> None:
        self.logger.propagate = False
        self.logger.setLevel(logging.ERROR)
        self.logger.addHandler(self.handler)
        self.handler.addFilter(_not_reported_twice)
        sys.excepthook = self._sys_hook
        threading.excepthook = self._threading_hook
        sys.unraisablehook = self._unraisable_hook
        asyncio.BaseEventLoop.call_exception_handler = _asyncio_hook(self)  # type: ignore[method-assign]
        self.active = True

    def uninstall(self) -> None:
        """Put the previous hooks back where ours are still in place; a hook installed over
        ours keeps calling ours, which then only chains."""
        self.active = False
        if sys.excepthook == self._sys_hook:
            sys.excepthook = self._previous_sys
        if threading.excepthook == self._threading_hook:
            threading.excepthook = self._previous_threading
        if sys.unraisablehook == self._unraisable_hook:
            sys.unraisablehook = self._previous_unraisable
        if getattr(asyncio.BaseEventLoop.call_exception_handler, "_otelprod_hooks", None) is self:
            asyncio.BaseEventLoop.call_exception_handler = (  # type: ignore[method-assign]
                self._previous_asyncio)
        self.logger.removeHandler(self.handler)
        self.handler.removeFilter(_not_reported_twice)

    # --- the hooks: report, then always chain ----------------------------------------------
    def _sys_hook(self, exc_type: type[BaseException], exc: BaseException,
                  tb: TracebackType | None) -> None:
        try:
            if not isinstance(exc, KeyboardInterrupt):  # Ctrl-C is no crash
                self.report(exc, semconv.UncaughtContext.MAIN_THREAD, fatal=True)
        finally:
            self._previous_sys(exc_type, exc, tb)

    def _threading_hook(self, args: Any) -> None:
        try:
            if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
                thread = args.thread
                self.report(args.exc_value, semconv.UncaughtContext.THREAD, fatal=False,
                            thread=(thread.name, thread.ident) if thread is not None else None)
        finally:
            self._previous_threading(args)

    def _unraisable_hook(self, unraisable: Any) -> None:
        try:
            exc = unraisable.exc_value
            if exc is not None and isinstance(exc, Exception):
                where = unraisable.err_msg or "Exception ignored in"
                self.report(exc, semconv.UncaughtContext.UNRAISABLE, fatal=False,
                            detail=f"{where}: {_describe(unraisable.object)}")
        finally:
            self._previous_unraisable(unraisable)

    def _asyncio_report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not isinstance(exc, Exception):  # CancelledError and the like are no failure
            return
        task = context.get("future") or context.get("task")
        get_context = getattr(task, "get_context", None)  # Python 3.12+
        task_context = get_context() if callable(get_context) else None
        self.report(exc, semconv.UncaughtContext.ASYNCIO, fatal=False,
                    detail=str(context.get("message") or ""), task_context=task_context)

    # --- reporting ----------------------------------------------------------------------------
    def report(self, exc: BaseException, where: str, *, fatal: bool,
               thread: tuple[str, int | None] | None = None, detail: str = "",
               task_context: Any = None) -> None:
        """Log, count and (``fatal``) alert ``exc``; never raises, never re-enters."""
        if not self.active or getattr(self._busy, "on", False) or getattr(exc, _REPORTED, False):
            return
        self._busy.on = True
        try:
            with _suppressed():
                setattr(exc, _REPORTED, True)
            self._report(exc, where, fatal, thread, detail, task_context)
        except Exception as failure:  # never the application's problem, never silent
            _log.warning("otelprod: reporting an uncaught %s failed: %s",
                         type(exc).__qualname__, failure)
        finally:
            self._busy.on = False

    def _report(self, exc: BaseException, where: str, fatal: bool,
                thread: tuple[str, int | None] | None, detail: str, task_context: Any) -> None:
        error_type = type(exc).__qualname__
        attrs: dict[str, Any] = {semconv.ERROR_TYPE: error_type,
                                 semconv.ERROR_CONTEXT: where,
                                 semconv.ERROR_SEVERITY: ErrorSeverity.CRITICAL.value}
        if thread is not None:
            attrs[semconv.THREAD_NAME] = thread[0]
            if thread[1] is not None:
                attrs[semconv.THREAD_ID] = thread[1]
        if detail:
            attrs[semconv.ERROR_DETAIL] = detail
        with _span_of(exc, task_context) as span:
            if span.is_recording():  # still open: it was active when the exception escaped
                span.record_exception(exc, attributes={semconv.ERROR_CONTEXT: where})
                span.set_status(trace.Status(trace.StatusCode.ERROR,
                                             f"uncaught {error_type}: {exc}"))
            self.logger.log(logging.CRITICAL if fatal else logging.ERROR,
                            "Uncaught %s (%s): %s", error_type, where, exc,
                            exc_info=(type(exc), exc, exc.__traceback__), extra=attrs)
        error_handler.count_error(exc, where, ErrorSeverity.CRITICAL)
        if fatal:
            monitoring_system.alert_manager.raise_alert(
                f"Uncaught exception: {error_type}", _short(exc), AlertSeverity.CRITICAL,
                component="process", labels={semconv.ERROR_TYPE: error_type})


@contextmanager
def _span_of(exc: BaseException, task_context: Any) -> Iterator[trace.Span]:
    """Make current the span that ``exc`` ended (the innermost that recorded it), else the
    asyncio task's span, else keep the current one; yields it."""
    ended = span_context_of(exc)
    if ended is not None:
        token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(ended)))
    elif task_context is not None:
        span = task_context.run(trace.get_current_span)
        token = otel_context.attach(trace.set_span_in_context(span))
    else:
        yield trace.get_current_span()
        return
    try:
        yield trace.get_current_span()
    finally:
        otel_context.detach(token)


def _asyncio_hook(hooks: UncaughtHooks) -> Callable[..., Any]:
    previous = hooks._previous_asyncio

    def call_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        try:
            if hooks.active and isinstance(context, dict):
                hooks._asyncio_report(loop, context)
        except Exception:
            pass  # report() logs its own failures; nothing here may stop the chain
        finally:
            previous(loop, context)

    call_exception_handler._otelprod_hooks = hooks  # type: ignore[attr-defined]
    return call_exception_handler


def _not_reported_twice(record: logging.LogRecord) -> bool:
    """Drop a second record of an exception the hooks reported (asyncio logs its own)."""
    if record.name == LOGGER_NAME or not record.exc_info:
        return True
    return not getattr(record.exc_info[1], _REPORTED, False)


@contextmanager
def _suppressed() -> Iterator[None]:
    try:
        yield
    except Exception:
        pass


def _short(value: object, limit: int = 300) -> str:
    try:
        text = str(value)
    except Exception:
        text = f"<{type(value).__qualname__}: str() failed>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(obj: Any) -> str:
    try:
        return _short(repr(obj), 200)
    except Exception:
        return f"<{type(obj).__qualname__}>"


_installed: UncaughtHooks | None = None
_lock = threading.Lock()


def install(pipeline: Pipeline) -> UncaughtHooks:
    """Hook the uncaught-exception paths for ``pipeline`` (once; again after uninstall())."""
    global _installed
    with _lock:
        if _installed is None:
            hooks = UncaughtHooks(pipeline)
            hooks.install()
            _installed = hooks
        return _installed


def uninstall() -> None:
    global _installed
    with _lock:
        hooks, _installed = _installed, None
    if hooks is not None:
        hooks.uninstall()
