"""Contention: 4 threads x 50,000 acquires grant exactly the permitted number.

The clock ticks once per reading and the limiter reads it under its lock, so
whatever the interleaving, the requests form one sequence in time; the count
granted must equal that of the same sequence run on one thread, and the
strategy's formula. A lost update or a double grant changes the count.
"""

from __future__ import annotations

import math
import sys
import threading

import pytest

from otelprod.rate_limiter import RateLimitConfig, RateLimiter, RateLimitStrategy
from tests.rate_limit_helpers import TickClock, unique

THREADS, EACH = 4, 50_000
TOTAL = THREADS * EACH
TICK = 1e-4  # 10,000 requests/s offered: 20 s of simulated time
RATE, BURST = 100.0, 20
LAST = (TOTAL - 1) * TICK  # 19.9999 s
WINDOWS = math.ceil(TOTAL * TICK / (BURST / RATE))  # 100 windows of 0.2 s

EXPECTED = {
    RateLimitStrategy.TOKEN_BUCKET: BURST + math.floor(RATE * LAST),  # 2019
    RateLimitStrategy.LEAKY_BUCKET: math.floor(RATE * LAST) + 1,  # 2000
    RateLimitStrategy.SLIDING_WINDOW: WINDOWS * BURST,  # 2000
    RateLimitStrategy.FIXED_WINDOW: WINDOWS * BURST,  # 2000
}


@pytest.fixture(autouse=True)
def _frequent_thread_switches() -> object:
    """Switch threads every 100 µs instead of 5 ms, to interleave as much as possible."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)


def hammer(lim: RateLimiter, key: str | None = None) -> list[int]:
    granted = [0] * THREADS
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        try:
            start.wait()
            n = 0
            acquire = lim.acquire
            for _ in range(EACH):
                if acquire(key=key).allowed:
                    n += 1
            granted[i] = n
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return granted


@pytest.mark.parametrize("strategy", list(RateLimitStrategy))
def test_four_threads_are_granted_exactly_the_permitted_number(
    strategy: RateLimitStrategy,
) -> None:
    config = RateLimitConfig(RATE, BURST, strategy)
    lim = RateLimiter(config, name=unique("contention"), clock=TickClock(TICK))
    granted = hammer(lim)
    assert sum(granted) == EXPECTED[strategy]
    stats = lim.stats()
    assert stats["allowed"] == EXPECTED[strategy]
    assert stats["allowed"] + stats["rejected"] == TOTAL  # every request counted once

    # the same sequence on one thread
    alone = RateLimiter(config, name=unique("alone"), clock=TickClock(TICK))
    assert sum(alone.acquire().allowed for _ in range(TOTAL)) == EXPECTED[strategy]


@pytest.mark.parametrize("strategy", [RateLimitStrategy.TOKEN_BUCKET,
                                      RateLimitStrategy.SLIDING_WINDOW,
                                      RateLimitStrategy.FIXED_WINDOW])
def test_a_frozen_clock_grants_one_burst_however_many_threads_ask(
    strategy: RateLimitStrategy,
) -> None:
    # a burst large enough that the grant path itself is raced 100,000 times
    config = RateLimitConfig(1.0, TOTAL // 2, strategy)
    lim = RateLimiter(config, name=unique("frozen"),
                      clock=TickClock(0.0, start=1000.0))
    granted = hammer(lim, key="tenant")
    assert sum(granted) == TOTAL // 2
    assert all(g > 0 for g in granted)  # every thread really competed
