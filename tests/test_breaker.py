"""Circuit breakers: the state machine on an injected clock, telemetry, concurrency."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pybreaker
import pytest

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.error_handling import (
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    TransitionReason,
    add_breaker_state_listener,
    circuit_breaker,
    error_handler,
    get_circuit_breakers,
    remove_breaker_state_listener,
    with_circuit_breaker,
)
from otelprod.errors import ConfigurationError
from tests.error_handling_helpers import FakeClock, forget_new_breakers, value  # noqa: F401

S = semconv.CircuitBreakerState


def boom(msg: str = "down") -> None:
    raise ConnectionError(msg)


def ok(x: Any = "ok") -> Any:
    return x


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state == S.OPEN


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock, request) -> CircuitBreaker:
    cfg = CircuitBreakerConfig(failure_threshold=3, success_threshold=2, timeout=60,
                               half_open_timeout=30)
    return CircuitBreaker(f"sm.{request.node.name}", cfg, clock=clock)


# --- the state machine ---------------------------------------------------------------------
def test_opens_after_threshold_consecutive_failures(breaker):
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state == S.CLOSED
    assert breaker.call(ok) == "ok"  # a success resets the count
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state == S.CLOSED
    with pytest.raises(ConnectionError):  # the failure that trips it is still the caller's error
        breaker.call(boom)
    assert breaker.state == S.OPEN


def test_rejects_while_open_without_calling(breaker, clock):
    trip(breaker)
    called = []
    clock.advance(59.5)
    with pytest.raises(CircuitBreakerOpenError) as err:
        breaker.call(called.append, 1)
    assert called == []
    assert err.value.retry_after == pytest.approx(0.5)
    assert isinstance(err.value, pybreaker.CircuitBreakerError)
    assert "'sm.test_rejects_while_open_without_calling' is open" in str(err.value)


def test_half_open_after_timeout_then_closes_after_success_threshold(breaker, clock):
    trip(breaker)
    clock.advance(60)
    seen = []
    assert breaker.call(lambda: seen.append(breaker.state) or 1) == 1
    assert seen == [S.HALF_OPEN]
    assert breaker.state == S.HALF_OPEN  # one success of two
    breaker.call(ok)
    assert breaker.state == S.CLOSED
    assert breaker.failure_count == 0


def test_half_open_admits_a_bounded_number_of_trials(clock):
    b = CircuitBreaker("sm.trials", CircuitBreakerConfig(
        failure_threshold=1, success_threshold=2, half_open_max_calls=2, timeout=10), clock=clock)
    trip(b)
    clock.advance(10)
    outcome: dict[str, Any] = {}

    def third() -> None:
        with pytest.raises(CircuitBreakerOpenError) as err:
            b.call(ok)
        outcome["third"] = err.value.state

    def second() -> str:
        third()  # two trials are in flight: a third is rejected
        return "second"

    def first() -> str:
        return b.call(second)

    assert b.call(first) == "second"
    assert outcome == {"third": S.HALF_OPEN}
    assert b.state == S.CLOSED  # both trials succeeded


def test_half_open_failure_reopens(breaker, clock):
    trip(breaker)
    clock.advance(60)
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    assert breaker.state == S.OPEN
    clock.advance(59)
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(ok)  # a fresh timeout from the reopening
    clock.advance(1)
    assert breaker.call(ok) == "ok"
    assert breaker.state == S.HALF_OPEN


def test_half_open_timeout_reopens_and_ignores_the_stale_trial(breaker, clock):
    trip(breaker)
    clock.advance(60)
    inner: dict[str, Any] = {}

    def hung_trial() -> str:
        clock.advance(31)  # the trial outlives half_open_timeout
        with pytest.raises(CircuitBreakerOpenError) as err:
            breaker.call(ok)
        inner["state"] = err.value.state
        return "late"

    assert breaker.call(hung_trial) == "late"
    assert inner == {"state": S.OPEN}
    assert breaker.state == S.OPEN  # the late success does not close it


def test_slow_call_admitted_while_closed_does_not_decide_later_state(breaker, clock):
    def slow() -> str:
        trip(breaker)
        clock.advance(60)
        breaker.call(ok)  # half-open, one trial succeeded
        raise ConnectionError("late failure of a call admitted while closed")

    with pytest.raises(ConnectionError):
        breaker.call(slow)
    assert breaker.state == S.HALF_OPEN


def test_excluded_exceptions_propagate_but_do_not_count(clock):
    b = circuit_breaker("sm.exclude", CircuitBreakerConfig(failure_threshold=1), clock=clock)

    @with_circuit_breaker(b, exclude=KeyError)
    def lookup(key: str) -> None:
        raise KeyError(key)

    for _ in range(3):
        with pytest.raises(KeyError):
            lookup("x")
    assert b.state == S.CLOSED


def test_reset_by_name_closes_a_stuck_breaker(clock):
    b = circuit_breaker("sm.stuck", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    trip(b)
    error_handler.reset_circuit_breaker("sm.stuck")
    assert b.state == S.CLOSED
    assert b.call(ok) == "ok"
    with pytest.raises(KeyError, match=r"no circuit breaker named 'nope' \(registered: .*sm.stuck"):
        error_handler.reset_circuit_breaker("nope")


def test_registry_by_name_with_default_config():
    @with_circuit_breaker("reg.twitter")
    def a() -> int:
        return 1

    @with_circuit_breaker("reg.twitter")
    def b() -> int:
        return 2

    assert a.circuit_breaker is b.circuit_breaker is get_circuit_breakers()["reg.twitter"]
    assert a.circuit_breaker.config == CircuitBreakerConfig()
    with pytest.raises(ConfigurationError, match="already registered"):
        with_circuit_breaker("reg.twitter", CircuitBreakerConfig(failure_threshold=9))


def test_config_errors_name_key_type_and_range():
    with pytest.raises(ConfigurationError) as err:
        CircuitBreakerConfig(failure_threshold=0, timeout=-1.0, half_open_timeout=0,
                             success_threshold=3, half_open_max_calls=0, redis_url="localhost",
                             count_cancellations="yes")
    text = str(err.value)
    assert "CircuitBreakerConfig.failure_threshold must be an int >= 1, got 0 (int)" in text
    assert "CircuitBreakerConfig.timeout must be a finite number >= 0, got -1.0 (float)" in text
    assert "CircuitBreakerConfig.half_open_timeout must be a finite number > 0" in text
    assert "CircuitBreakerConfig.half_open_max_calls must be an int >= 1, got 0 (int)" in text
    assert "CircuitBreakerConfig.count_cancellations must be True or False, got 'yes'" in text
    assert "CircuitBreakerConfig.redis_url must be None or a redis:// URL" in text
    with pytest.raises(ConfigurationError, match="non-empty str"):
        CircuitBreaker("")


# --- telemetry -------------------------------------------------------------------------------
def test_transitions_rejections_and_calls_as_telemetry(telemetry, clock):
    b = circuit_breaker("tel.svc", CircuitBreakerConfig(failure_threshold=2, success_threshold=1,
                                                        timeout=5), clock=clock)
    with tracer.start_as_current_span("work"):
        b.call(ok)
        for _ in range(2):
            with pytest.raises(ConnectionError):
                b.call(boom)
        with pytest.raises(CircuitBreakerOpenError):
            b.call(ok)
        gauge_open = telemetry.metrics()
        clock.advance(5)
        b.call(ok)
    (span,) = telemetry.spans("work")
    changes = [e.attributes for e in span.events if e.name == "circuitbreaker.state_change"]
    assert [(c[semconv.CIRCUITBREAKER_STATE_PREVIOUS], c[semconv.CIRCUITBREAKER_STATE])
            for c in changes] == [("closed", "open"), ("open", "half_open"),
                                  ("half_open", "closed")]
    assert all(c[semconv.CIRCUITBREAKER_NAME] == "tel.svc" for c in changes)
    rejected = [e for e in span.events if e.name == semconv.EVENT_CIRCUITBREAKER_REJECTED]
    assert len(rejected) == 1 and rejected[0].attributes[semconv.CIRCUITBREAKER_STATE] == "open"

    name = {semconv.CIRCUITBREAKER_NAME: "tel.svc"}
    for state, expected in (("open", 1), ("closed", 0), ("half_open", 0)):
        assert value(gauge_open, semconv.METRIC_CIRCUITBREAKER_STATE,
                     {**name, semconv.CIRCUITBREAKER_STATE: state}) == expected
    later = telemetry.metrics()
    calls = semconv.METRIC_CIRCUITBREAKER_CALLS  # cumulative (observable) counts
    assert value(later, calls, {**name, semconv.CIRCUITBREAKER_RESULT: "success"}) == 2
    assert value(later, calls, {**name, semconv.CIRCUITBREAKER_RESULT: "failure"}) == 2
    assert value(later, calls, {**name, semconv.CIRCUITBREAKER_RESULT: "rejected"}) == 1
    assert value(later, semconv.METRIC_CIRCUITBREAKER_STATE,
                 {**name, semconv.CIRCUITBREAKER_STATE: "closed"}) == 1
    transitions = semconv.METRIC_CIRCUITBREAKER_TRANSITIONS  # deltas per collection
    assert value(gauge_open, transitions, {**name, semconv.CIRCUITBREAKER_STATE: "open"}) == 1
    assert value(later, transitions, {**name, semconv.CIRCUITBREAKER_STATE: "open"}) == 0
    assert value(later, transitions, {**name, semconv.CIRCUITBREAKER_STATE: "half_open"}) == 1
    assert value(later, transitions, {**name, semconv.CIRCUITBREAKER_STATE: "closed"}) == 1


def test_state_listeners_hear_every_change_and_cannot_break_calls(clock):
    heard: list[BreakerTransition] = []

    def broken(change: BreakerTransition) -> None:
        raise RuntimeError("listener bug")

    add_breaker_state_listener(heard.append)
    add_breaker_state_listener(broken)
    try:
        b = CircuitBreaker("tel.listen", CircuitBreakerConfig(failure_threshold=1, timeout=10),
                           clock=clock)
        trip(b)
        clock.advance(10)
        b.call(ok)
        b.reset()
    finally:
        remove_breaker_state_listener(heard.append)
        remove_breaker_state_listener(broken)
    R = TransitionReason
    assert heard == [
        BreakerTransition("tel.listen", "closed", "open", R.FAILURE_THRESHOLD, 1_000_000.0),
        BreakerTransition("tel.listen", "open", "half_open", R.TIMEOUT_ELAPSED, 1_000_010.0),
        BreakerTransition("tel.listen", "half_open", "closed", R.MANUAL, 1_000_010.0)]
    with pytest.raises(AttributeError):
        heard[0].new = "closed"  # type: ignore[misc]  # frozen: one record for every listener
    with pytest.raises(ConfigurationError, match="listener must be callable, got 'x'"):
        add_breaker_state_listener("x")  # type: ignore[arg-type]


def test_fallback_on_rejection_and_on_failure(telemetry, clock):
    b = CircuitBreaker("fb.svc", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    calls = []

    @with_circuit_breaker(b, fallback=lambda user: f"cached:{user}")
    def profile(user: str) -> str:
        calls.append(user)
        raise ConnectionError("down")

    assert profile("ann") == "cached:ann"  # the failure trips it; the fallback answers
    assert profile("bob") == "cached:bob"  # rejected; the fallback answers
    assert calls == ["ann"]
    events = telemetry.events(semconv.EVENT_FALLBACK)
    assert [e.attributes[semconv.ERROR_TYPE] for e in events] == [
        "ConnectionError", "CircuitBreakerOpenError"]
    m = telemetry.metrics()
    assert value(m, semconv.METRIC_FALLBACK_INVOCATIONS, {semconv.FALLBACK_NAME: "fb.svc"}) == 2


def test_status_is_json_ready(clock):
    import json

    b = CircuitBreaker("st.svc", CircuitBreakerConfig(failure_threshold=1, timeout=30),
                       clock=clock)
    trip(b)
    clock.advance(10)
    status = json.loads(json.dumps(b.status()))
    assert status["state"] == "open" and status["retry_after"] == pytest.approx(20)
    assert status["calls"]["failure"] == 1 and status["storage"] == "memory"


# --- concurrency ------------------------------------------------------------------------------
def test_threads_pass_through_one_breaker_at_once():
    """Every thread must be inside the guarded call at the same time to pass the barrier:
    a breaker that held its lock across the call would deadlock here (BrokenBarrierError)."""
    n = 8
    barrier = threading.Barrier(n, timeout=30)
    b = CircuitBreaker("conc.threads")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            b.call(barrier.wait)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_plain_pybreaker_would_serialise_the_same_calls():
    """The anchor for the test above: pybreaker holds its lock across the call."""
    b = pybreaker.CircuitBreaker()
    barrier = threading.Barrier(2, timeout=1)
    broken = []

    def work() -> None:
        try:
            b.call(barrier.wait)
        except threading.BrokenBarrierError:
            broken.append(1)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert broken  # the second thread never got in while the first waited


def test_async_calls_are_not_serialised():
    n = 20
    b = CircuitBreaker("conc.async")

    @with_circuit_breaker(b)
    async def work(entered: list[int], all_in: asyncio.Event) -> int:
        entered.append(1)
        if len(entered) == n:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 30)
        return 1

    async def main() -> list[int]:
        entered: list[int] = []
        all_in = asyncio.Event()
        return await asyncio.gather(*(work(entered, all_in) for _ in range(n)))

    assert asyncio.run(main()) == [1] * n


def test_async_state_machine_and_fallback(clock):
    b = CircuitBreaker("conc.async.sm", CircuitBreakerConfig(failure_threshold=2, timeout=1,
                                                             success_threshold=1), clock=clock)

    @with_circuit_breaker(b)
    async def down() -> None:
        await asyncio.sleep(0)
        raise ConnectionError("x")

    @with_circuit_breaker(b, fallback=lambda: "degraded")
    async def up() -> str:
        return "fresh"

    async def main() -> list[Any]:
        out: list[Any] = []
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await down()
        out.append(await up())  # rejected -> fallback
        clock.advance(1)
        out.append(await up())  # trial succeeds -> closed
        out.append(b.state)
        return out

    assert asyncio.run(main()) == ["degraded", "fresh", S.CLOSED]


def test_hammering_one_breaker_loses_no_count(telemetry):
    b = CircuitBreaker("conc.hammer", CircuitBreakerConfig(failure_threshold=10_000))
    n_threads, n_calls = 8, 250

    def work(i: int) -> None:
        for j in range(n_calls):
            try:
                b.call(boom if (i + j) % 3 == 0 else ok)
            except ConnectionError:
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    m = telemetry.metrics()
    name = {semconv.CIRCUITBREAKER_NAME: "conc.hammer"}
    total = sum(value(m, semconv.METRIC_CIRCUITBREAKER_CALLS,
                      {**name, semconv.CIRCUITBREAKER_RESULT: r}) for r in ("success", "failure"))
    assert total == n_threads * n_calls
    assert b.state == S.CLOSED
