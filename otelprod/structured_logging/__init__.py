"""Structured logging: JSON lines with trace context, request tracing, a performance report.

    from otelprod.structured_logging import initialize_observability, setup_json_logging

    obs_system = initialize_observability("TGE_Monitor")
    setup_json_logging(level="INFO", log_file="logs/app.log")
    logger = obs_system.get_logger("my_module")
    logger.set_context(user_id="123", request_id="abc")
    logger.info("Processing request", extra_field="value")

    with obs_system.trace_request("process_data", user_id="123") as ctx:
        ctx["logger"].info("Starting data processing")

Loggers log through the stdlib ``logging`` module, so the same records reach
the JSON handler and the OpenTelemetry bridge that ``otelprod.init()``
installs. JSON output never blocks the caller on slow I/O and is drained
at exit. Everything written passes the scrubber.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from otelprod._telemetry import ensure_pipeline
from otelprod.structured_logging._context import (
    ContextFilter,
    bound_context,
    clear_context,
    get_context,
    set_context,
)
from otelprod.structured_logging._handlers import (
    JsonQueueHandler,
    flush_logging,
    get_json_handler,
    level_name,
    setup_json_logging,
    shutdown_logging,
)
from otelprod.structured_logging._json import JsonFormatter
from otelprod.structured_logging._logger import StructuredLogger
from otelprod.structured_logging._tracing import (
    DEFAULT_MAX_OPERATIONS,
    DEFAULT_WINDOW,
    PerformanceTracker,
    trace_operation,
)

DEFAULT_NAME = "otelprod"


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name: expected a non-empty str, got {type(name).__name__} {name!r}")


class ObservabilitySystem:
    """A named system: its loggers are ``<name>.<module>``; it traces and measures operations."""

    def __init__(self, name: str = DEFAULT_NAME, *, window: int = DEFAULT_WINDOW,
                 max_operations: int = DEFAULT_MAX_OPERATIONS) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        self.name = name
        self.performance = PerformanceTracker(window, max_operations)
        self._loggers: dict[str, StructuredLogger] = {}
        self._lock = threading.Lock()

    def get_logger(self, module: str) -> StructuredLogger:
        """The logger ``<system name>.<module>``."""
        _check_name(module)
        full = module if module == self.name or module.startswith(self.name + ".") \
            else f"{self.name}.{module}"
        logger = self._loggers.get(full)
        if logger is None:
            with self._lock:
                logger = self._loggers.setdefault(full, StructuredLogger(full))
        return logger

    def trace_request(self, name: str, **attributes: Any) -> Any:
        """A span around the block, yielding the request's context dict.

        The dict holds ``span``, ``trace_id`` and ``span_id`` (OTel hex),
        ``logger`` (bound to ``attributes``), ``operation``, ``attributes``
        and ``start_time``. Exceptions are recorded on the span and re-raised;
        the duration goes to ``operation.duration`` and the performance report.
        """
        _check_name(name)  # now, not when the block is entered
        return self._trace_request(name, attributes)

    @contextmanager
    def _trace_request(self, name: str, attributes: dict[str, Any]
                       ) -> Iterator[dict[str, Any]]:
        logger = self.get_logger(name).bind(**attributes) if attributes \
            else self.get_logger(name)

        def make_context(span: trace.Span) -> dict[str, Any]:
            sc = span.get_span_context()
            return {
                "span": span,
                "trace_id": trace.format_trace_id(sc.trace_id) if sc.is_valid else None,
                "span_id": trace.format_span_id(sc.span_id) if sc.is_valid else None,
                "logger": logger,
                "operation": name,
                "attributes": dict(attributes),
                "start_time": time.time(),
            }

        with trace_operation(name, attributes, self.performance, make_context) as ctx:
            yield ctx

    def get_performance_report(self) -> dict[str, dict[str, Any]]:
        """Per operation: count, success rate, latency percentiles (ms). Scrubbed."""
        return self.performance.report()

    def reset_performance(self) -> None:
        self.performance.reset()

    def __repr__(self) -> str:
        return f"<ObservabilitySystem {self.name!r}>"


_system: ObservabilitySystem | None = None
_system_lock = threading.Lock()


def initialize_observability(name: str = DEFAULT_NAME, **options: Any) -> ObservabilitySystem:
    """Create the process-wide :class:`ObservabilitySystem` named ``name``.

    Calling it again with the same name returns the existing system; with
    another name, a new one replaces it.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    # The seed's log format has trace ids: with no tracer provider installed yet,
    # otelprod's pipeline starts for this service (with one, it is used as it is).
    ensure_pipeline(name)
    return _named_system(name, options)


def _named_system(name: str, options: dict[str, Any]) -> ObservabilitySystem:
    global _system
    with _system_lock:
        if _system is None or _system.name != name or options:
            _system = ObservabilitySystem(name, **options)
        return _system


def get_observability_system() -> ObservabilitySystem:
    """The process-wide system (a default one is created on first use)."""
    system = _system
    return system if system is not None else _named_system(DEFAULT_NAME, {})


def get_logger(name: str) -> StructuredLogger:
    """A structured logger named ``<system name>.<name>``."""
    return get_observability_system().get_logger(name)


def trace_request(name: str, **attributes: Any) -> Any:
    """:meth:`ObservabilitySystem.trace_request` on the process-wide system."""
    return get_observability_system().trace_request(name, **attributes)


def get_performance_report() -> dict[str, dict[str, Any]]:
    return get_observability_system().get_performance_report()


__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "JsonQueueHandler",
    "ObservabilitySystem",
    "PerformanceTracker",
    "StructuredLogger",
    "bound_context",
    "clear_context",
    "flush_logging",
    "get_context",
    "get_json_handler",
    "get_logger",
    "get_observability_system",
    "get_performance_report",
    "initialize_observability",
    "level_name",
    "set_context",
    "setup_json_logging",
    "shutdown_logging",
    "trace_request",
]
