"""pybreaker's own test suite, against otelprod's drop-in ``pybreaker_compat.CircuitBreaker``.

This follows the test suite of pybreaker 1.4.1 (tests/pybreaker_test.py,
https://github.com/danielfm/pybreaker, BSD-3-Clause, copyright (c) 2010-2021
Daniel Fernandes Martins): one test per pybreaker test, under the same name,
making the same assertions; the code is written anew. pybreaker's classes map
to these: CircuitBreakerTestCase (with the storage-based and configuration
mixins) -> TestCircuitBreaker; CircuitBreakerRedisTestCase ->
TestCircuitBreakerRedis; CircuitBreakerThreadsTestCase ->
TestCircuitBreakerThreads; CircuitBreakerRedisConcurrencyTestCase ->
TestCircuitBreakerRedisConcurrency; CircuitBreakerContextManagerTestCase ->
TestCircuitBreakerContextManager. 81 tests in all.

What is done differently, for every test:
- Time passes on an injected clock (``clock.advance``) instead of ``sleep()``
  for the reset timeout; the sleeps that provoke thread interleavings stay.
- Redis is a real redis-server on loopback (the ``redis_server`` fixture),
  not fakeredis; a Redis outage is a real one (the server shut down).
- tornado coroutines become ``async def`` run by asyncio (no tornado).

Cases that differ, and why:
- test_call_with_args, test_call_with_kwargs: pybreaker's versions assert
  nothing (``assert [42, "abc"], breaker.call(...)``: the call sits in the
  assertion's message and never runs); these assert the result.
- test_no_tornado_raises: the drop-in needs no tornado, so there is no
  ImportError to raise; the test asserts that the decorated coroutine works.
  (The one pybreaker assertion that does not hold, by design: docstring item 5.)
- test_fail_thread_safety (both classes): pybreaker's makes its private
  ``_inc_counter`` racy; the drop-in does not call it, so the storage's
  ``increment_counter`` is made racy instead: the same check that failures are
  counted under the lock.
- test_fallback_state, test_missing_state: pybreaker patches the client's
  ``get``; here the server is shut down, and the keys are flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import traceback
from contextlib import contextmanager
from datetime import datetime
from time import sleep
from typing import Any
from unittest import mock

import pybreaker
import pytest
import redis

from otelprod.error_handling.pybreaker_compat import (
    STATE_CLOSED,
    STATE_HALF_OPEN,
    STATE_OPEN,
    CircuitBreakerError,
    CircuitBreakerListener,
    CircuitMemoryStorage,
    CircuitRedisStorage,
)
from otelprod.error_handling.pybreaker_compat import CircuitBreaker as DropIn
from tests.error_handling_helpers import FakeClock


def fail() -> None:
    raise NotImplementedError


def succeed() -> bool:
    return True


def trip(breaker: DropIn, fail_max: int) -> None:
    """``fail_max`` failures: the last one trips the breaker (pybreaker's error)."""
    for _ in range(fail_max - 1):
        with pytest.raises(NotImplementedError):
            breaker.call(fail)
    with pytest.raises(CircuitBreakerError):
        breaker.call(fail)


class Base:
    """``self.breaker`` on a fake clock; ``self.make(...)`` builds another with the same storage
    kwargs, like pybreaker's ``CircuitBreaker(..., **self.breaker_kwargs)``."""

    breaker: DropIn
    breaker_kwargs: dict[str, Any]

    @pytest.fixture(autouse=True)
    def _clock(self) -> None:
        self.clock = FakeClock()

    def make(self, **kwargs: Any) -> DropIn:
        return DropIn(**kwargs, clock=self.clock)

    def rebuild(self, **kwargs: Any) -> DropIn:
        self.breaker = self.make(**kwargs, **self.breaker_kwargs)
        return self.breaker


class StorageCases(Base):
    """pybreaker's CircuitBreakerStorageBasedTestCase."""

    def test_successful_call(self):
        assert self.breaker.call(succeed)
        assert self.breaker.fail_counter == 0
        assert self.breaker.current_state == "closed"

    def test_one_failed_call(self):
        with pytest.raises(NotImplementedError):
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 1
        assert self.breaker.current_state == "closed"

    def test_one_successful_call_after_failed_call(self):
        with pytest.raises(NotImplementedError):
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 1
        assert self.breaker.call(succeed)
        assert self.breaker.fail_counter == 0
        assert self.breaker.current_state == "closed"

    def test_several_failed_calls_setting_absent(self):
        self.rebuild(fail_max=3)
        trip(self.breaker, 3)
        assert self.breaker.fail_counter == 3
        assert self.breaker.current_state == "open"

    def test_throw_new_error_on_trip_false(self):
        self.rebuild(fail_max=3, throw_new_error_on_trip=False)
        for _ in range(3):  # the tripping call raises the caller's own error
            with pytest.raises(NotImplementedError):
                self.breaker.call(fail)
        assert self.breaker.fail_counter == 3
        assert self.breaker.current_state == "open"
        with pytest.raises(CircuitBreakerError):
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 3
        assert self.breaker.current_state == "open"

    def test_throw_new_error_on_trip_true(self):
        self.rebuild(fail_max=3, throw_new_error_on_trip=True)
        trip(self.breaker, 3)
        assert self.breaker.fail_counter == 3
        assert self.breaker.current_state == "open"

    def test_traceback_in_circuitbreaker_error(self):
        self.rebuild(fail_max=3)
        for _ in range(2):
            with pytest.raises(NotImplementedError):
                self.breaker.call(fail)
        try:
            self.breaker.call(fail)
            pytest.fail("the third failure should raise CircuitBreakerError")
        except CircuitBreakerError:
            assert "NotImplementedError" in traceback.format_exc()
        assert self.breaker.fail_counter == 3
        assert self.breaker.current_state == "open"

    def test_failed_call_after_timeout(self):
        self.rebuild(fail_max=3, reset_timeout=0.5)
        for _ in range(2):
            with pytest.raises(NotImplementedError):
                self.breaker.call(fail)
        assert self.breaker.current_state == "closed"
        with pytest.raises(CircuitBreakerError):
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 3
        self.clock.advance(0.6)
        with pytest.raises(CircuitBreakerError):  # the trial fails: open again
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 4
        assert self.breaker.current_state == "open"

    def test_successful_after_timeout(self):
        self.rebuild(fail_max=3, reset_timeout=1)
        suc = mock.MagicMock(return_value=True)
        for _ in range(2):
            with pytest.raises(NotImplementedError):
                self.breaker.call(fail)
        assert self.breaker.current_state == "closed"
        with pytest.raises(CircuitBreakerError):
            self.breaker.call(fail)
        with pytest.raises(CircuitBreakerError):
            self.breaker.call(suc)
        assert self.breaker.fail_counter == 3
        self.clock.advance(2)
        assert self.breaker.call(suc)
        assert self.breaker.fail_counter == 0
        assert self.breaker.current_state == "closed"
        assert suc.call_count == 1

    def test_failed_call_when_halfopen(self):
        self.breaker.half_open()
        assert self.breaker.fail_counter == 0
        assert self.breaker.current_state == "half-open"
        with pytest.raises(CircuitBreakerError):
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 1
        assert self.breaker.current_state == "open"

    def test_successful_call_when_halfopen(self):
        self.breaker.half_open()
        assert self.breaker.fail_counter == 0
        assert self.breaker.current_state == "half-open"
        assert self.breaker.call(succeed)
        assert self.breaker.fail_counter == 0
        assert self.breaker.current_state == "closed"

    def test_close(self):
        self.rebuild(fail_max=3)
        trip(self.breaker, 3)
        with pytest.raises(CircuitBreakerError):
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 3
        assert self.breaker.current_state == "open"
        self.breaker.close()
        assert self.breaker.fail_counter == 0
        assert self.breaker.current_state == "closed"

    def test_transition_events(self):
        seen: list[str] = []

        class Transitions(CircuitBreakerListener):
            def state_change(self, cb, old_state, new_state):
                assert cb
                seen.append(f"{old_state.name if old_state else ''}->{new_state.name}")

        self.rebuild(listeners=(Transitions(),))
        assert self.breaker.current_state == "closed"
        for move, state in ((self.breaker.open, "open"), (self.breaker.half_open, "half-open"),
                            (self.breaker.close, "closed")):
            move()
            assert self.breaker.current_state == state
        assert ",".join(seen) + "," == "closed->open,open->half-open,half-open->closed,"

    def test_call_events(self):
        out: list[str] = []

        class Calls(CircuitBreakerListener):
            def before_call(self, cb, func, *args, **kwargs):
                assert cb
                out.append("-")

            def success(self, cb):
                assert cb
                out.append("success")

            def failure(self, cb, exc):
                assert cb
                assert exc
                out.append("failure")

        self.rebuild(listeners=(Calls(),))
        assert self.breaker.call(succeed)
        with pytest.raises(NotImplementedError):
            self.breaker.call(fail)
        assert "".join(out) == "-success-failure"

    def test_generator(self):
        @self.breaker
        def suc(value):
            yield value

        @self.breaker
        def err(value):
            sent = yield value
            raise NotImplementedError(sent)

        s, e = suc(True), err(True)
        next(e)
        with pytest.raises(NotImplementedError):
            e.send(True)
        assert self.breaker.fail_counter == 1
        assert next(s)
        with pytest.raises((StopIteration, RuntimeError)):
            next(s)
        assert self.breaker.fail_counter == 0

    def test_contextmanager(self):
        breaker = self.breaker

        class Foo:
            @contextmanager
            @breaker
            def wrapper(self):
                try:
                    yield
                except NotImplementedError:
                    raise ValueError from None

            def foo(self):
                with self.wrapper():
                    raise NotImplementedError

        with pytest.raises(ValueError) as err:
            Foo().foo()
        assert isinstance(err.value, ValueError)


class ConfigurationCases(Base):
    """pybreaker's CircuitBreakerConfigurationTestCase."""

    def test_default_state(self):
        for state in (STATE_OPEN, STATE_CLOSED, STATE_HALF_OPEN):
            breaker = self.make(state_storage=CircuitMemoryStorage(state))
            assert breaker.state.name == state

    def test_default_params(self):
        assert self.breaker.fail_counter == 0
        assert self.breaker.reset_timeout == 60
        assert self.breaker.fail_max == 5
        assert self.breaker.current_state == "closed"
        assert self.breaker.excluded_exceptions == ()
        assert self.breaker.listeners == ()
        assert self.breaker._state_storage.name == "memory"

    def expect_settings(self, reset_timeout: float, fail_max: int, excluded: tuple) -> None:
        assert self.breaker.fail_counter == 0
        assert self.breaker.reset_timeout == reset_timeout
        assert self.breaker.fail_max == fail_max
        assert self.breaker.excluded_exceptions == excluded
        assert self.breaker.listeners == ()
        assert self.breaker._state_storage.name == "memory"

    def test_new_with_custom_reset_timeout(self):
        self.breaker = self.make(reset_timeout=30)
        self.expect_settings(30, 5, ())

    def test_new_with_custom_fail_max(self):
        self.breaker = self.make(fail_max=10)
        self.expect_settings(60, 10, ())

    def test_new_with_custom_excluded_exceptions(self):
        self.breaker = self.make(exclude=[Exception])
        self.expect_settings(60, 5, (Exception,))

    def test_fail_max_setter(self):
        assert self.breaker.fail_max == 5
        self.breaker.fail_max = 10
        assert self.breaker.fail_max == 10

    def test_reset_timeout_setter(self):
        assert self.breaker.reset_timeout == 60
        self.breaker.reset_timeout = 30
        assert self.breaker.reset_timeout == 30

    def test_call_with_no_args(self):
        assert self.breaker.call(succeed)

    def test_call_with_args(self):
        assert self.breaker.call(lambda arg1, arg2: [arg1, arg2], 42, "abc") == [42, "abc"]

    def test_call_with_kwargs(self):
        assert self.breaker.call(lambda **kwargs: kwargs, a=1, b=2) == {"a": 1, "b": 2}

    def test_call_async_with_no_args(self):
        async def func():
            return True

        assert asyncio.run(self.breaker.call(func))

    def test_call_async_with_args(self):
        async def func(arg1, arg2):
            return [arg1, arg2]

        assert asyncio.run(self.breaker.call(func, 42, "abc")) == [42, "abc"]

    def test_call_async_with_kwargs(self):
        async def func(**kwargs):
            return kwargs

        assert asyncio.run(self.breaker.call(func, a=1, b=2)) == {"a": 1, "b": 2}

    def test_add_listener(self):
        assert self.breaker.listeners == ()
        first, second = CircuitBreakerListener(), CircuitBreakerListener()
        self.breaker.add_listener(first)
        assert self.breaker.listeners == (first,)
        self.breaker.add_listener(second)
        assert self.breaker.listeners == (first, second)

    def test_add_listeners(self):
        first, second = CircuitBreakerListener(), CircuitBreakerListener()
        self.breaker.add_listeners(first, second)
        assert self.breaker.listeners == (first, second)

    def test_remove_listener(self):
        first = CircuitBreakerListener()
        self.breaker.add_listener(first)
        assert self.breaker.listeners == (first,)
        self.breaker.remove_listener(first)
        assert self.breaker.listeners == ()

    def expect_counts(self, *steps: tuple[BaseException, int]) -> None:
        """Each step raises its exception through the breaker, then checks fail_counter."""
        for exc, count in steps:
            with pytest.raises(type(exc)):
                self.breaker.call(raise_it, exc)
            assert self.breaker.fail_counter == count

    def test_excluded_exceptions(self):
        self.breaker = self.make(exclude=[LookupError])
        # LookupError and its subclass KeyError are no system errors
        self.expect_counts((NotImplementedError(), 1), (LookupError(), 0),
                           (NotImplementedError(), 1), (KeyError(), 0))

    def test_excluded_callable_exceptions(self):
        self.breaker = self.make(exclude=[is_good])
        self.expect_counts((Flagged("bad"), 1), (Flagged("good"), 0), (NotImplementedError(), 1))

    def test_excluded_callable_and_types_exceptions(self):
        self.breaker = self.make(exclude=[is_good, LookupError])
        self.expect_counts((Flagged("bad"), 1), (Flagged("good"), 0), (NotImplementedError(), 1),
                           (LookupError(), 0))

    def test_add_excluded_exception(self):
        assert self.breaker.excluded_exceptions == ()
        self.breaker.add_excluded_exception(NotImplementedError)
        assert self.breaker.excluded_exceptions == (NotImplementedError,)
        self.breaker.add_excluded_exception(Exception)
        assert self.breaker.excluded_exceptions == (NotImplementedError, Exception)

    def test_add_excluded_exceptions(self):
        self.breaker.add_excluded_exceptions(NotImplementedError, Exception)
        assert self.breaker.excluded_exceptions == (NotImplementedError, Exception)

    def test_remove_excluded_exception(self):
        self.breaker.add_excluded_exception(NotImplementedError)
        assert self.breaker.excluded_exceptions == (NotImplementedError,)
        self.breaker.remove_excluded_exception(NotImplementedError)
        assert self.breaker.excluded_exceptions == ()

    def test_decorator(self):
        @self.breaker
        def suc(value):
            "Docstring"
            return value

        @self.breaker
        def err(value):
            "Docstring"
            raise NotImplementedError

        assert (suc.__doc__, err.__doc__, suc.__name__, err.__name__) == (
            "Docstring", "Docstring", "suc", "err")
        with pytest.raises(NotImplementedError):
            err(True)
        assert self.breaker.fail_counter == 1
        assert suc(True)
        assert self.breaker.fail_counter == 0

    def test_decorator_call_future(self):
        @self.breaker(__pybreaker_call_async=True)
        async def suc(value):
            "Docstring"
            return value

        @self.breaker(__pybreaker_call_async=True)
        async def err(value):
            "Docstring"
            raise NotImplementedError

        assert (suc.__doc__, err.__doc__, suc.__name__, err.__name__) == (
            "Docstring", "Docstring", "suc", "err")

        async def main() -> None:
            with pytest.raises(NotImplementedError):
                await err(True)
            assert self.breaker.fail_counter == 1
            assert await suc(True)
            assert self.breaker.fail_counter == 0

        asyncio.run(main())

    @mock.patch("pybreaker.HAS_TORNADO_SUPPORT", False)
    def test_no_tornado_raises(self):
        """Differs: pybreaker raises ImportError here; the drop-in needs no tornado."""
        async def func():
            return True

        wrapped = self.breaker(func, __pybreaker_call_async=True)
        assert asyncio.run(wrapped())

    def test_name(self):
        self.breaker = self.make(name="test_breaker")
        assert self.breaker.name == "test_breaker"
        self.breaker.name = "breaker_test"
        assert self.breaker.name == "breaker_test"

    def open_then_wait(self, breaker: DropIn) -> None:
        trip(breaker, 3)
        self.clock.advance(0.2)  # past reset_timeout=0.1: the next call is a trial

    def test_success_threshold_default_behavior(self):
        self.rebuild(fail_max=3, reset_timeout=0.1)
        self.open_then_wait(self.breaker)
        assert self.breaker.call(succeed)
        assert self.breaker.current_state == "closed"
        assert self.breaker.success_counter == 0

    def test_success_threshold_multiple_successes_required(self):
        self.rebuild(fail_max=3, reset_timeout=0.1, success_threshold=3)
        self.open_then_wait(self.breaker)
        for successes in (1, 2):
            assert self.breaker.call(succeed)
            assert self.breaker.current_state == "half-open"
            assert self.breaker.success_counter == successes
        assert self.breaker.call(succeed)
        assert self.breaker.current_state == "closed"
        assert self.breaker.success_counter == 0

    def test_success_threshold_failure_resets_counter(self):
        self.rebuild(fail_max=3, reset_timeout=0.1, success_threshold=3)
        self.open_then_wait(self.breaker)
        for successes in (1, 2):
            assert self.breaker.call(succeed)
            assert self.breaker.current_state == "half-open"
            assert self.breaker.success_counter == successes
        with pytest.raises(CircuitBreakerError):
            self.breaker.call(fail)
        assert self.breaker.current_state == "open"
        assert self.breaker.success_counter == 0

    def test_success_threshold_property(self):
        self.breaker = self.make(success_threshold=5)
        assert self.breaker.success_threshold == 5
        self.breaker.success_threshold = 10
        assert self.breaker.success_threshold == 10

    def test_success_threshold_redis_storage(self, redis_server):
        client = redis.Redis.from_url(redis_server)
        self.breaker = self.make(fail_max=3, reset_timeout=0.1, success_threshold=2,
                                 state_storage=CircuitRedisStorage(STATE_CLOSED, client))
        self.open_then_wait(self.breaker)
        assert self.breaker.call(succeed)
        assert self.breaker.current_state == "half-open"
        assert self.breaker.success_counter == 1
        assert self.breaker.call(succeed)
        assert self.breaker.current_state == "closed"
        assert self.breaker.success_counter == 0


class Flagged(Exception):
    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def is_good(exc: BaseException) -> bool:
    return type(exc) is Flagged and exc.value == "good"


def raise_it(exc: BaseException) -> None:
    raise exc


class TestCircuitBreaker(StorageCases, ConfigurationCases):
    """pybreaker's CircuitBreakerTestCase: memory storage."""

    @pytest.fixture(autouse=True)
    def _breaker(self, _clock: None) -> None:
        self.breaker_kwargs = {}
        self.breaker = self.make()

    def test_create_new_state__bad_state(self):
        with pytest.raises(ValueError):
            self.breaker._create_new_state("foo")

    @mock.patch("pybreaker.CircuitOpenState")
    def test_notify_not_called_on_init(self, open_state):
        breaker = self.make(state_storage=CircuitMemoryStorage("open"))
        open_state.assert_called_once_with(breaker, prev_state=None, notify=False)

    @mock.patch("pybreaker.CircuitOpenState")
    def test_notify_called_on_state_change(self, open_state):
        breaker = self.make(state_storage=CircuitMemoryStorage("closed"))
        prev_state = breaker.state
        breaker.state = "open"
        open_state.assert_called_once_with(breaker, prev_state=prev_state, notify=True)

    def test_failure_count_not_reset_during_creation(self):
        for state in (STATE_OPEN, STATE_CLOSED, STATE_HALF_OPEN):
            storage = CircuitMemoryStorage(state)
            storage.increment_counter()
            breaker = self.make(state_storage=storage)
            assert breaker.state.name == state
            assert breaker.fail_counter == 1

    def test_state_opened_at_not_reset_during_creation(self):
        for state in (STATE_OPEN, STATE_CLOSED, STATE_HALF_OPEN):
            storage = CircuitMemoryStorage(state)
            now = datetime.now()
            storage.opened_at = now
            breaker = self.make(state_storage=storage)
            assert breaker.state.name == state
            assert storage.opened_at == now


@pytest.mark.redis
class TestCircuitBreakerRedis(StorageCases):
    """pybreaker's CircuitBreakerRedisTestCase, on a real redis-server."""

    @pytest.fixture(autouse=True)
    def _breaker(self, _clock: None, redis_server: str) -> None:
        self.redis = redis.Redis.from_url(redis_server)
        self.breaker_kwargs = {"state_storage": CircuitRedisStorage("closed", self.redis)}
        self.breaker = self.make(**self.breaker_kwargs)

    def test_namespace(self):
        self.redis.flushall()
        self.rebuild_with(CircuitRedisStorage("closed", self.redis, namespace="my_app"))
        with pytest.raises(NotImplementedError):
            self.breaker.call(fail)
        keys = self.redis.keys()
        assert len(keys) == 3  # fail_counter, success_counter, state
        assert all(key.decode("utf-8").startswith("my_app") for key in keys)

    def rebuild_with(self, storage: CircuitRedisStorage) -> None:
        self.breaker_kwargs = {"state_storage": storage}
        self.breaker = self.make(**self.breaker_kwargs)

    def test_fallback_state(self):
        logging.getLogger("pybreaker").setLevel(logging.FATAL)
        self.rebuild_with(CircuitRedisStorage("closed", self.redis, fallback_circuit_state="open"))
        self.redis.shutdown(nosave=True)  # every read now fails with a RedisError
        assert self.breaker.state.name == "open"

    def test_missing_state(self):
        """If the state is missing in Redis, the fallback state is set and the count reset."""
        self.rebuild_with(CircuitRedisStorage("closed", self.redis, fallback_circuit_state="open"))
        with pytest.raises(NotImplementedError):
            self.breaker.call(fail)
        assert self.breaker.fail_counter == 1
        self.redis.flushdb()
        assert self.breaker.state.name == "open"
        assert self.breaker.fail_counter == 0

    def test_cluster_mode(self):
        self.redis.flushall()
        storage = CircuitRedisStorage(STATE_OPEN, self.redis, namespace="my_app",
                                      cluster_mode=True)
        now = datetime.now()
        storage.opened_at = now
        breaker = self.make(state_storage=storage)
        assert breaker.state.name == STATE_OPEN
        pattern = "%Y-%m-%d-%H:%M:%S"
        assert storage.opened_at.strftime(pattern) == now.strftime(pattern)


class ThreadCases:
    """Threads against one breaker, as pybreaker's two threading test cases do."""

    breaker: DropIn

    def start_threads(self, target: Any, n: int) -> None:
        threads = [threading.Thread(target=target) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    def racy_failure_count(self) -> None:
        """Make the storage's failure increment a slow read-modify-write."""
        storage = self.breaker._state_storage
        if isinstance(storage, CircuitMemoryStorage):
            def increment() -> None:
                count = storage._fail_counter
                sleep(0.00005)
                storage._fail_counter = count + 1
        else:
            original = storage.increment_counter

            def increment() -> None:
                sleep(0.00005)
                original()
        storage.increment_counter = increment  # type: ignore[method-assign]

    def test_fail_thread_safety(self):
        class SpecificError(Exception):
            pass

        @self.breaker
        def err():
            raise SpecificError

        def trigger_error():
            for _ in range(500):
                with pytest.raises(SpecificError):
                    err()

        self.racy_failure_count()
        self.start_threads(trigger_error, 3)
        assert self.breaker.fail_counter == 1500

    def test_success_thread_safety(self):
        @self.breaker
        def suc():
            return True

        class SuccessListener(CircuitBreakerListener):
            def success(self, cb):
                count = getattr(cb, "_success_counter", 0)
                sleep(0.00005)
                cb._success_counter = count + 1

        self.breaker.add_listener(SuccessListener())
        self.start_threads(lambda: [suc() for _ in range(500)], 3)
        assert self.breaker._success_counter == 1500

    def test_half_open_thread_safety(self):
        clock = FakeClock()
        self.breaker = DropIn(fail_max=1, reset_timeout=0.01, clock=clock)
        self.breaker.open()
        clock.advance(0.01)

        @self.breaker
        def err():
            raise Exception

        class StateListener(CircuitBreakerListener):
            def __init__(self):
                self.count = 0

            def before_call(self, cb, fun, *args, **kwargs):
                sleep(0.00005)

            def state_change(self, cb, old_state, new_state):
                if new_state.name == "half-open":
                    self.count += 1

        def trigger_failure():
            with contextlib.suppress(Exception):  # the trial's error, or rejected
                err()

        listener = StateListener()
        self.breaker.add_listener(listener)
        self.start_threads(trigger_failure, 5)
        assert listener.count == 1

    def run_failures_with_slow_listener(self, threads: int) -> None:
        @self.breaker
        def err():
            raise Exception

        def trigger_error():
            for _ in range(2000):
                with contextlib.suppress(Exception):  # a failure, or rejected
                    err()

        class SleepListener(CircuitBreakerListener):
            def before_call(self, cb, func, *args, **kwargs):
                sleep(0.00005)

        self.breaker.add_listener(SleepListener())
        self.start_threads(trigger_error, threads)


class TestCircuitBreakerThreads(ThreadCases):
    """pybreaker's CircuitBreakerThreadsTestCase."""

    @pytest.fixture(autouse=True)
    def _breaker(self) -> None:
        self.breaker = DropIn(fail_max=3000, reset_timeout=1, clock=FakeClock())

    def test_fail_max_thread_safety(self):
        self.run_failures_with_slow_listener(3)
        assert self.breaker.fail_max == self.breaker.fail_counter


@pytest.mark.redis
class TestCircuitBreakerRedisConcurrency(ThreadCases):
    """pybreaker's CircuitBreakerRedisConcurrencyTestCase, on a real redis-server."""

    @pytest.fixture(autouse=True)
    def _breaker(self, redis_server: str) -> None:
        self.redis = redis.Redis.from_url(redis_server)
        self.breaker = DropIn(fail_max=3000, reset_timeout=1, clock=FakeClock(),
                              state_storage=CircuitRedisStorage("closed", self.redis))

    def test_fail_max_thread_safety(self):
        """With Redis, separate processes may each add one failure past fail_max."""
        threads = 3
        self.run_failures_with_slow_listener(threads)
        assert self.breaker.fail_counter < self.breaker.fail_max + threads


class TestCircuitBreakerContextManager:
    """pybreaker's CircuitBreakerContextManagerTestCase."""

    def test_calling(self):
        class TestError(Exception):
            pass

        clock = FakeClock()
        breaker = DropIn(fail_max=2, reset_timeout=0.01, clock=clock)
        mock_fn = mock.MagicMock()

        def do_raise():
            with breaker.calling():
                raise TestError

        def do_succeed():
            with breaker.calling():
                mock_fn()

        with pytest.raises(TestError):
            do_raise()
        with pytest.raises(CircuitBreakerError):
            do_raise()
        assert breaker.fail_counter == 2
        assert breaker.current_state == "open"
        with pytest.raises(CircuitBreakerError):  # still open: the block does not run
            do_succeed()
        mock_fn.assert_not_called()
        clock.advance(0.01)
        do_succeed()
        mock_fn.assert_called_once()
        assert breaker.fail_counter == 0
        assert breaker.current_state == "closed"


def test_it_is_a_pybreaker_circuit_breaker():
    assert issubclass(DropIn, pybreaker.CircuitBreaker)


# --- beyond pybreaker's suite: what the drop-in adds ---------------------------------------------
def test_the_drop_in_emits_otelprod_telemetry(telemetry):
    from otelprod import semconv
    from otelprod._telemetry import tracer
    from tests.error_handling_helpers import value

    breaker = DropIn(fail_max=1, name="dropin.telemetry", clock=FakeClock())
    with tracer.start_as_current_span("work"):
        with pytest.raises(CircuitBreakerError):
            breaker.call(fail)
        with pytest.raises(CircuitBreakerError):
            breaker.call(succeed)
    (span,) = telemetry.spans("work")
    assert [e.name for e in span.events] == ["circuitbreaker.state_change",
                                             "circuitbreaker.rejected"]
    name = {semconv.CIRCUITBREAKER_NAME: "dropin.telemetry"}
    metrics = telemetry.metrics()
    calls = semconv.METRIC_CIRCUITBREAKER_CALLS
    assert value(metrics, calls, {**name, semconv.CIRCUITBREAKER_RESULT: "failure"}) == 1
    assert value(metrics, calls, {**name, semconv.CIRCUITBREAKER_RESULT: "rejected"}) == 1
    assert value(metrics, semconv.METRIC_CIRCUITBREAKER_STATE,
                 {**name, semconv.CIRCUITBREAKER_STATE: "open"}) == 1


def test_calls_through_the_drop_in_are_not_serialised():
    breaker = DropIn()
    barrier = threading.Barrier(4, timeout=30)  # all four must be inside the call at once
    errors: list[BaseException] = []

    def work() -> None:
        try:
            breaker.call(barrier.wait)
        except BaseException as exc:
            errors.append(exc)

    ThreadCases().start_threads(work, 4)
    assert errors == []


def test_a_decorated_method_binds_self_and_a_broken_listener_breaks_nothing():
    class Broken(CircuitBreakerListener):
        def before_call(self, cb, func, *args, **kwargs):
            raise RuntimeError("listener bug")

        def state_change(self, cb, old_state, new_state):
            raise RuntimeError("listener bug")

    breaker = DropIn(fail_max=1, listeners=[Broken()], clock=FakeClock())

    class Client:
        @breaker
        def get(self, key: str) -> str:
            return f"{type(self).__name__}:{key}"

    assert Client().get("k") == "Client:k"
    breaker.open()  # the listener's error is logged, the transition made
    assert breaker.current_state == "open"
