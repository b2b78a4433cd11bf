"""with_fallback: graceful degradation that shows in the telemetry."""

from __future__ import annotations

import asyncio

import pytest

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.error_handling import (
    CircuitBreaker,
    CircuitBreakerConfig,
    RetryConfig,
    with_circuit_breaker,
    with_fallback,
    with_retry,
)
from otelprod.errors import ConfigurationError
from tests.error_handling_helpers import forget_new_breakers, value  # noqa: F401


def test_value_fallback_on_matching_error(telemetry):
    @with_fallback([], on=ConnectionError, name="fb.list")
    def recent() -> list[str]:
        raise ConnectionError("search down")

    with tracer.start_as_current_span("page"):
        assert recent() == []
    (event,) = telemetry.events(semconv.EVENT_FALLBACK)
    assert event.attributes[semconv.FALLBACK_NAME] == "fb.list"
    assert event.attributes[semconv.ERROR_TYPE] == "ConnectionError"
    assert event.attributes[semconv.EXCEPTION_MESSAGE] == "search down"
    m = telemetry.metrics()
    assert value(m, semconv.METRIC_FALLBACK_INVOCATIONS,
                 {semconv.FALLBACK_NAME: "fb.list", semconv.ERROR_TYPE: "ConnectionError"}) == 1


def test_callable_fallback_gets_the_call_arguments():
    @with_fallback(lambda user, *, lang="en": f"guest-{user}-{lang}")
    def greet(user: str, *, lang: str = "en") -> str:
        raise TimeoutError

    assert greet("ann", lang="fr") == "guest-ann-fr"


def test_other_errors_propagate_and_success_is_untouched(telemetry):
    @with_fallback(0, on=(ConnectionError, TimeoutError))
    def parse(text: str) -> int:
        return int(text)

    assert parse("7") == 7
    with pytest.raises(ValueError):
        parse("x")
    assert telemetry.events(semconv.EVENT_FALLBACK) == []


def test_predicate_and_none_as_a_value():
    @with_fallback(None, on=lambda e: "retryable" in str(e))
    def op(msg: str) -> str:
        raise RuntimeError(msg)

    assert op("retryable glitch") is None
    with pytest.raises(RuntimeError):
        op("fatal")


def test_fallback_around_retry_and_breaker(telemetry):
    b = CircuitBreaker("fb.stack", CircuitBreakerConfig(failure_threshold=1))

    @with_fallback("stale", name="fb.stack")
    @with_circuit_breaker(b)
    @with_retry(RetryConfig(max_attempts=2, base_delay=0), sleep=lambda s: None)
    def price() -> str:
        raise ConnectionError("pricing down")

    assert price() == "stale"  # retried, exhausted, tripped the breaker
    assert price() == "stale"  # rejected by the breaker
    names = [e.name for e in telemetry.events()]
    assert names.count("retry") == 1 and names.count("retry.exhausted") == 1
    assert names.count("circuitbreaker.state_change") == 1
    assert names.count("circuitbreaker.rejected") == 1
    assert names.count("fallback") == 2


def test_async_fallback_awaits_an_async_callable():
    async def cached(key: str) -> str:
        return f"cached-{key}"

    @with_fallback(cached)
    async def fetch(key: str) -> str:
        raise ConnectionError

    @with_fallback("plain")
    async def fetch2() -> str:
        raise ConnectionError

    async def main() -> tuple[str, str]:
        return await fetch("k"), await fetch2()

    assert asyncio.run(main()) == ("cached-k", "plain")


def test_bad_on_is_a_clear_error():
    with pytest.raises(ConfigurationError, match=r"with_fallback.on must be an exception class.*"
                                                 r"got 'ConnectionError' \(str\)"):
        with_fallback(None, on="ConnectionError")


def test_stacked_wrappers_make_one_span_and_skip_no_user_decorator(telemetry):
    import functools

    seen = []

    def logged(fn):
        @functools.wraps(fn)  # copies our marker attribute: it must not be trusted
        def inner(*args, **kwargs):
            seen.append("logged")
            return fn(*args, **kwargs)
        return inner

    flaky = iter([ConnectionError("blip")])

    @with_fallback("x", name="fb.outer")
    @with_circuit_breaker(CircuitBreaker("fb.layers"))
    @logged
    @with_retry(RetryConfig(base_delay=0), sleep=lambda s: None)
    def op(n: int, *, fn: str = "kw named like a parameter") -> str:
        for exc in flaky:
            raise exc
        return f"{n}-{fn}"

    assert op(1) == "1-kw named like a parameter"
    assert op(2, fn="f") == "2-f"
    assert seen == ["logged", "logged"]
    spans = telemetry.spans()
    assert [s.name for s in spans] == ["fb.outer", "fb.outer"]
    assert [e.name for e in spans[0].events] == ["retry"]
