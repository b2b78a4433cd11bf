"""set_testing: retries without waiting, breakers forced open or closed, then as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from otelprod.error_handling import (
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    RetryConfig,
    TestingOverrides,
    circuit_breaker,
    set_testing_overrides,
    testing_overrides,
    unregister_circuit_breaker,
    with_circuit_breaker,
    with_retry,
)
from otelprod.errors import ConfigurationError
from otelprod.testing import is_testing, set_testing
from tests.conftest import Telemetry


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    set_testing_overrides(None)
    for name in ("switch-a", "switch-b", "switch-open"):
        unregister_circuit_breaker(name)


def _flaky(failures: int, delays: list[float]):
    calls = []

    @with_retry(RetryConfig(max_attempts=4, base_delay=5.0, jitter=False), sleep=delays.append)
    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError("down")
        return "ok"

    return call, calls


def test_retries_skip_their_backoff_and_attempts_can_be_capped(telemetry: Telemetry) -> None:
    delays: list[float] = []
    call, calls = _flaky(2, delays)
    with set_testing(True) as switch:
        assert is_testing() and switch is not None
        assert call() == "ok"
    assert delays == [0.0, 0.0] and len(calls) == 3
    assert [e.attributes["retry.delay"] for e in telemetry.events("retry")] == [0.0, 0.0]
    assert not is_testing()

    delays.clear()
    call, calls = _flaky(2, delays)
    assert call() == "ok"  # off again: the configured backoff, 5 s then 10 s
    assert delays == [5.0, 10.0]

    call, calls = _flaky(2, delays)
    with set_testing(True, attempts=1), pytest.raises(ConnectionError):
        call()
    assert len(calls) == 1  # attempts=1: no retry at all


def test_async_retries_skip_their_backoff() -> None:
    delays: list[float] = []
    calls = []

    async def record(delay: float) -> None:
        delays.append(delay)

    @with_retry(RetryConfig(max_attempts=3, base_delay=5.0), sleep=record)
    async def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    with set_testing(True):
        assert asyncio.run(call()) == "ok"
    assert delays == [0.0, 0.0]


def test_a_breaker_forced_open_rejects_and_the_fallback_answers(telemetry: Telemetry) -> None:
    calls = []

    @with_circuit_breaker("switch-open")
    def call() -> str:
        calls.append(1)
        return "real"

    @with_circuit_breaker("switch-open", fallback="cached")
    def with_fallback() -> str:
        return "real"

    assert call() == "real"
    with set_testing(True, breakers={"switch-open": "open"}):
        with pytest.raises(CircuitBreakerOpenError):
            call()
        assert with_fallback() == "cached"
        assert circuit_breaker("switch-open").state == "closed"  # its real state is untouched
    assert call() == "real" and len(calls) == 2
    assert len(telemetry.events("circuitbreaker.rejected")) == 2
    rejected = [p for attrs, p in telemetry.metrics()["circuitbreaker.calls"]  # cumulative
                if attrs == {"circuitbreaker.name": "switch-open",
                             "circuitbreaker.result": "rejected"}]
    assert [p.value for p in rejected] == [2]


def test_a_breaker_forced_closed_admits_every_call_and_never_opens() -> None:
    breaker = circuit_breaker("switch-b", CircuitBreakerConfig(failure_threshold=2))

    @with_circuit_breaker("switch-b")
    def failing() -> None:
        raise TimeoutError("slow")

    breaker.force_open()
    with set_testing(True, breakers={"*": "closed"}):
        for _ in range(5):
            with pytest.raises(TimeoutError):  # admitted although the breaker is open
                failing()
    assert breaker.state == "open"  # and that is what it is again
    with pytest.raises(CircuitBreakerOpenError):
        failing()
    breaker.reset()
    with set_testing(True, breakers={"switch-b": "closed"}):
        for _ in range(5):
            with pytest.raises(TimeoutError):
                failing()
        assert breaker.state == "closed"  # five failures, threshold two: still closed
    with pytest.raises(TimeoutError):
        failing()
    with pytest.raises(TimeoutError):
        failing()
    assert breaker.state == "open"  # the real rules are back


def test_a_breaker_made_while_testing_is_forced_too() -> None:
    with set_testing(True, breakers={"switch-a": "open"}):
        @with_circuit_breaker("switch-a")
        def call() -> str:
            return "real"

        with pytest.raises(CircuitBreakerOpenError):
            call()
    assert call() == "real"


def test_the_switch_restores_what_was_in_force_before() -> None:
    outer = set_testing(True, attempts=2)
    with set_testing(True, breakers={"x": "open"}):
        assert testing_overrides() == TestingOverrides(retry_wait=False,
                                                       breakers={"x": "open"})
    assert testing_overrides() == TestingOverrides(retry_wait=False, retry_attempts=2)
    with outer:
        pass
    assert testing_overrides() is None


@pytest.mark.parametrize("kwargs,message", [
    ({"attempts": 0}, "retry_attempts must be an int >= 1, got 0"),
    ({"attempts": "2"}, "retry_attempts must be an int >= 1, got '2'"),
    ({"breakers": {"payments": "half_open"}}, "breakers['payments'] must be \"open\" or"),
    ({"breakers": ["payments"]}, "breakers must be a mapping"),
])
def test_bad_input_is_refused_naming_it(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        set_testing(True, **kwargs)  # type: ignore[arg-type]
    assert message in str(refused.value)
    assert testing_overrides() is None
    with pytest.raises(TypeError, match="testing must be True or False, got 'yes'"):
        set_testing("yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"set_testing\(False\) takes no attempts"):
        set_testing(False, attempts=1)
