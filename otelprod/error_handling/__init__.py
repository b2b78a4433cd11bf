"""Resilience as OpenTelemetry: retries, circuit breakers, fallbacks, handled errors
and a durable dead-letter queue.

    from otelprod.error_handling import with_retry, with_circuit_breaker, RetryConfig

    @with_circuit_breaker("twitter_api")
    @with_retry(RetryConfig(max_attempts=3, base_delay=1.0))
    def fetch_tweets(): ...

Retries run on tenacity and breakers on pybreaker (code written for
``pybreaker.CircuitBreaker`` can switch to ``pybreaker_compat.CircuitBreaker``);
what they do shows up as
span events (``retry``, ``circuitbreaker.state_change``, ``fallback``, …)
and metrics named in ``otelprod.semconv``.
"""

from __future__ import annotations

from typing import Any

from otelprod.error_handling._breaker import (
    BreakerListener,
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    TransitionReason,
    add_breaker_state_listener,
    circuit_breaker,
    get_circuit_breaker,
    get_circuit_breakers,
    remove_breaker_state_listener,
    unregister_circuit_breaker,
    with_circuit_breaker,
)
from otelprod.error_handling._dlq import (
    DeadLetterItem,
    DeadLetterQueue,
    ReplayResult,
    configure_dead_letter_queue,
    dead_letter_queue,
)
from otelprod.error_handling._fallback import with_fallback
from otelprod.error_handling._handler import ErrorHandler, ErrorSeverity, error_handler
from otelprod.error_handling._retry import RetryConfig, with_retry
from otelprod.error_handling._testing import (
    TestingOverrides,
    set_testing_overrides,
    testing_overrides,
)

#: pybreaker's name for the rejection, for code written against it
CircuitBreakerError = CircuitBreakerOpenError


def status_report() -> dict[str, Any]:
    """Error statistics, every breaker and the dead-letter queue, JSON-serialisable.

    Secrets are scrubbed (error messages may quote them), and reading it never
    creates the dead-letter database.
    """
    breakers: dict[str, Any] = {}
    for name, breaker in get_circuit_breakers().items():
        try:
            breakers[name] = breaker.status()
        except Exception as exc:  # e.g. Redis unreachable: report it, don't fail the report
            breakers[name] = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
    try:
        dlq: dict[str, Any] = dead_letter_queue.status()
    except Exception as exc:
        dlq = {"name": dead_letter_queue.name, "path": str(dead_letter_queue.path),
               "error": f"{type(exc).__name__}: {exc}"}
    from otelprod._scrub import scrubber

    return scrubber.scrub({  # type: ignore[no-any-return]
        "errors": error_handler.get_error_statistics(),
        "circuit_breakers": breakers,
        "dead_letter_queue": dlq,
    })


__all__ = [
    "BreakerListener",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitBreakerOpenError",
    "DeadLetterItem",
    "DeadLetterQueue",
    "ErrorHandler",
    "ErrorSeverity",
    "ReplayResult",
    "RetryConfig",
    "TestingOverrides",
    "TransitionReason",
    "add_breaker_state_listener",
    "circuit_breaker",
    "configure_dead_letter_queue",
    "dead_letter_queue",
    "error_handler",
    "get_circuit_breaker",
    "get_circuit_breakers",
    "remove_breaker_state_listener",
    "set_testing_overrides",
    "status_report",
    "testing_overrides",
    "unregister_circuit_breaker",
    "with_circuit_breaker",
    "with_fallback",
    "with_retry",
]
