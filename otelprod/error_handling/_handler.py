"""``error_handler``: one call that makes a caught exception visible everywhere.

``handle_error`` records the exception on the current span (status ERROR),
writes a log record through stdlib ``logging`` (logger ``otelprod.errors``,
which ``init()`` bridges to OTel logs) at the level the severity maps to,
counts ``errors.handled`` and keeps statistics for the status report.
CRITICAL errors are also handed to the registered critical listeners: the
monitoring module registers its alert manager there.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace

from otelprod import semconv
from otelprod._telemetry import meter, safely, truncate
from otelprod.error_handling._breaker import get_circuit_breaker
from otelprod.error_handling._common import _log

errors_log = logging.getLogger("otelprod.errors")

_handled = meter.create_counter(
    semconv.METRIC_ERRORS_HANDLED, unit="{error}",
    description="Errors passed to error_handler.handle_error, by type, severity and context.")


class ErrorSeverity(str, enum.Enum):
    """How bad a handled error is; decides the log level and whether listeners hear of it."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def log_level(self) -> int:
        return _LEVELS[self]

    def __str__(self) -> str:
        return self.value


_LEVELS = {ErrorSeverity.LOW: logging.INFO, ErrorSeverity.MEDIUM: logging.WARNING,
           ErrorSeverity.HIGH: logging.ERROR, ErrorSeverity.CRITICAL: logging.CRITICAL}

CriticalListener = Callable[[BaseException, str, ErrorSeverity, dict[str, Any]], Any]


def _attribute_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value if not isinstance(value, str) else truncate(value, 240)
    return truncate(value, 240)


class ErrorHandler:
    """Handles caught errors and holds the statistics; ``error_handler`` is the shared one."""

    RECENT = 50

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[CriticalListener] = []
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._total = 0
        self._by_type: Counter[str] = Counter()
        self._by_severity: Counter[str] = Counter()
        self._by_context: Counter[str] = Counter()
        self._recent: deque[dict[str, Any]] = deque(maxlen=self.RECENT)
        self._last_error_at: float | None = None

    def handle_error(self, error: BaseException, context: str = "unknown",
                     severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
                     additional_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record ``error`` as span exception, log record, metric and statistic.

        Returns the statistics entry. Never raises because telemetry failed;
        does raise on a bad argument (so a typo in a severity doesn't go unseen).
        """
        if not isinstance(error, BaseException):
            raise TypeError(f"handle_error: error must be an exception, got {type(error).__name__}")
        if not isinstance(context, str):
            raise TypeError(f"handle_error: context must be a str, got {type(context).__name__}")
        try:
            severity = ErrorSeverity(severity)
        except ValueError:
            allowed = ", ".join(s.value for s in ErrorSeverity)
            raise ValueError(f"handle_error: severity must be an ErrorSeverity ({allowed}), got "
                             f"{severity!r} ({type(severity).__name__})") from None
        if additional_info is not None and not isinstance(additional_info, Mapping):
            raise TypeError("handle_error: additional_info must be a mapping or None, got "
                            f"{type(additional_info).__name__}")
        info = dict(additional_info or {})
        entry = self.count_error(error, context, severity)
        error_type = entry["type"]
        attrs: dict[str, Any] = {semconv.ERROR_TYPE: error_type,
                                 semconv.ERROR_SEVERITY: severity.value,
                                 semconv.ERROR_CONTEXT: context}
        info_attrs = {f"error.info.{k}": _attribute_value(v) for k, v in info.items()}
        safely("recording a handled error on the span", self._record_on_span, error,
               {**attrs, **info_attrs})
        safely("logging a handled error", errors_log.log, severity.log_level,
               "[%s] %s: %s", context, error_type, error,
               exc_info=(type(error), error, error.__traceback__),
               extra={**attrs, **info_attrs})
        if severity is ErrorSeverity.CRITICAL:
            for listener in list(self._listeners):
                safely("a critical-error listener", listener, error, context, severity, info)
        return entry

    def count_error(self, error: BaseException, context: str = "unknown",
                    severity: ErrorSeverity | str = ErrorSeverity.MEDIUM) -> dict[str, Any]:
        """Count ``error`` in ``errors.handled`` and the statistics, and nothing else: no span,
        no log record, no listener. For callers that report the error their own way (the
        uncaught-exception hooks of ``otelprod.init()``). Returns the statistics entry."""
        severity = ErrorSeverity(severity)
        error_type = type(error).__qualname__
        now = time.time()
        entry: dict[str, Any] = {"time": now, "type": error_type,
                                 "message": truncate(str(error), 240), "context": context,
                                 "severity": severity.value}
        with self._lock:
            self._total += 1
            self._by_type[error_type] += 1
            self._by_severity[severity.value] += 1
            self._by_context[context] += 1
            self._recent.append(entry)
            self._last_error_at = now
        safely("counting a handled error", _handled.add, 1,
               {semconv.ERROR_TYPE: error_type, semconv.ERROR_SEVERITY: severity.value,
                semconv.ERROR_CONTEXT: context})
        return entry

    @staticmethod
    def _record_on_span(error: BaseException, attrs: dict[str, Any]) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.record_exception(error, attributes=attrs)
            span.set_status(trace.Status(trace.StatusCode.ERROR,
                                         f"{type(error).__qualname__}: {truncate(error)}"))

    # --- listeners -------------------------------------------------------------------
    def add_critical_listener(self, listener: CriticalListener) -> None:
        """Call ``listener(error, context, severity, additional_info)`` for CRITICAL errors."""
        if not callable(listener):
            raise TypeError(f"add_critical_listener: listener must be callable, got "
                            f"{type(listener).__name__}")
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_critical_listener(self, listener: CriticalListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # --- breakers and statistics --------------------------------------------------------
    def reset_circuit_breaker(self, name: str) -> None:
        """Close the breaker ``name`` by hand (KeyError naming the known ones if unknown)."""
        get_circuit_breaker(name).reset()
        _log.info("circuit breaker %r reset by hand", name)

    def get_error_statistics(self) -> dict[str, Any]:
        """JSON-serialisable counts since start (or the last reset), and the latest errors."""
        with self._lock:
            return {
                "total_errors": self._total,
                "by_type": dict(self._by_type),
                "by_severity": {s.value: self._by_severity.get(s.value, 0)
                                for s in ErrorSeverity},
                "by_context": dict(self._by_context),
                "last_error_at": self._last_error_at,
                "recent": list(self._recent)[-10:],
            }

    get_error_stats = get_error_statistics

    def reset_statistics(self) -> None:
        with self._lock:
            self._reset_stats()


error_handler = ErrorHandler()
