"""Breaker semantics of issue 17: half-open under light traffic, no state races,
generators counted when they end, cancellations not counted; and a forked child."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pybreaker
import pytest

from otelprod import semconv
from otelprod.error_handling import (
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    add_breaker_state_listener,
    remove_breaker_state_listener,
    with_circuit_breaker,
)
from otelprod.error_handling.pybreaker_compat import CircuitBreaker as DropIn
from tests.error_handling_helpers import FakeClock, forget_new_breakers  # noqa: F401

S = semconv.CircuitBreakerState
R = semconv.CircuitBreakerResult


def ok() -> str:
    return "ok"


def boom() -> None:
    raise ConnectionError("down")


def calls(breaker: CircuitBreaker) -> dict[str, int]:
    return breaker.status()["calls"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- 1. half-open recovers under light traffic -------------------------------------------------
def test_half_open_closes_when_healthy_calls_come_rarely(clock):
    """Defaults (timeout 60, half_open_timeout 30, success_threshold 2), a call every 31 s."""
    b = CircuitBreaker("ho.light", CircuitBreakerConfig(), clock=clock)
    for _ in range(5):
        with pytest.raises(ConnectionError):
            b.call(boom)
    outcome = {"ran": 0, "rejected": 0}
    for _ in range(90):
        clock.advance(31)
        try:
            b.call(ok)
            outcome["ran"] += 1
        except CircuitBreakerOpenError:
            outcome["rejected"] += 1
    # t+31 rejected (open); t+62 first trial; t+93 second trial closes it
    assert outcome == {"ran": 89, "rejected": 1}
    assert b.state == S.CLOSED


def test_a_half_open_breaker_without_a_trial_in_flight_waits_for_the_next_call(clock):
    b = CircuitBreaker("ho.idle", CircuitBreakerConfig(failure_threshold=1, success_threshold=2,
                                                       timeout=10, half_open_timeout=5),
                       clock=clock)
    with pytest.raises(ConnectionError):
        b.call(boom)
    clock.advance(10)
    b.call(ok)  # first trial
    clock.advance(3600)  # nobody calls for an hour
    assert b.state == S.HALF_OPEN
    b.call(ok)  # the second trial, however late, closes it
    assert b.state == S.CLOSED


def test_a_hung_trial_reopens_the_breaker_once_it_outlives_half_open_timeout(clock):
    b = CircuitBreaker("ho.hung", CircuitBreakerConfig(failure_threshold=1, success_threshold=1,
                                                       timeout=10, half_open_timeout=5),
                       clock=clock)
    with pytest.raises(ConnectionError):
        b.call(boom)
    clock.advance(10)
    seen: list[Any] = []

    def hung_trial() -> str:
        clock.advance(4)
        with pytest.raises(CircuitBreakerOpenError) as early:  # its slot is taken
            b.call(ok)
        seen.append((early.value.state, early.value.retry_after))
        clock.advance(1)  # now it has run half_open_timeout: the next caller reopens
        with pytest.raises(CircuitBreakerOpenError) as late:
            b.call(ok)
        seen.append((late.value.state, late.value.retry_after))
        return "late"

    assert b.call(hung_trial) == "late"
    assert seen == [(S.HALF_OPEN, None), (S.OPEN, 10)]
    assert b.state == S.OPEN  # the late success was admitted by an older state: ignored


# --- 2. reading the state races with nothing ---------------------------------------------------
STRESS_CYCLES = 3000
STRESS_ROUNDS = 3


def _stress(breaker: Any, read: Any, close: Any, transitions: list[Any]) -> dict[str, int]:
    """Trip, check a call is rejected, close; two threads read the state all along."""
    ran: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                read()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    admitted_after_trip = 0
    try:
        for _ in range(STRESS_CYCLES):
            with pytest.raises((ConnectionError, pybreaker.CircuitBreakerError)):
                breaker.call(boom)  # trips it (failure threshold 1)
            try:
                breaker.call(ran.append, 1)
                admitted_after_trip += 1
            except pybreaker.CircuitBreakerError:
                pass
            close()
    finally:
        stop.set()
        for t in readers:
            t.join(60)
    assert errors == []
    return {"admitted_after_trip": admitted_after_trip, "ran": len(ran),
            "transitions": len(transitions)}


@pytest.fixture
def small_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize("attempt", range(STRESS_ROUNDS))
def test_reading_the_state_never_reopens_the_door(small_switch_interval, attempt):
    b = CircuitBreaker(f"race.{attempt}", CircuitBreakerConfig(failure_threshold=1, timeout=600))
    heard: list[BreakerTransition] = []

    def listen(change: BreakerTransition) -> None:
        if change.name == b.name:
            heard.append(change)

    add_breaker_state_listener(listen)
    try:
        result = _stress(b, lambda: (b.state, b.status()), b.reset, heard)
    finally:
        remove_breaker_state_listener(listen)
    assert result == {"admitted_after_trip": 0, "ran": 0, "transitions": 2 * STRESS_CYCLES}
    assert {(c.previous, c.new) for c in heard} == {(S.CLOSED, S.OPEN), (S.OPEN, S.CLOSED)}


@pytest.mark.parametrize("attempt", range(STRESS_ROUNDS))
def test_reading_the_drop_in_state_never_reopens_the_door(small_switch_interval, attempt):
    heard: list[str] = []

    class Transitions(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old: Any, new: Any) -> None:
            heard.append(f"{old.name}->{new.name}")

    b = DropIn(fail_max=1, reset_timeout=600, listeners=[Transitions()])
    result = _stress(b, lambda: (b.state, b.current_state, b.fail_counter), b.close, heard)
    assert result == {"admitted_after_trip": 0, "ran": 0, "transitions": 2 * STRESS_CYCLES}
    assert set(heard) == {"closed->open", "open->closed"}


# --- 3. generators count when they end -----------------------------------------------------
def test_a_generator_counts_when_it_fails_mid_stream(clock):
    b = CircuitBreaker("gen.fail", CircuitBreakerConfig(failure_threshold=3), clock=clock)

    @with_circuit_breaker(b)
    def rows() -> Iterator[int]:
        yield 1
        raise ConnectionError("connection lost mid-stream")

    for failures in range(3):
        stream = rows()
        assert b.failure_count == failures  # created: not counted yet
        assert calls(b)[R.SUCCESS] == 0
        assert next(stream) == 1
        with pytest.raises(ConnectionError):
            next(stream)
    assert b.state == S.OPEN and b.failure_count == 3
    with pytest.raises(CircuitBreakerOpenError):  # admitted (or not) when created
        rows()
    assert calls(b) == {R.SUCCESS: 0, R.FAILURE: 3, R.REJECTED: 1, R.CANCELLED: 0}


def test_a_generator_succeeds_when_exhausted_and_is_cancelled_when_closed_early(clock):
    b = CircuitBreaker("gen.ok", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    received: list[Any] = []

    @with_circuit_breaker(b)
    def echo() -> Iterator[int]:
        try:
            for i in range(3):
                received.append((yield i))
        except ValueError:  # thrown in by the consumer and handled: not a failure
            yield -1
        return None

    assert list(echo()) == [0, 1, 2]
    talk = echo()
    assert next(talk) == 0
    assert talk.send("hello") == 1  # send() reaches the generator
    assert talk.throw(ValueError("consumer")) == -1  # so does throw()
    talk.close()  # the consumer stops early: says nothing about the dependency
    assert received[-1] == "hello"
    assert calls(b) == {R.SUCCESS: 1, R.FAILURE: 0, R.REJECTED: 0, R.CANCELLED: 1}
    assert b.call(echo).__next__() == 0  # call() guards a generator the same way
    assert b.state == S.CLOSED


def test_an_async_generator_counts_when_it_ends(clock):
    b = CircuitBreaker("agen", CircuitBreakerConfig(failure_threshold=2), clock=clock)

    @with_circuit_breaker(b)
    async def events(fail: bool) -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0)
        if fail:
            raise ConnectionError("stream broke")
        yield 2

    async def main() -> list[Any]:
        out: list[Any] = [[x async for x in events(False)]]
        early = events(False)
        out.append(await early.__anext__())
        await early.aclose()  # closed early: cancelled
        for _ in range(2):
            with pytest.raises(ConnectionError):
                out.append([x async for x in events(True)])
        return out

    assert asyncio.run(main()) == [[1, 2], 1]
    assert b.state == S.OPEN
    assert calls(b) == {R.SUCCESS: 1, R.FAILURE: 2, R.REJECTED: 0, R.CANCELLED: 1}


def test_call_on_a_coroutine_function_counts_when_awaited(clock):
    b = CircuitBreaker("coro", CircuitBreakerConfig(failure_threshold=1), clock=clock)

    async def down() -> None:
        raise ConnectionError("x")

    pending = b.call(down)  # admitted now, counted when it finishes
    assert b.state == S.CLOSED
    with pytest.raises(ConnectionError):
        asyncio.run(pending)
    assert b.state == S.OPEN


# --- 4. cancellations -------------------------------------------------------------------------
def _time_out_five_callers(config: CircuitBreakerConfig) -> tuple[str, str, dict[str, int]]:
    b = CircuitBreaker(f"cancel.{config.count_cancellations}", config)

    @with_circuit_breaker(b)
    async def healthy(answer: asyncio.Event) -> str:
        await answer.wait()
        return "ok"

    async def main() -> tuple[str, str]:
        slow = asyncio.Event()  # the dependency answers only when set
        for _ in range(5):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(healthy(slow), 0.001)
        state = b.state
        slow.set()
        try:
            return state, await healthy(slow)
        except CircuitBreakerOpenError:
            return state, "rejected"

    state, answer = asyncio.run(main())
    return state, answer, calls(b)


def test_callers_timing_out_do_not_open_the_breaker_of_a_healthy_dependency():
    state, answer, counts = _time_out_five_callers(CircuitBreakerConfig(failure_threshold=5))
    assert (state, answer) == (S.CLOSED, "ok")
    assert counts == {R.SUCCESS: 1, R.FAILURE: 0, R.REJECTED: 0, R.CANCELLED: 5}


def test_count_cancellations_makes_them_failures():
    state, answer, counts = _time_out_five_callers(
        CircuitBreakerConfig(failure_threshold=5, count_cancellations=True))
    assert (state, answer) == (S.OPEN, "rejected")
    assert counts == {R.SUCCESS: 0, R.FAILURE: 5, R.REJECTED: 1, R.CANCELLED: 0}


def test_keyboard_interrupt_propagates_and_does_not_count(clock):
    b = CircuitBreaker("cancel.kbd", CircuitBreakerConfig(failure_threshold=1), clock=clock)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    assert b.state == S.CLOSED and b.failure_count == 0


def test_a_cancelled_trial_gives_its_slot_back(clock):
    b = CircuitBreaker("cancel.trial", CircuitBreakerConfig(
        failure_threshold=1, success_threshold=1, half_open_max_calls=1, timeout=5), clock=clock)

    @with_circuit_breaker(b)
    async def slow(answer: asyncio.Event) -> str:
        await answer.wait()
        return "ok"

    async def main() -> str:
        with pytest.raises(ConnectionError):
            b.call(boom)
        clock.advance(5)
        never = asyncio.Event()
        trial = asyncio.ensure_future(slow(never))
        await asyncio.sleep(0)  # the trial is admitted and waits
        with pytest.raises(CircuitBreakerOpenError):  # one trial at a time
            await slow(never)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        ready = asyncio.Event()
        ready.set()
        return await slow(ready)  # the slot is free again: this trial closes it

    assert asyncio.run(main()) == "ok"
    assert b.state == S.CLOSED


# --- a forked child ---------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_gets_a_fresh_lock_from_the_fork_registry(clock):
    """A parent thread holds the breaker's lock at fork(): the child's copy is renewed."""
    b = CircuitBreaker("fork.lock", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    engine = b._engine
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine._mutex:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, on purpose
        pid = os.fork()
    if pid == 0:  # the child: the holder thread does not exist here, its lock stays held
        code = 3
        try:
            with contextlib.suppress(ConnectionError):
                b.call(boom)  # a failure takes the lock: without the reset this hangs
            code = 0 if b.state == S.OPEN else 4
        finally:
            os._exit(code)
    release.set()
    holder.join(30)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the breaker's lock")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b.state == S.CLOSED  # the child's failure stayed in the child
