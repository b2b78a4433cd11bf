"""The limiter's contract: config checks, waiting, per-key limits, async, the
decorator, the manager, stats and telemetry."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time

import pytest
from opentelemetry import trace

from otelprod import semconv
from otelprod.errors import ConfigurationError
from otelprod.rate_limiter import (
    Backpressure,
    RateLimitConfig,
    RateLimiter,
    RateLimitExceeded,
    RateLimitManager,
    RateLimitStatus,
    RateLimitStrategy,
    rate_limit_manager,
    rate_limited,
)
from tests.conftest import Telemetry
from tests.rate_limit_helpers import FakeClock, points, unique

ALL = list(RateLimitStrategy)


def make(strategy: RateLimitStrategy = RateLimitStrategy.TOKEN_BUCKET, *, rps: float = 10.0,
         burst: int = 2, clock: FakeClock | None = None, **kw: object) -> RateLimiter:
    clock = clock or FakeClock()
    config = RateLimitConfig(rps, burst, strategy, **kw)  # type: ignore[arg-type]
    return RateLimiter(config, name=unique("t"), clock=clock, sleep=clock.sleep,
                       async_sleep=clock.async_sleep)


# --- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"requests_per_second": 0}, ["requests_per_second", "int 0", "> 0"]),
        ({"requests_per_second": -5.0}, ["requests_per_second", "float -5.0", "> 0"]),
        ({"requests_per_second": float("inf")}, ["requests_per_second", "finite"]),
        ({"requests_per_second": "10"}, ["requests_per_second", "str '10'"]),
        ({"burst_size": 0}, ["burst_size", "int 0", ">= 1"]),
        ({"burst_size": -3}, ["burst_size", "int -3", ">= 1"]),
        ({"burst_size": 2.5}, ["burst_size", "float 2.5", "int >= 1"]),
        ({"strategy": "token-bucket"}, ["strategy", "str 'token-bucket'", "token_bucket",
                                        "leaky_bucket", "sliding_window", "fixed_window"]),
        ({"strategy": 3}, ["strategy", "int 3"]),
        ({"max_wait": -1}, ["max_wait", "int -1", ">= 0"]),
        ({"wait_on_rate_limit": "yes"}, ["wait_on_rate_limit", "str 'yes'", "True or False"]),
        ({"max_keys": 0}, ["max_keys", "int 0", ">= 1"]),
    ],
)
def test_bad_configuration_is_refused_naming_key_type_and_range(
    kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimitConfig(**kwargs)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimitConfig(requests_per_second=0, burst_size=0, strategy="nope")  # type: ignore[arg-type]
    assert len(info.value.problems) == 3
    assert isinstance(info.value, ValueError)  # catchable as a plain ValueError too


def test_strategy_may_be_given_by_name() -> None:
    config = RateLimitConfig(5, 5, "SLIDING_WINDOW")  # type: ignore[arg-type]
    assert config.strategy is RateLimitStrategy.SLIDING_WINDOW
    assert type(RateLimiter(config, name=unique("n"))).__name__ == "SlidingWindow"


@pytest.mark.parametrize("tokens", [0, -1, 3, 1.5, "1", None])
def test_impossible_token_counts_are_refused(tokens: object) -> None:
    lim = make(burst=2)
    with pytest.raises(ValueError, match=r"tokens: .* from 1 to burst_size=2"):
        lim.acquire(tokens=tokens)  # type: ignore[arg-type]


@pytest.mark.parametrize("wait", [-1, "yes", object()])
def test_bad_wait_is_refused(wait: object) -> None:
    with pytest.raises(ValueError, match="wait: "):
        make().acquire(wait=wait)  # type: ignore[arg-type]


# --- status and waiting ---------------------------------------------------------------------
def test_status_fields_and_truthiness() -> None:
    lim = make(burst=2)
    first = lim.acquire()
    assert first == RateLimitStatus(True, 0.0, 1, 2, 0.0) and first
    lim.acquire()
    refused = lim.acquire()
    assert not refused and refused.allowed is False
    assert refused.retry_after == pytest.approx(0.1)
    assert refused.remaining == 0 and refused.limit == 2 and refused.waited == 0.0


@pytest.mark.parametrize("strategy", ALL)
def test_wait_sleeps_exactly_as_long_as_needed(strategy: RateLimitStrategy) -> None:
    clock = FakeClock(100.0)
    lim = make(strategy, rps=10, burst=2, clock=clock)
    if strategy is RateLimitStrategy.LEAKY_BUCKET:
        assert lim.acquire()  # the leaky bucket lets one through at a time
        expected = 0.1
    else:
        assert lim.acquire() and lim.acquire()
        # token bucket: one token refills in 0.1 s; windows: the first grant leaves at 0.2 s
        expected = 0.1 if strategy is RateLimitStrategy.TOKEN_BUCKET else 0.2
    status = lim.acquire(wait=True)
    assert status.allowed
    assert status.waited == pytest.approx(expected)
    assert clock.sleeps == [pytest.approx(expected)]
    assert clock.now == pytest.approx(100.0 + expected)


@pytest.mark.parametrize("strategy", ALL)
def test_waiters_queue_for_successive_slots_and_never_beyond_max_wait(
    strategy: RateLimitStrategy,
) -> None:
    clock = FakeClock(sleep_advances=False)  # everyone arrives at the same instant
    # windows of burst/rate = 0.1 s; the leaky bucket needs room for its waiters
    burst = 4 if strategy is RateLimitStrategy.LEAKY_BUCKET else 1
    lim = make(strategy, rps=10, burst=burst, clock=clock, max_wait=0.35)
    assert lim.acquire()
    waits = [lim.acquire(wait=True) for _ in range(5)]
    # each waiter gets the next slot, 0.1 s apart
    assert [s.allowed for s in waits] == [True, True, True, False, False]
    assert [s.waited for s in waits[:3]] == pytest.approx([0.1, 0.2, 0.3])
    assert waits[3].retry_after == pytest.approx(0.4)
    assert max(clock.sleeps) <= 0.35


def test_wait_none_follows_the_config_and_a_number_caps_the_wait() -> None:
    clock = FakeClock(sleep_advances=False)
    lim = make(rps=10, burst=1, clock=clock, wait_on_rate_limit=True, max_wait=0.25)
    lim.acquire()
    assert lim.acquire().waited == pytest.approx(0.1)  # wait=None -> waits, per config
    assert not lim.acquire(wait=False)
    assert not lim.acquire(wait=0.05)  # needs 0.2 s
    assert lim.acquire(wait=60).waited == pytest.approx(0.2)  # capped at 0.25: fits
    refused = lim.acquire(wait=60)  # needs 0.3 s > max_wait
    assert not refused and refused.retry_after == pytest.approx(0.3)
    assert clock.sleeps == pytest.approx([0.1, 0.2])


def test_a_full_leaky_bucket_refuses_waiters_it_has_no_room_for() -> None:
    clock = FakeClock(sleep_advances=False)
    lim = make(RateLimitStrategy.LEAKY_BUCKET, rps=10, burst=2, clock=clock, max_wait=10)
    assert lim.acquire().remaining == 1
    assert lim.acquire(wait=True).waited == pytest.approx(0.1)  # the bucket holds 2
    refused = lim.acquire(wait=True)
    assert not refused and refused.remaining == 0


def test_async_acquire_waits_with_the_async_sleep() -> None:
    clock = FakeClock()
    lim = make(rps=10, burst=1, clock=clock)

    async def main() -> list[RateLimitStatus]:
        return [await lim.acquire_async(wait=True) for _ in range(3)]

    statuses = asyncio.run(main())
    assert all(statuses)
    assert [s.waited for s in statuses] == pytest.approx([0.0, 0.1, 0.1])
    assert clock.now == pytest.approx(0.2)


def test_async_acquire_with_real_time_does_not_block_the_loop() -> None:
    lim = RateLimiter(RateLimitConfig(50, 1), name=unique("real"))

    async def main() -> tuple[list[RateLimitStatus], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        statuses = [await lim.acquire_async(wait=True) for _ in range(3)]
        task.cancel()
        return statuses, ticks

    statuses, ticks = asyncio.run(main())
    assert all(statuses) and statuses[2].waited > 0
    assert ticks > 0  # the loop ran while we waited


# --- per-key limits ----------------------------------------------------------------------------
def test_each_key_has_its_own_limit_and_the_key_table_is_bounded_lru() -> None:
    lim = make(burst=1, max_keys=3)
    for user in ("a", "b", "c"):
        assert lim.acquire(key=user)
        assert not lim.acquire(key=user)
    assert lim.acquire(key=None)  # the unkeyed limit is separate
    assert not lim.acquire(key="a")  # touch a: b is now least recently used
    assert lim.acquire(key="d")  # evicts b
    assert lim.stats()["keys"] == 3
    assert lim.acquire(key="b")  # b was forgotten: a fresh allowance
    assert not lim.acquire(key="a") and not lim.acquire(key="d")


def test_reset_restores_the_full_allowance() -> None:
    lim = make(burst=2)
    lim.acquire(), lim.acquire(), lim.acquire(key="k")
    assert not lim.acquire()
    lim.reset(key="k")
    assert lim.available(key="k") == 2
    lim.reset()
    assert lim.available() == 2
    assert lim.acquire() and lim.acquire()
    assert lim.stats()["rejected"] == 1  # counters survive a reset


# --- decorator --------------------------------------------------------------------------------
def test_decorator_raises_rate_limit_exceeded_when_refused() -> None:
    lim = make(burst=2)
    calls = []

    @rate_limited(lim)
    def work(x: int) -> int:
        calls.append(x)
        return x * 2

    assert work(1) == 2 and work(2) == 4
    with pytest.raises(RateLimitExceeded) as info:
        work(3)
    assert calls == [1, 2]
    assert info.value.retry_after == pytest.approx(0.1)
    assert lim.name in str(info.value) and "retry after 0.100 s" in str(info.value)
    assert work.__name__ == "work"


def test_decorator_on_async_functions_with_a_key_and_a_name() -> None:
    name = unique("deco")
    clock = FakeClock()
    rate_limit_manager.register_limiter(name, RateLimitConfig(10, 1), clock=clock,
                                        sleep=clock.sleep)

    @rate_limited(name, key=lambda user, **_: user)
    async def fetch(user: str) -> str:
        return user

    async def main() -> None:
        assert await fetch("ann") == "ann"
        assert await fetch("bob") == "bob"
        with pytest.raises(RateLimitExceeded):
            await fetch("ann")

    asyncio.run(main())


def test_a_decorated_call_outside_any_span_gets_its_own(telemetry: Telemetry) -> None:
    lim = make(burst=1)

    @rate_limited(lim)
    def ping() -> str:
        return "pong"

    ping()
    with pytest.raises(RateLimitExceeded):
        ping()
    spans = telemetry.spans("test_a_decorated_call_outside_any_span_gets_its_own.<locals>.ping")
    assert len(spans) == 2
    assert [e.name for e in spans[1].events] == [semconv.EVENT_RATELIMITER_REJECTED, "exception"]
    with trace.get_tracer("test").start_as_current_span("outer"), \
            pytest.raises(RateLimitExceeded):
        ping()
    assert len(telemetry.spans()) == 3  # inside a span: no extra span


# --- manager, stats, seed-shaped use --------------------------------------------------------------
def test_get_limiter_of_an_unknown_name_uses_the_default_config_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = RateLimitManager(RateLimitConfig(5, 3))
    with caplog.at_level(logging.WARNING, logger="otelprod.rate_limiter"):
        first = manager.get_limiter("twitter_api")
        again = manager.get_limiter("twitter_api")
    assert first is again and first.config == RateLimitConfig(5, 3)
    assert [r.getMessage() for r in caplog.records].count(
        "rate limiter 'twitter_api' was never registered; using the default config "
        "(5/s, burst 3, token_bucket)") == 1
    with pytest.raises(KeyError, match="no rate limiter named 'other'"):
        manager.get_limiter("other", create=False)


def test_register_replaces_and_counters_continue() -> None:
    manager = RateLimitManager()
    name = unique("rep")
    old = manager.register_limiter(name, RateLimitConfig(1, 1))
    old.acquire(), old.acquire()
    new = manager.register_limiter(name, RateLimitConfig(100, 50))
    assert manager.get_limiter(name) is new and new.available() == 50
    new.acquire()
    assert new.stats()["total_requests"] == 3  # one counter per name, never backwards


def test_get_all_stats_is_json_serialisable() -> None:
    manager = RateLimitManager()
    clock = FakeClock()
    for strategy in ALL:
        lim = manager.register_limiter(f"{strategy.value}-{unique('s')}",
                                       RateLimitConfig(10, 2, strategy), clock=clock)
        lim.acquire(), lim.acquire(), lim.acquire()
    manager.register_backpressure("queue", 10).add_item()
    stats = json.loads(json.dumps(manager.get_all_stats(), allow_nan=False))
    assert set(stats) == {"limiters", "backpressure"}
    assert len(stats["limiters"]) == 4
    for entry in stats["limiters"].values():
        assert entry["total_requests"] == 3 and entry["backend"] == "memory"
        assert 0 < entry["block_rate"] <= 1
    assert stats["backpressure"]["queue"]["queue_size"] == 1


# --- telemetry ------------------------------------------------------------------------------------
def test_requests_are_counted_by_result_and_waits_timed(telemetry: Telemetry) -> None:
    clock = FakeClock()
    lim = make(rps=10, burst=2, clock=clock)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("work"):
        lim.acquire(), lim.acquire()
        refused = lim.acquire()
        waited = lim.acquire(wait=True)
    assert not refused and waited.waited == pytest.approx(0.1)

    m = telemetry.metrics()
    name = {semconv.RATELIMITER_NAME: lim.name}
    by_result = {
        r: sum(p.value for p in points(m, semconv.METRIC_RATELIMITER_REQUESTS,
                                       {**name, semconv.RATELIMITER_RESULT: r}))
        for r in ("allowed", "waited", "rejected")
    }
    assert by_result == {"allowed": 2, "waited": 1, "rejected": 1}
    (hist,) = points(m, semconv.METRIC_RATELIMITER_WAIT_DURATION, name)
    assert hist.count == 1 and hist.sum == pytest.approx(0.1)
    assert hist.explicit_bounds[0] == semconv.DURATION_BUCKETS_S[0]  # seconds, not ms
    (avail,) = points(m, semconv.METRIC_RATELIMITER_AVAILABLE, name)
    assert avail.value == pytest.approx(0.0, abs=1e-6)

    (span,) = telemetry.spans("work")
    events = {e.name: dict(e.attributes) for e in span.events}
    assert events[semconv.EVENT_RATELIMITER_REJECTED] == {
        semconv.RATELIMITER_NAME: lim.name, semconv.RATELIMITER_RETRY_AFTER: pytest.approx(0.1)}
    assert events[semconv.EVENT_RATELIMITER_WAIT][semconv.RATELIMITER_DELAY] == \
        pytest.approx(0.1)


def test_no_span_events_without_a_recording_span(telemetry: Telemetry) -> None:
    lim = make(burst=1)
    lim.acquire(), lim.acquire()
    assert telemetry.events(semconv.EVENT_RATELIMITER_REJECTED) == []


def test_available_gauge_reflects_tokens_refilling(telemetry: Telemetry) -> None:
    clock = FakeClock()
    lim = make(rps=10, burst=5, clock=clock)
    for _ in range(5):
        lim.acquire()
    clock.now = 0.25  # 2.5 tokens back
    (avail,) = points(telemetry.metrics(), semconv.METRIC_RATELIMITER_AVAILABLE,
                      {semconv.RATELIMITER_NAME: lim.name})
    assert avail.value == pytest.approx(2.5)


# --- the demo scene -----------------------------------------------------------------------------
def test_demo_scene_shows_rejections_waits_and_shedding(telemetry: Telemetry) -> None:
    from otelprod.demo import SCENES, run_demo

    assert "otelprod.demo.rate_limiting" in SCENES
    steps: list[str] = []

    class Out:
        def step(self, message: str) -> None:
            steps.append(message)

    run_demo(Out(), ["otelprod.demo.rate_limiting"])
    assert len(steps) == 5
    assert telemetry.events(semconv.EVENT_RATELIMITER_REJECTED)
    assert telemetry.events(semconv.EVENT_RATELIMITER_WAIT)
    assert telemetry.events(semconv.EVENT_BACKPRESSURE_REJECTED)
    m = telemetry.metrics()
    assert points(m, semconv.METRIC_RATELIMITER_WAIT_DURATION,
                  {semconv.RATELIMITER_NAME: "demo.partner_api"})
    assert points(m, semconv.METRIC_BACKPRESSURE_REJECTIONS,
                  {semconv.BACKPRESSURE_NAME: "demo.jobs"})


def test_a_lock_held_at_fork_does_not_deadlock_the_child() -> None:
    lim = make(burst=5)
    bp = Backpressure(unique("fork"), 3)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lim._lock, bp._lock:  # another thread is inside acquire() when we fork
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: would block forever on the inherited, held locks
        try:
            ok = lim.acquire().allowed and bp.should_accept()[0]
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    release.set()
    thread.join()
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child deadlocked on a limiter lock")
    assert os.waitstatus_to_exitcode(done[1]) == 0
