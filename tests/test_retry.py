"""with_retry: tenacity underneath, attempts exact, telemetry per attempt, no shared state."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
import tenacity
from opentelemetry.trace import StatusCode

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.error_handling import (
    DeadLetterQueue,
    RetryConfig,
    configure_dead_letter_queue,
    dead_letter_queue,
    with_retry,
)
from otelprod.errors import ConfigurationError
from tests.error_handling_helpers import value

ATTEMPTS = semconv.METRIC_RETRY_ATTEMPTS


def counts(telemetry: Any, name: str) -> dict[str, float]:
    m = telemetry.metrics()
    return {r: value(m, ATTEMPTS, {semconv.RETRY_NAME: name, semconv.RETRY_RESULT: r})
            for r in ("success", "retry", "exhausted", "failure")}


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns ``result``."""

    def __init__(self, failures: int, exc: type[BaseException] = ConnectionError,
                 result: Any = "ok") -> None:
        self.failures, self.exc, self.result, self.calls = failures, exc, result, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")
        return self.result


def test_first_attempt_success_never_builds_tenacity(telemetry, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("tenacity must not run on the success path")

    monkeypatch.setattr(tenacity, "Retrying", boom)
    fn = with_retry(RetryConfig(name="retry.ok"))(Flaky(0))
    assert fn() == "ok"
    assert counts(telemetry, "retry.ok") == {"success": 1, "retry": 0, "exhausted": 0,
                                             "failure": 0}
    assert telemetry.events(semconv.EVENT_RETRY) == []


def test_retries_until_success_with_exact_attempts_and_delays(telemetry):
    slept: list[float] = []
    flaky = Flaky(2)
    fn = with_retry(RetryConfig(max_attempts=3, base_delay=0.5, exponential_base=3,
                                jitter=False, name="retry.flaky"), sleep=slept.append)(flaky)
    assert fn() == "ok"
    assert flaky.calls == 3
    assert slept == [0.5, 1.5]
    events = telemetry.events(semconv.EVENT_RETRY)
    assert [e.attributes[semconv.RETRY_ATTEMPT] for e in events] == [1, 2]
    assert [e.attributes[semconv.RETRY_DELAY] for e in events] == [0.5, 1.5]
    assert events[0].attributes[semconv.EXCEPTION_TYPE] == "ConnectionError"
    assert events[1].attributes[semconv.EXCEPTION_MESSAGE] == "failure 2"
    assert events[0].attributes[semconv.RETRY_NAME] == "retry.flaky"
    assert telemetry.events(semconv.EVENT_RETRY_EXHAUSTED) == []
    assert counts(telemetry, "retry.flaky") == {"success": 1, "retry": 2, "exhausted": 0,
                                                "failure": 0}


def test_max_delay_caps_the_backoff():
    slept: list[float] = []
    fn = with_retry(RetryConfig(max_attempts=5, base_delay=1, max_delay=3, jitter=False),
                    sleep=slept.append)(Flaky(4))
    fn()
    assert slept == [1, 2, 3, 3]


def test_jitter_stays_within_one_base_delay():
    slept: list[float] = []
    fn = with_retry(RetryConfig(max_attempts=4, base_delay=0.1, jitter=True),
                    sleep=slept.append)(Flaky(3))
    fn()
    for got, floor in zip(slept, [0.1, 0.2, 0.4], strict=True):
        assert floor <= got <= floor + 0.1


def test_exhausted_reraises_and_records_on_the_span(telemetry):
    flaky = Flaky(10)
    fn = with_retry(RetryConfig(max_attempts=3, base_delay=0, name="retry.down"),
                    sleep=lambda s: None)(flaky)
    with tracer.start_as_current_span("caller"), pytest.raises(ConnectionError,
                                                               match="failure 3"):
        fn()
    assert flaky.calls == 3
    (span,) = telemetry.spans("caller")
    assert span.status.status_code is StatusCode.ERROR
    names = [e.name for e in span.events]
    assert names == ["retry", "retry", "retry.exhausted", "exception"]
    exhausted = span.events[2].attributes
    assert exhausted[semconv.RETRY_ATTEMPT] == 3
    assert exhausted[semconv.EXCEPTION_MESSAGE] == "failure 3"
    assert counts(telemetry, "retry.down") == {"success": 0, "retry": 2, "exhausted": 1,
                                               "failure": 0}
    # the caller's span was used: the wrapped call did not get a span of its own
    assert [s.name for s in telemetry.spans()] == ["caller"]


def test_call_gets_its_own_span_when_none_is_active(telemetry):
    fn = with_retry(RetryConfig(base_delay=0, name="retry.solo"), sleep=lambda s: None)(Flaky(1))
    fn()
    (span,) = telemetry.spans("retry.solo")
    assert [e.name for e in span.events] == ["retry"]
    assert span.status.status_code is StatusCode.UNSET


def test_exception_not_in_retry_on_is_not_retried(telemetry):
    flaky = Flaky(5, exc=ValueError)
    fn = with_retry(RetryConfig(retry_on=(ConnectionError, TimeoutError), base_delay=0,
                                name="retry.value"))(flaky)
    with pytest.raises(ValueError):
        fn()
    assert flaky.calls == 1
    assert counts(telemetry, "retry.value")["failure"] == 1
    assert telemetry.events(semconv.EVENT_RETRY_EXHAUSTED) == []


def test_retry_on_predicate_and_non_retryable_later_attempt(telemetry):
    seq = [ConnectionError("a"), KeyError("b")]

    def fn():
        raise seq.pop(0)

    wrapped = with_retry(RetryConfig(retry_on=lambda e: isinstance(e, ConnectionError),
                                     base_delay=0, name="retry.pred"), sleep=lambda s: None)(fn)
    with pytest.raises(KeyError):
        wrapped()
    c = counts(telemetry, "retry.pred")
    assert (c["retry"], c["failure"], c["exhausted"]) == (1, 1, 0)


def test_bare_and_empty_forms_use_the_defaults():
    @with_retry
    def a() -> int:
        return 1

    @with_retry()
    def b() -> int:
        return 2

    assert (a(), b()) == (1, 2)
    assert a.retry_policy.config == RetryConfig() == b.retry_policy.config
    assert a.__name__ == "a"
    assert a.retry_policy.name.endswith("test_bare_and_empty_forms_use_the_defaults.<locals>.a")


def test_concurrent_calls_share_no_state(telemetry):
    """Two threads interleave inside one decorated function's retries."""
    plan = {"A": 2, "B": 1}
    seen: dict[str, int] = {"A": 0, "B": 0}
    barrier = threading.Barrier(2, timeout=10)
    sleeps: dict[str, list[float]] = {"A": [], "B": []}

    def sleep(seconds: float) -> None:
        name = threading.current_thread().name
        sleeps[name].append(seconds)
        if len(sleeps[name]) == 1:
            barrier.wait()  # both threads are mid-retry at the same time

    @with_retry(RetryConfig(max_attempts=3, base_delay=1, jitter=False, name="retry.conc"),
                sleep=sleep)
    def work(key: str) -> str:
        seen[key] += 1
        if seen[key] <= plan[key]:
            raise ConnectionError(key)
        return key

    results: dict[str, str] = {}
    threads = [threading.Thread(target=lambda k=k: results.setdefault(k, work(k)), name=k)
               for k in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"A": "A", "B": "B"}
    assert seen == {"A": 3, "B": 2}
    assert sleeps == {"A": [1, 2], "B": [1]}
    spans = {s.name: s for s in telemetry.spans("retry.conc")}
    per_span = sorted(len(s.events) for s in telemetry.spans("retry.conc"))
    assert per_span == [1, 2] and len(spans) == 1


def test_config_errors_name_key_type_and_range():
    with pytest.raises(ConfigurationError) as err:
        RetryConfig(max_attempts=0, base_delay=-1, jitter="yes", retry_on="oops")  # type: ignore[arg-type]
    text = str(err.value)
    assert "RetryConfig.max_attempts must be an int >= 1, got 0 (int)" in text
    assert "RetryConfig.base_delay must be a finite number >= 0, got -1 (int)" in text
    assert "RetryConfig.jitter must be True or False, got 'yes' (str)" in text
    assert "RetryConfig.retry_on must be an exception class" in text
    assert len(err.value.problems) == 4
    with pytest.raises(TypeError, match="RetryConfig, got dict"):
        with_retry({"max_attempts": 3})  # type: ignore[call-overload]


# --- async -------------------------------------------------------------------------------
def test_async_success_retry_and_exhaustion(telemetry):
    async def nosleep(_s: float) -> None:
        return None

    flaky = Flaky(1)

    @with_retry(RetryConfig(base_delay=0, name="retry.async"), sleep=nosleep)
    async def fetch(x: int) -> Any:
        await asyncio.sleep(0)
        return (flaky(), x)

    down = Flaky(99)

    @with_retry(RetryConfig(max_attempts=2, base_delay=0, name="retry.async.down"),
                sleep=nosleep)
    async def broken() -> Any:
        return down()

    async def main() -> None:
        assert await fetch(7) == ("ok", 7)
        assert await fetch(8) == ("ok", 8)
        with pytest.raises(ConnectionError):
            await broken()

    asyncio.run(main())
    assert counts(telemetry, "retry.async") == {"success": 2, "retry": 1, "exhausted": 0,
                                                "failure": 0}
    assert down.calls == 2
    (span,) = telemetry.spans("retry.async.down")
    assert [e.name for e in span.events] == ["retry", "retry.exhausted", "exception"]


def test_async_concurrent_calls_are_independent(telemetry):
    async def tick(_s: float) -> None:
        await asyncio.sleep(0)

    attempts: dict[int, int] = {}

    @with_retry(RetryConfig(max_attempts=4, base_delay=0, name="retry.gather"), sleep=tick)
    async def work(i: int) -> int:
        attempts[i] = attempts.get(i, 0) + 1
        await asyncio.sleep(0)
        if attempts[i] <= i % 4:
            raise TimeoutError(i)
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(work(i) for i in range(40)))

    assert asyncio.run(main()) == list(range(40))
    assert attempts == {i: i % 4 + 1 for i in range(40)}
    c = counts(telemetry, "retry.gather")
    assert c["success"] == 40 and c["retry"] == sum(i % 4 for i in range(40))


