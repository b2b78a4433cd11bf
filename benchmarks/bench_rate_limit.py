"""Rate-limiter benchmarks against the ``limits`` library, in one run.

In process: one uncontended ``acquire`` per strategy against ``limits``'
in-memory strategies (moving window, fixed window, sliding window counter),
paired by kind: our exact sliding log with their moving window (also a log),
fixed window with fixed window, and the token and leaky buckets with the
sliding window counter (their O(1) smoothing strategy). Two regimes:

* *allowed*: a limit no call reaches (10^9 per hour), both sides reset before
  each round, so every call takes the grant path;
* *saturated*: 100 per second, so after the first 100 calls of each second
  nearly every call is refused.

With Redis (when ``redis-server`` is installed, one is started on a free
loopback port): one acquire round trip, ours (one Lua script) against
``limits``' Redis storage on the same server.

An SDK MeterProvider is installed first (unless one already is), so the
figures include the telemetry a production process pays for.

    python -m benchmarks.bench_rate_limit
"""

from __future__ import annotations

import gc
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.strategies import (
    RateLimiter as LimitsStrategy,
)
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from benchmarks._harness import Result, print_table
from otelprod.rate_limiter import RateLimitConfig, RateLimiter, RateLimitStrategy

S = RateLimitStrategy
PAIRS: list[tuple[RateLimitStrategy, type[LimitsStrategy]]] = [
    (S.TOKEN_BUCKET, SlidingWindowCounterRateLimiter),
    (S.LEAKY_BUCKET, SlidingWindowCounterRateLimiter),
    (S.SLIDING_WINDOW, MovingWindowRateLimiter),
    (S.FIXED_WINDOW, FixedWindowRateLimiter),
]
HUGE = 10**9  # per hour: never reached


def _ensure_sdk() -> None:
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def _timed(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def _compare(ours: Callable[[], object], anchor: Callable[[], object],
             before_round: Callable[[], object], *, number: int,
             rounds: int) -> tuple[float, float]:
    """Median µs per call, interleaved round by round, state reset before each."""
    ours(), anchor()
    a, b = [], []
    gc.collect()
    for _ in range(rounds):
        before_round()
        a.append(_timed(ours, number))
        b.append(_timed(anchor, number))
    return statistics.median(a), statistics.median(b)


def _ours(strategy: RateLimitStrategy, rps: float, burst: int, name: str) -> RateLimiter:
    return RateLimiter(RateLimitConfig(rps, burst, strategy), name=f"bench-{name}")


def _in_process(quick: bool) -> list[Result]:
    number, rounds = (2_000, 3) if quick else (20_000, 7)
    results = []
    for regime in ("allowed", "saturated"):
        for strategy, anchor_cls in PAIRS:
            storage = MemoryStorage()
            anchor = anchor_cls(storage)
            item: RateLimitItem
            if regime == "allowed":  # same long-run rate on both sides, never reached
                lim = _ours(strategy, HUGE / 3600, HUGE, f"{strategy.value}-{regime}")
                item = RateLimitItemPerHour(HUGE)
            else:  # 100 per second; our windows are burst/rate = 1 s
                lim = _ours(strategy, 100.0, 100, f"{strategy.value}-{regime}")
                item = RateLimitItemPerSecond(100)

            def reset(lim: RateLimiter = lim, storage: MemoryStorage = storage) -> None:
                lim.reset()
                storage.reset()

            ours, theirs = _compare(lim.acquire, partial(anchor.hit, item), reset,
                                    number=number, rounds=rounds)
            results.append(Result(
                f"acquire {strategy.value} ({regime})", "µs/call", ours,
                f"limits {anchor_cls.__name__.removesuffix('RateLimiter')}", theirs,
                target="<= 0.5x" if regime == "allowed" else "",
            ))
    # per-key: a limit per user, as a multi-tenant API would use it
    storage = MemoryStorage()
    anchor = SlidingWindowCounterRateLimiter(storage)
    lim = _ours(S.TOKEN_BUCKET, HUGE / 3600, HUGE, "keyed")
    item = RateLimitItemPerHour(HUGE)
    ours, theirs = _compare(lambda: lim.acquire(key="user-42"),
                            lambda: anchor.hit(item, "user-42"),
                            lambda: (lim.reset(), storage.reset()),  # type: ignore[func-returns-value]
                            number=number, rounds=rounds)
    results.append(Result("acquire token_bucket, per key (allowed)", "µs/call", ours,
                          "limits SlidingWindowCounter", theirs, target="<= 0.5x"))
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    import redis

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _redis(quick: bool) -> list[Result]:
    from otelprod.rate_limiter import RedisRateLimiter

    number, rounds = (200, 3) if quick else (2_000, 5)
    results = []
    with _redis_server() as url:
        if url is None:
            return [Result("redis acquire", "µs/call", float("nan"), "limits RedisStorage",
                           float("nan"), note="skipped: redis-server is not installed")]
        storage = RedisStorage(url)
        item = RateLimitItemPerHour(HUGE)
        for strategy, anchor_cls in [(S.TOKEN_BUCKET, SlidingWindowCounterRateLimiter),
                                     (S.TOKEN_BUCKET, FixedWindowRateLimiter),
                                     (S.SLIDING_WINDOW, MovingWindowRateLimiter)]:
            lim = RedisRateLimiter(RateLimitConfig(HUGE / 3600, HUGE, strategy),
                                   redis_client=url, name=f"bench-redis-{strategy.value}")
            anchor = anchor_cls(storage)

            def reset(lim: RedisRateLimiter = lim) -> None:
                lim.reset()
                storage.reset()

            ident = anchor_cls.__name__  # a key per strategy: they store different types
            ours, theirs = _compare(lim.acquire, partial(anchor.hit, item, ident),
                                    reset, number=number, rounds=rounds)
            results.append(Result(
                f"redis acquire {strategy.value} (round trip)", "µs/call", ours,
                f"limits Redis {anchor_cls.__name__.removesuffix('RateLimiter')}", theirs,
                note="one Lua script per acquire"))
    return results


def run(quick: bool = False) -> list[Result]:
    _ensure_sdk()
    return _in_process(quick) + _redis(quick)


if __name__ == "__main__":
    print_table(run())
