"""``trace_request`` and the bounded performance report behind it."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otelprod import semconv
from otelprod._scrub import scrubber
from otelprod._telemetry import duration_histogram, tracer, truncate

#: operations beyond this many distinct names are reported (and measured) as one
OTHER = "(other)"
DEFAULT_WINDOW = 1024
DEFAULT_MAX_OPERATIONS = 256

_duration = duration_histogram(semconv.METRIC_OPERATION_DURATION,
                               "Duration of operations traced with trace_request")


@dataclass
class _Stats:
    window: deque[float]
    count: int = 0
    errors: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = 0.0
    last_error: str | None = field(default=None)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class PerformanceTracker:
    """Count, success rate and latency percentiles per operation, in bounded memory.

    Percentiles come from the last ``window`` durations of each operation;
    counts and min/max/average cover its whole life. At most
    ``max_operations`` names are kept; later ones are pooled as ``(other)``,
    so user-controlled names cannot grow memory (or metric cardinality).
    """

    def __init__(self, window: int = DEFAULT_WINDOW,
                 max_operations: int = DEFAULT_MAX_OPERATIONS) -> None:
        for key, value in (("window", window), ("max_operations", max_operations)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: expected an int >= 1, got {type(value).__name__} "
                                 f"{value!r}")
        self._window = window
        self._max = max_operations
        self._lock = threading.Lock()
        self._ops: dict[str, _Stats] = {}

    def resolve(self, name: str) -> str:
        """The name ``name`` is tracked under (``(other)`` once the table is full)."""
        if name in self._ops or len(self._ops) < self._max:
            return name
        return OTHER

    def record(self, name: str, duration: float, success: bool,
               error: str | None = None) -> str:
        """Record one operation; returns the name it was tracked under."""
        with self._lock:
            key = self.resolve(name)
            stats = self._ops.get(key)
            if stats is None:
                stats = self._ops[key] = _Stats(deque(maxlen=self._window))
            stats.window.append(duration)
            stats.count += 1
            stats.total += duration
            stats.low = min(stats.low, duration)
            stats.high = max(stats.high, duration)
            if not success:
                stats.errors += 1
                stats.last_error = error
        return key

    def report(self) -> dict[str, dict[str, Any]]:
        """Per operation: count, success rate, and avg/min/max/p50/p95/p99 in ms."""
        with self._lock:
            snapshot = [(name, s.count, s.errors, s.total, s.low, s.high, sorted(s.window),
                         s.last_error) for name, s in self._ops.items()]
        out: dict[str, dict[str, Any]] = {}
        for name, count, errors, total, low, high, ordered, last_error in snapshot:
            entry: dict[str, Any] = {
                "count": count,
                "success_count": count - errors,
                "error_count": errors,
                "success_rate": round((count - errors) / count, 4) if count else None,
                "avg_ms": round(total / count * 1000, 3) if count else None,
                "min_ms": round(low * 1000, 3) if count else None,
                "max_ms": round(high * 1000, 3),
                "p50_ms": round(_percentile(ordered, 0.50) * 1000, 3),
                "p95_ms": round(_percentile(ordered, 0.95) * 1000, 3),
                "p99_ms": round(_percentile(ordered, 0.99) * 1000, 3),
                "window": len(ordered),
            }
            if last_error is not None:
                entry["last_error"] = last_error
            out[name] = entry
        return scrubber.scrub_mapping(out)

    def reset(self) -> None:
        with self._lock:
            self._ops.clear()


def _span_attribute(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float))
                                                for v in value):
        return list(value)
    return truncate(value, 256)


@contextmanager
def trace_operation(name: str, attributes: dict[str, Any], tracker: PerformanceTracker,
                    make_context: Callable[[trace.Span], dict[str, Any]]
                    ) -> Iterator[dict[str, Any]]:
    """A span named ``name`` around the block; duration and result recorded.

    The exception, if any, is recorded on the span, the status set to ERROR
    and the exception re-raised unchanged.
    """
    span_attributes = {str(k): _span_attribute(v) for k, v in attributes.items()}
    start = time.perf_counter()
    error: BaseException | None = None
    with tracer.start_as_current_span(name, attributes=span_attributes, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            yield make_context(span)
        except BaseException as exc:
            error = exc
            raise
        finally:
            duration = time.perf_counter() - start
            _finish(span, name, duration, error, tracker)


def _finish(span: trace.Span, name: str, duration: float, error: BaseException | None,
            tracker: PerformanceTracker) -> None:
    """Telemetry for one operation; never raises into the caller."""
    error_type = type(error).__qualname__ if error is not None else None
    try:
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{error_type}: {truncate(str(error))}"))
        tracked = tracker.record(name, duration, error is None,
                                 None if error is None else f"{error_type}: {truncate(str(error))}")
        attributes: dict[str, Any] = {
            semconv.OPERATION_NAME: tracked,
            semconv.OPERATION_RESULT: "error" if error is not None else "success",
        }
        if error_type is not None:
            attributes[semconv.ERROR_TYPE] = error_type
        _duration.record(duration, attributes)
    except Exception:
        pass
