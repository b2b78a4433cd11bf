"""Small pieces the resilience wrappers share: spans, exception recording, tallies.

Hot-path counts (``retry.attempts``, ``circuitbreaker.calls``) are kept in
plain in-process tallies and reported through observable counters: a
synchronous OTel counter costs ~4 µs per ``add()``, which alone would be
several times the whole budget of a guarded call's success path.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode

from otelprod import semconv
from otelprod._telemetry import tracer, truncate

T = TypeVar("T")

_log = logging.getLogger("otelprod.error_handling")

#: Attribute set on an exception once it is recorded on a span, so that
#: stacked wrappers (breaker around retry) don't record it twice.
_RECORDED = "_otelprod_recorded_on"


def qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module and module != "__main__" else name


def no_active_span() -> bool:
    """True when no span (recording or not) is current: the call then gets its own.

    A valid but non-recording span means the caller's trace was sampled out;
    starting a new root there would undo that decision.
    """
    return not trace.get_current_span().get_span_context().is_valid


def exception_attributes(exc: BaseException) -> dict[str, str]:
    return {
        semconv.EXCEPTION_TYPE: type(exc).__qualname__,
        semconv.EXCEPTION_MESSAGE: truncate(str(exc), 240),
    }


def record_exception(exc: BaseException, span: Span | None = None,
                     attributes: dict[str, Any] | None = None) -> None:
    """Record ``exc`` on ``span`` (default: the current one) once, with status ERROR."""
    try:
        span = span or trace.get_current_span()
        if not span.is_recording():
            return
        span_id = span.get_span_context().span_id
        if getattr(exc, _RECORDED, None) == span_id:
            return
        span.record_exception(exc, attributes=attributes)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {truncate(exc)}"))
        try:
            setattr(exc, _RECORDED, span_id)
        except Exception:  # exceptions without a __dict__
            pass
    except Exception:  # telemetry trouble is never the caller's exception
        _log.debug("could not record an exception on the span", exc_info=True)


def call_in_own_span(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` inside a new span named ``name``; escaping exceptions are recorded."""
    with tracer.start_as_current_span(name, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            return fn(*args)
        except BaseException as exc:
            record_exception(exc, span)
            raise


async def await_in_own_span(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    with tracer.start_as_current_span(name, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            return await fn(*args)
        except BaseException as exc:
            record_exception(exc, span)
            raise


def safely(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a telemetry helper or a user listener; its failure is logged, never raised."""
    try:
        fn(*args, **kwargs)
    except Exception:
        _log.warning("%s failed", what, exc_info=True)


class Tally:
    """Monotonic counts per attribute tuple, read by an observable counter.

    ``add`` is one uncontended lock and a dict update (~0.2 µs). Counts start
    again from zero in a forked child, whose ``service.instance.id`` is new.
    """

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = keys
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}
        _TALLIES.append(self)

    def add(self, key: tuple[str, ...], n: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def get(self, key: tuple[str, ...]) -> int:
        return self._counts.get(key, 0)

    def observe(self, _options: CallbackOptions | None = None) -> Iterator[Observation]:
        with self._lock:
            items = list(self._counts.items())
        for key, value in items:
            yield Observation(value, dict(zip(self._keys, key)))

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._counts = {}


_TALLIES: list[Tally] = []


def _reset_tallies_in_child() -> None:
    for tally in _TALLIES:
        tally._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_tallies_in_child)


def observe_all(sources: Iterable[Callable[[], Iterable[Observation]]]
                ) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """An instrument callback over several sources; a failing source is skipped."""

    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        out: list[Observation] = []
        for source in sources:
            try:
                out.extend(source())
            except Exception:
                _log.debug("an observable instrument's source failed", exc_info=True)
        return out

    return callback
