"""The rate limiter's and backpressure's instruments, created once per process.

Counting is the hot path's only telemetry, so it stays a plain ``+= 1`` on an
int under the limiter's own lock; an asynchronous counter reports the totals
at collection time. (A synchronous ``Counter.add`` costs about 4 µs under the
SDK, more than a whole ``acquire``.) Waits, rejections and backend failures
are rare enough to pay for synchronous instruments and span events.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from otelprod import semconv
from otelprod._telemetry import duration_histogram, meter, safely


class _HasAvailable(Protocol):
    def _available_now(self) -> float: ...


class _Queue(Protocol):
    """A backpressure controller, as the queue-size gauge sees it."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...


class Counts:
    """Running totals for one limiter name, shared by every limiter of that name
    so a replaced limiter never makes the exported counter go backwards."""

    __slots__ = ("allowed", "attrs", "backend_failures", "rejected", "wait_seconds", "waited")

    def __init__(self, name: str) -> None:
        self.allowed = 0
        self.waited = 0
        self.rejected = 0
        self.wait_seconds = 0.0
        self.backend_failures = 0
        n = semconv.RATELIMITER_NAME
        r = semconv.RATELIMITER_RESULT
        res = semconv.RateLimiterResult
        self.attrs: dict[str, dict[str, AttributeValue]] = {
            "name": {n: name},
            "allowed": {n: name, r: res.ALLOWED},
            "waited": {n: name, r: res.WAITED},
            "rejected": {n: name, r: res.REJECTED},
        }


_lock = threading.Lock()
_counts: dict[str, Counts] = {}
#: the newest limiter per name, for the ``available`` gauge
_limiters: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_backpressure: weakref.WeakValueDictionary[str, _Queue] = weakref.WeakValueDictionary()


def counts_for(name: str, limiter: _HasAvailable) -> Counts:
    with _lock:
        counts = _counts.get(name)
        if counts is None:
            counts = _counts[name] = Counts(name)
        _limiters[name] = limiter
    return counts


def track_backpressure(bp: _Queue) -> None:
    with _lock:
        _backpressure[bp.name] = bp


def _observe_requests(_options: CallbackOptions) -> Iterable[Observation]:
    for c in list(_counts.values()):
        yield Observation(c.allowed, c.attrs["allowed"])
        yield Observation(c.waited, c.attrs["waited"])
        yield Observation(c.rejected, c.attrs["rejected"])


def _observe_available(_options: CallbackOptions) -> Iterable[Observation]:
    for name, limiter in list(_limiters.items()):
        try:
            value = limiter._available_now()
        except Exception:  # telemetry trouble is never anyone's exception
            continue
        yield Observation(value, {semconv.RATELIMITER_NAME: name})


def _observe_queue(_options: CallbackOptions) -> Iterable[Observation]:
    for name, bp in list(_backpressure.items()):
        yield Observation(bp.size, {semconv.BACKPRESSURE_NAME: name})


requests_counter = meter.create_observable_counter(
    semconv.METRIC_RATELIMITER_REQUESTS,
    callbacks=[_observe_requests],
    unit="{request}",
    description="Rate-limited requests by result: allowed at once, allowed after a wait, rejected.",
)
available_gauge = meter.create_observable_gauge(
    semconv.METRIC_RATELIMITER_AVAILABLE,
    callbacks=[_observe_available],
    unit="{token}",
    description="Requests a limiter could grant right now without waiting (unkeyed state).",
)
wait_histogram = duration_histogram(
    semconv.METRIC_RATELIMITER_WAIT_DURATION,
    "Time callers slept for a rate-limit slot.",
)
backend_failures = meter.create_counter(
    semconv.METRIC_RATELIMITER_BACKEND_FAILURES,
    unit="{failure}",
    description="Shared-store (Redis) errors, with the failure mode that decided the request.",
)
queue_gauge = meter.create_observable_gauge(
    semconv.METRIC_BACKPRESSURE_QUEUE_SIZE,
    callbacks=[_observe_queue],
    unit="{item}",
    description="Items currently admitted by a backpressure controller.",
)
rejections_counter = meter.create_counter(
    semconv.METRIC_BACKPRESSURE_REJECTIONS,
    unit="{item}",
    description="Items refused by a backpressure controller, by reason.",
)


def record(instrument: Any, value: float, attrs: Mapping[str, AttributeValue]) -> None:
    """Add to a counter or record in a histogram; telemetry trouble is logged, never raised."""
    safely(f"recording {getattr(instrument, 'name', 'a rate limiter metric')}",
           instrument.record if hasattr(instrument, "record") else instrument.add, value, attrs)
