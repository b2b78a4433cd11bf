"""A Redis that stalls or dies never hangs a breaker or limiter call, nor floods the log.

A real redis-server on loopback is stalled (SIGSTOP: it keeps its socket and
answers nothing) and killed (SIGKILL: connections refused) under a breaker
and a limiter that share state through it. Before, a breaker call took 6 to
15 s (redis-py's 5 s timeout and ten retries) and logged two ERROR records
with tracebacks. Each call must now come back within a small multiple of the
configured timeout, and the whole outage must be said in one line.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otelprod.error_handling import CircuitBreaker, CircuitBreakerConfig
from otelprod.rate_limiter import RateLimitConfig
from otelprod.rate_limiter._redis import RedisRateLimiter
from tests.conftest import start_redis_server
from tests.otlp_receiver import free_port

pytestmark = pytest.mark.redis

TIMEOUT = 0.25
#: generous: a handful of Redis round trips per call, each cut at TIMEOUT
CALL_BOUND_S = 3.0


class Redis:
    """A redis-server the test can stall, resume, kill and start again (same port)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port = tmp, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = start_redis_server(self.port, self.tmp)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis_ctl(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    took = []
    for _ in range(n):
        started = time.monotonic()
        fn()
        took.append(time.monotonic() - started)
    return took


def _said(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING
            and r.name.startswith(("otelprod", "pybreaker"))]


def test_a_stalled_then_dead_redis_never_hangs_a_breaker_call(
        redis_ctl: Redis, caplog: pytest.LogCaptureFixture) -> None:
    breaker = CircuitBreaker("redis-outage", CircuitBreakerConfig(
        failure_threshold=100, redis_url=redis_ctl.url, redis_timeout=TIMEOUT))
    assert breaker.call(lambda: "ok") == "ok"
    caplog.set_level(logging.WARNING)
    redis_ctl.signal(signal.SIGSTOP)  # stalled: the socket is there, no answer comes
    try:
        stalled = _timed(lambda: breaker.call(lambda: "ok"), 5)
    finally:
        redis_ctl.signal(signal.SIGCONT)
    redis_ctl.signal(signal.SIGKILL)  # dead: connections refused
    dead = _timed(lambda: breaker.call(lambda: "ok"), 20)
    said = _said(caplog)
    redis_ctl.start()  # back: the shared state is read again
    assert breaker.call(lambda: "ok") == "ok"
    assert max(stalled) < CALL_BOUND_S and max(dead) < CALL_BOUND_S, (stalled, dead)
    assert len(said) == 1, [r.getMessage() for r in said]  # the outage, said once
    assert said[0].exc_info is None and "Redis failed" in said[0].getMessage()
    print(f"\nbreaker call with Redis stalled: max {max(stalled):.2f} s, dead: max "
          f"{max(dead):.3f} s (timeout {TIMEOUT} s); {len(said)} log line for 25 calls")


def test_a_stalled_then_dead_redis_never_hangs_a_limiter_decision(
        redis_ctl: Redis, caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter(RateLimitConfig(requests_per_second=1000, burst_size=1000),
                               redis_client=redis_ctl.url, name="redis-outage",
                               timeout=TIMEOUT, failure_mode="open")
    assert limiter.acquire()
    caplog.set_level(logging.WARNING)
    redis_ctl.signal(signal.SIGSTOP)
    try:
        stalled = _timed(limiter.acquire, 5)
    finally:
        redis_ctl.signal(signal.SIGCONT)
    redis_ctl.signal(signal.SIGKILL)
    dead = _timed(limiter.acquire, 20)
    said = _said(caplog)
    assert max(stalled) < CALL_BOUND_S and max(dead) < CALL_BOUND_S, (stalled, dead)
    assert limiter.stats()["backend_failures"] == 25  # each failed open, and was counted
    assert len(said) == 1 and said[0].exc_info is None, [r.getMessage() for r in said]
    print(f"\nlimiter decision with Redis stalled: max {max(stalled):.2f} s, dead: max "
          f"{max(dead):.3f} s; {len(said)} log line for 25 decisions")
