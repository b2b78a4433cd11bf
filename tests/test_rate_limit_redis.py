"""The Redis backend against a real redis-server on loopback: the same decisions
as in process, one limit shared by two real processes, and failing open or
closed (visibly) when Redis is gone, including after a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from opentelemetry import trace

from otelprod import semconv
from otelprod.errors import ConfigurationError
from otelprod.rate_limiter import (
    RateLimitConfig,
    RateLimiter,
    RateLimitManager,
    RateLimitStrategy,
    RedisRateLimiter,
)
from tests.conftest import Telemetry, free_port, python_env, run_python, start_redis_server
from tests.rate_limit_helpers import FakeClock, points, unique

pytestmark = pytest.mark.redis
SHARED = [RateLimitStrategy.TOKEN_BUCKET, RateLimitStrategy.SLIDING_WINDOW]


@pytest.mark.parametrize("strategy", SHARED)
def test_redis_decides_exactly_as_the_in_process_limiter(
    redis_server: str, strategy: RateLimitStrategy
) -> None:
    """Same fake clock, same requests (ties, multi-token, waits): same answers."""
    config = RateLimitConfig(100, 5, strategy, max_wait=1.0)
    clock = FakeClock(sleep_advances=False)
    local = RateLimiter(config, name=unique("local"), clock=clock, sleep=clock.sleep)
    shared = RedisRateLimiter(config, redis_client=redis_server, name=unique("shared"),
                              clock=clock, sleep=clock.sleep)
    rng = random.Random(strategy.value)
    t_us = 10**9  # arbitrary origin, whole microseconds
    agree = 0
    for i in range(1_500):
        t_us += rng.choice((0, 0, 10_000, 50_000, rng.randrange(0, 20_000)))
        clock.now = t_us / 1e6
        tokens = rng.choice((1, 1, 1, 2, 3))
        wait = rng.choice((False, False, 0.02, 0.5))
        want = local.acquire(tokens, wait=wait)
        got = shared.acquire(tokens, wait=wait)
        assert got.allowed == want.allowed, f"request {i} at {t_us} µs"
        assert got.remaining == want.remaining, f"request {i}"
        assert got.retry_after == pytest.approx(want.retry_after, abs=1e-6)
        assert got.waited == pytest.approx(want.waited, abs=1e-6)
        agree += want.allowed
    assert 300 < agree < 1_500  # both outcomes were exercised


CHILD = """
import json, time
from otelprod.rate_limiter import rate_limit_manager, RateLimitConfig
lim = rate_limit_manager.register_limiter(
    "shared", RateLimitConfig({rate}, {burst}, {strategy!r}), redis={url!r},
    redis_key={key!r}, failure_mode="closed")
while time.time() < {start}:
    time.sleep(0.001)
t0, allowed, tries = time.time(), 0, 0
while time.time() < {end}:
    tries += 1
    allowed += lim.acquire().allowed
t1 = time.time()
print(json.dumps(dict(allowed=allowed, tries=tries, t0=t0, t1=t1,
                      failures=lim.stats()["backend_failures"])))
