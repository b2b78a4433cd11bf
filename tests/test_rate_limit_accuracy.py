"""Each strategy admits exactly what it defines, checked on a fake clock.

The issue's yardstick: 100 requests/s with burst 20, offered at 1000 requests/s
for a simulated minute (requests at t = 0, 1 ms, ..., 59.999 s). Every window
strategy uses a window of burst/rate = 0.2 s.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from otelprod.rate_limiter import RateLimitConfig, RateLimiter, RateLimitStrategy
from tests.rate_limit_helpers import FakeClock, unique

RATE, BURST = 100.0, 20
WINDOW = BURST / RATE  # 0.2 s
OFFERED = [i / 1000 for i in range(60_000)]  # 1000 requests/s for 60 s
LAST = OFFERED[-1]  # 59.999 s


def limiter(strategy: RateLimitStrategy, clock: FakeClock, **kw: object) -> RateLimiter:
    config = RateLimitConfig(RATE, BURST, strategy, **kw)  # type: ignore[arg-type]
    return RateLimiter(config, name=unique(f"acc-{strategy.value}"), clock=clock,
                       sleep=clock.sleep)


def run(strategy: RateLimitStrategy, times: list[float]) -> list[float]:
    """The times at which requests were allowed."""
    clock = FakeClock()
    lim = limiter(strategy, clock)
    allowed = []
    for t in times:
        clock.now = t
        if lim.acquire():
            allowed.append(t)
    return allowed


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # the full burst at once, then one token per 10 ms of the 59.999 s that passed
        (RateLimitStrategy.TOKEN_BUCKET, BURST + math.floor(RATE * LAST)),  # 6019
        # one request per 10 ms: t = 0, 0.01, ..., 59.99
        (RateLimitStrategy.LEAKY_BUCKET, math.floor(RATE * LAST) + 1),  # 6000
        # a full burst in each 0.2 s: 300 windows
        (RateLimitStrategy.SLIDING_WINDOW, round(60 / WINDOW) * BURST),  # 6000
        (RateLimitStrategy.FIXED_WINDOW, round(60 / WINDOW) * BURST),  # 6000
    ],
)
def test_a_simulated_minute_admits_exactly_what_the_strategy_defines(
    strategy: RateLimitStrategy, expected: int
) -> None:
    allowed = run(strategy, OFFERED)
    assert len(allowed) == expected


def test_token_bucket_bursts_then_refills_at_the_rate() -> None:
    allowed = run(RateLimitStrategy.TOKEN_BUCKET, OFFERED)
    assert allowed[:BURST] == OFFERED[:BURST]  # the first 20 requests pass back to back
    for t in (1.0, 10.0, 30.0, 59.0):  # and no more than burst + rate * t by any time t
        assert sum(1 for a in allowed if a <= t) == BURST + math.floor(RATE * t)


def test_leaky_bucket_never_lets_two_requests_closer_than_its_interval() -> None:
    allowed = run(RateLimitStrategy.LEAKY_BUCKET, OFFERED)
    gaps = [b - a for a, b in itertools.pairwise(allowed)]
    assert min(gaps) >= 1 / RATE - 1e-9
    assert max(gaps) <= 1 / RATE + 1e-9  # and under load it is a steady stream


def test_leaky_bucket_spacing_holds_for_random_arrivals() -> None:
    rng = random.Random(5)
    times, t = [], 0.0
    for _ in range(20_000):
        t += rng.choice((0.0, 0.0, rng.expovariate(300)))  # some exact ties too
        times.append(t)
    allowed = run(RateLimitStrategy.LEAKY_BUCKET, times)
    assert len(allowed) > 1000
    assert min(b - a for a, b in itertools.pairwise(allowed)) >= 1 / RATE - 1e-9


def test_sliding_window_never_exceeds_the_burst_in_any_window() -> None:
    allowed = run(RateLimitStrategy.SLIDING_WINDOW, OFFERED)
    j = 0
    for i, t in enumerate(allowed):  # every window (t - 0.2, t] ending at a grant
        while allowed[j] <= t - WINDOW + 1e-9:
            j += 1
        assert i - j + 1 <= BURST


def test_fixed_window_boundary_burst_is_two_windows_worth_as_documented() -> None:
    clock = FakeClock()
    lim = limiter(RateLimitStrategy.FIXED_WINDOW, clock)
    clock.now = WINDOW - 0.001  # the last millisecond of the first window
    before = [lim.acquire().allowed for _ in range(BURST + 5)]
    clock.now = WINDOW  # the first instant of the next window
    after = [lim.acquire().allowed for _ in range(BURST + 5)]
    # 2 x burst within one millisecond: the documented cost of fixed windows
    assert before.count(True) == BURST and after.count(True) == BURST
    assert before[BURST:] == [False] * 5 and after[BURST:] == [False] * 5
    # the sliding window, fed the same, admits one burst across the boundary
    clock2 = FakeClock()
    sliding = limiter(RateLimitStrategy.SLIDING_WINDOW, clock2)
    clock2.now = WINDOW - 0.001
    n = sum(sliding.acquire().allowed for _ in range(BURST + 5))
    clock2.now = WINDOW
    n += sum(sliding.acquire().allowed for _ in range(BURST + 5))
    assert n == BURST


def test_fixed_window_refusal_says_when_the_next_window_opens() -> None:
    clock = FakeClock(1.05)
    lim = limiter(RateLimitStrategy.FIXED_WINDOW, clock)
    for _ in range(BURST):
        assert lim.acquire()
    status = lim.acquire()
    assert not status.allowed
    assert status.retry_after == pytest.approx(1.2 - 1.05)
    assert status.remaining == 0


# --- reference models: the textbook algorithms in exact arithmetic ------------------------
def reference(strategy: RateLimitStrategy, times_us: list[int]) -> list[bool]:
    rate, burst = Fraction(int(RATE)), BURST
    window = Fraction(burst) / rate
    out: list[bool] = []
    granted: list[Fraction] = []
    tokens, last = Fraction(burst), Fraction(0)
    for us in times_us:
        t = Fraction(us, 1_000_000)
        if strategy is RateLimitStrategy.TOKEN_BUCKET:  # counted tokens, refilled on use
            tokens = min(Fraction(burst), tokens + (t - last) * rate)
            last = t
            ok = tokens >= 1
            if ok:
                tokens -= 1
        elif strategy is RateLimitStrategy.LEAKY_BUCKET:
            ok = not granted or t - granted[-1] >= 1 / rate
        elif strategy is RateLimitStrategy.SLIDING_WINDOW:
            ok = sum(1 for g in granted if g > t - window) < burst
        else:
            ok = sum(1 for g in granted if g // window == t // window) < burst
        if ok:
            granted.append(t)
            granted = granted[-burst:]
        out.append(ok)
    return out


@pytest.mark.parametrize("strategy", list(RateLimitStrategy))
def test_decisions_match_the_textbook_algorithm_for_random_arrivals(
    strategy: RateLimitStrategy,
) -> None:
    rng = random.Random(strategy.value)
    times_us, t = [], 0
    for _ in range(6_000):  # ~20 s offered at ~300/s, with ties and exact boundaries
        t += rng.choice((0, 10_000, 200_000, int(rng.expovariate(1 / 3000))))
        times_us.append(t)
    clock = FakeClock()
    lim = limiter(strategy, clock)
    got = []
    for us in times_us:
        clock.now = us / 1e6
        got.append(lim.acquire().allowed)
    want = reference(strategy, times_us)
    assert sum(want) > 1000
    mismatch = next((i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b), None)
    assert mismatch is None, f"first mismatch at request {mismatch}, t={times_us[mismatch]} µs"