# --- dead letters ----------------------------------------------------------------------------
@pytest.fixture
def dlq_path(tmp_path):
    path = tmp_path / "dlq.db"
    configure_dead_letter_queue(path)
    yield path
    configure_dead_letter_queue(None)


def test_exhausted_call_is_dead_lettered(telemetry, dlq_path):
    @with_retry(RetryConfig(max_attempts=2, base_delay=0, dead_letter=True, name="retry.dl"),
                sleep=lambda s: None)
    def send(order_id: int, *, amount: float) -> None:
        raise ConnectionError("payment gateway down")

    with pytest.raises(ConnectionError):
        send(42, amount=9.5)
    (item,) = dead_letter_queue.get_all()
    assert item.operation == "retry.dl"
    assert item.payload == {"args": [42], "kwargs": {"amount": 9.5}}
    assert item.error_type == "ConnectionError"
    assert item.error_message == "payment gateway down"
    assert item.metadata == {"retry.name": "retry.dl", "attempts": 2}
    assert dlq_path.exists()
    assert telemetry.events(semconv.EVENT_DEADLETTER_ENQUEUED)


def test_unserialisable_arguments_keep_the_original_error(caplog, tmp_path):
    queue = DeadLetterQueue(tmp_path / "q.db")

    @with_retry(RetryConfig(max_attempts=1, dead_letter=queue, name="retry.dl.bad"))
    def send(obj: object) -> None:
        raise ConnectionError("down")

    with caplog.at_level(logging.WARNING, logger="otelprod.error_handling"), \
            pytest.raises(ConnectionError) as err:
        send(object())
    assert "payload['args'][0] is a object" in caplog.text
    assert any("not dead-lettered" in n for n in getattr(err.value, "__notes__", []))
    assert queue.count() == 0


def test_async_exhausted_call_is_dead_lettered(tmp_path):
    queue = DeadLetterQueue(tmp_path / "a.db")

    async def nosleep(_s: float) -> None:
        return None

    @with_retry(RetryConfig(max_attempts=2, base_delay=0, dead_letter=queue), sleep=nosleep)
    async def push(item: str) -> None:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        asyncio.run(push("x"))
    (item,) = queue.get_all()
    assert item.payload == {"args": ["x"], "kwargs": {}}