"""


@pytest.mark.parametrize("strategy", SHARED)
def test_two_processes_sharing_a_limit_stay_within_it(
    redis_server: str, strategy: RateLimitStrategy
) -> None:
    rate, burst = 40.0, 10
    start = time.time() + 3.0  # both interpreters are up and waiting by then
    code = CHILD.format(rate=rate, burst=burst, strategy=strategy.value, url=redis_server,
                        key=unique("otelprod:test"), start=start, end=start + 1.5)
    results: list[dict[str, float]] = []

    def child() -> None:
        proc = run_python(code, env=python_env(), timeout=60)
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads(proc.stdout))

    threads = [threading.Thread(target=child) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    span = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    total = sum(r["allowed"] for r in results)
    if strategy is RateLimitStrategy.TOKEN_BUCKET:
        bound = burst + rate * span
    else:  # at most a burst per window of burst/rate seconds
        bound = burst * (math.floor(span / (burst / rate)) + 1)
    assert total <= bound + 1e-6, (total, bound, results)
    # both competed, were refused most of the time, and together used the limit
    assert all(r["tries"] > r["allowed"] > 0 for r in results)
    assert total >= 0.5 * bound
    assert all(r["failures"] == 0 for r in results)


def test_per_key_limits_and_reset_on_redis(redis_server: str) -> None:
    lim = RedisRateLimiter(RateLimitConfig(1, 2), redis_client=redis_server, name=unique("k"))
    assert lim.acquire(key="ann") and lim.acquire(key="ann")
    assert not lim.acquire(key="ann")
    assert lim.acquire(key="bob") and lim.acquire()
    lim.reset(key="ann")
    assert lim.acquire(key="ann")
    lim.reset()
    client = redis.Redis.from_url(redis_server)
    assert list(client.scan_iter(match=lim.redis_key + "*")) == []
    assert lim.acquire(key="bob").remaining == 1


def test_async_acquire_and_manager_registration_on_redis(redis_server: str) -> None:
    manager = RateLimitManager()
    lim = manager.register_limiter(unique("async"), RateLimitConfig(20, 1), redis=redis_server)

    async def main() -> list[bool]:
        first = await lim.acquire_async()
        refused = await lim.acquire_async()
        waited = await lim.acquire_async(wait=True)
        assert 0 < waited.waited <= 0.05 + 1e-6
        return [first.allowed, refused.allowed, waited.allowed]

    assert asyncio.run(main()) == [True, False, True]
    stats = json.loads(json.dumps(manager.get_all_stats(), allow_nan=False))
    (entry,) = stats["limiters"].values()
    assert entry["backend"] == "redis" and entry["backend_healthy"] is True
    assert (entry["allowed"], entry["waited"], entry["rejected"]) == (1, 1, 1)


def test_unsupported_strategy_and_bad_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="'leaky_bucket' is not available on Redis"):
        RedisRateLimiter(RateLimitConfig(strategy=RateLimitStrategy.LEAKY_BUCKET),
                         redis_client="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match=r"failure_mode: str 'ajar' .* open, closed"):
        RedisRateLimiter(redis_client="redis://127.0.0.1:1/0", failure_mode="ajar")
    with pytest.raises(ConfigurationError, match="timeout: int 0"):
        RedisRateLimiter(redis_client="redis://127.0.0.1:1/0", timeout=0)
    with pytest.raises(ConfigurationError, match="redis: int 5"):
        RedisRateLimiter(redis_client=5)  # type: ignore[arg-type]


# --- Redis unreachable --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["open", "closed"])
def test_unreachable_redis_fails_as_configured_and_says_so(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    lim = RedisRateLimiter(RateLimitConfig(10, 2), redis_client=url, name=unique("down"),
                           failure_mode=mode, failure_retry_after=2.5)
    with caplog.at_level(logging.WARNING, logger="otelprod.rate_limiter"), \
            trace.get_tracer("test").start_as_current_span("call"):
        statuses = [lim.acquire() for _ in range(3)]
    if mode == "open":
        assert all(s.allowed for s in statuses)
    else:
        assert not any(s.allowed for s in statuses)
        assert statuses[0].retry_after == 2.5
    assert sum("Redis unreachable" in r.getMessage() for r in caplog.records) == 1

    stats = lim.stats()
    assert stats["backend_healthy"] is False and stats["backend_failures"] == 3
    assert "ConnectionError" in stats["last_backend_error"]
    m = telemetry.metrics()
    (failures,) = points(m, semconv.METRIC_RATELIMITER_BACKEND_FAILURES,
                         {semconv.RATELIMITER_NAME: lim.name})
    assert failures.value == 3
    assert failures.attributes[semconv.RATELIMITER_FAILURE_MODE] == mode
    assert failures.attributes[semconv.ERROR_TYPE] == "ConnectionError"
    result = "allowed" if mode == "open" else "rejected"
    (requests,) = points(m, semconv.METRIC_RATELIMITER_REQUESTS,
                         {semconv.RATELIMITER_NAME: lim.name, semconv.RATELIMITER_RESULT: result})
    assert requests.value == 3
    events = telemetry.events(semconv.EVENT_RATELIMITER_BACKEND_FAILURE)
    assert len(events) == 3
    assert events[0].attributes[semconv.RATELIMITER_FAILURE_MODE] == mode


class OwnRedis:
    """A redis-server this test may SIGKILL and restart on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.procs.append(start_redis_server(self.port, self.directory))

    def kill(self) -> None:
        self.procs[-1].kill()  # SIGKILL: no goodbye
        self.procs[-1].wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    for p in server.procs:
        p.kill()
        p.wait(timeout=10)


def test_fails_closed_after_sigkill_and_recovers_when_redis_is_back(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    lim = RedisRateLimiter(RateLimitConfig(100, 5),
                           redis_client=f"redis://127.0.0.1:{own_redis.port}/0",
                           name=unique("kill"), failure_mode="closed")
    assert lim.acquire().allowed
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="otelprod.rate_limiter"):
        assert not lim.acquire().allowed
        assert lim.stats()["backend_healthy"] is False
        own_redis.start()  # a fresh, empty server: the script is loaded again
        status = lim.acquire()
    assert status.allowed and status.remaining == 4
    assert lim.stats()["backend_healthy"] is True
    assert "Redis reachable again" in caplog.text
