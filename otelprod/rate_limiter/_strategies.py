"""The four in-process strategies: plain arithmetic on a tiny state per key.

Each names the strategy it implements in its class statement, which is how
``RateLimiter(config)`` finds it.

Each ``_take`` runs under the limiter's lock and returns ``(delay, remaining)``:
``delay == 0.0`` grants now, ``delay > 0`` grants a slot ``delay`` seconds
ahead (the caller sleeps), ``delay < 0`` refuses with ``retry_after = -delay``.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from itertools import repeat
from typing import Any

from otelprod.rate_limiter._config import RateLimitStrategy
from otelprod.rate_limiter._limiter import EPS, RateLimiter

_NEVER = -math.inf
_floor = math.floor


class TokenBucket(RateLimiter, strategy=RateLimitStrategy.TOKEN_BUCKET):
    """Bursts up to ``burst_size``, refilled at ``requests_per_second``.

    Kept as GCRA: the state is one number, the "theoretical arrival time" at
    which the bucket would be full again, so refills are never summed up and
    float error cannot accumulate.
    """

    def _setup(self) -> None:
        self._rate = self.config.requests_per_second
        self._interval = 1.0 / self._rate
        self._span = self._limit * self._interval  # seconds to refill a full burst

    def _new_state(self) -> list[float]:
        return [_NEVER]

    def _take(self, st: list[float], now: float, n: int, cap: float) -> tuple[float, int]:
        tat = st[0]
        if tat < now:
            tat = now
        new = tat + n * self._interval
        delay = new - now - self._span
        if delay <= EPS:
            st[0] = new
            return 0.0, int((self._span - new + now) * self._rate + EPS)
        if delay <= cap:
            st[0] = new
            return delay, 0
        return -delay, max(0, int((self._span - tat + now) * self._rate + EPS))

    def _peek(self, st: list[float], now: float) -> float:
        backlog = st[0] - now
        return max(0.0, (self._span - max(backlog, 0.0)) * self._rate)


class LeakyBucket(RateLimiter, strategy=RateLimitStrategy.LEAKY_BUCKET):
    """A smooth stream: one request per ``1/requests_per_second`` s, never closer.

    The bucket holds ``burst_size`` requests: waiting callers queue in it and
    leak out evenly; a caller that finds it full is refused. ``remaining`` is
    the room left in the bucket.
    """

    def _setup(self) -> None:
        self._rate = self.config.requests_per_second
        self._interval = 1.0 / self._rate
        self._span = self._limit * self._interval

    def _new_state(self) -> list[float]:
        return [_NEVER]  # when the next request may leave

    def _take(self, st: list[float], now: float, n: int, cap: float) -> tuple[float, int]:
        start = st[0]
        delay = start - now
        if delay <= EPS:
            start, delay = now, 0.0
        new = start + n * self._interval
        if delay <= cap and new - now <= self._span + EPS:
            st[0] = new
            return delay, int((self._span - new + now) * self._rate + EPS)
        return -delay, max(0, int((self._span - delay) * self._rate + EPS))

    def _peek(self, st: list[float], now: float) -> float:
        return max(0.0, (self._span - max(st[0] - now, 0.0)) * self._rate)


class SlidingWindow(RateLimiter, strategy=RateLimitStrategy.SLIDING_WINDOW):
    """At most ``burst_size`` grants in any window of ``burst_size/rate`` seconds.

    An exact log of grant times (a deque per key, at most a few bursts long):
    no boundary effects, no approximation.
    """

    def _setup(self) -> None:
        self._window = self.config.window

    def _new_state(self) -> deque[float]:
        return deque()

    def _take(self, log: deque[float], now: float, n: int, cap: float) -> tuple[float, int]:
        cutoff = now - self._window + EPS
        while log and log[0] <= cutoff:  # grants at or before now - window have expired
            log.popleft()
        count = len(log)
        limit = self._limit
        if count + n <= limit:
            if not log or log[-1] <= now:
                if n == 1:
                    log.append(now)
                else:
                    log.extend(repeat(now, n))
            else:  # slots reserved ahead by waiters: keep the log sorted
                for _ in range(n):
                    log.insert(bisect.bisect_right(log, now), now)
            return 0.0, limit - count - n
        # the earliest time this grant fits: once enough of the oldest have expired
        slot = log[count + n - limit - 1] + self._window
        if log[-1] > slot:
            slot = log[-1]
        delay = slot - now
        if delay <= cap:
            log.extend(repeat(slot, n))
            return delay, 0
        return -delay, max(0, limit - count)

    def _peek(self, log: deque[float], now: float) -> float:
        cutoff = now - self._window + EPS
        return float(max(0, self._limit - sum(1 for t in log if t > cutoff)))


class FixedWindow(RateLimiter, strategy=RateLimitStrategy.FIXED_WINDOW):
    """At most ``burst_size`` grants per aligned window of ``burst_size/rate`` s.

    Windows are aligned to the clock's zero. As with every fixed window, a
    full window's worth just before a boundary and another just after it can
    pass within an instant: up to ``2 * burst_size`` in a moment.
    """

    def _setup(self) -> None:
        self._window = self.config.window
        self._inv_window = 1.0 / self._window

    def _new_state(self) -> list[Any]:
        return [_NEVER, 0]  # [window index, grants in it]

    def _take(self, st: list[Any], now: float, n: int, cap: float) -> tuple[float, int]:
        i = _floor((now + EPS) * self._inv_window)
        j = st[0]
        if j < i:
            j, used = i, 0
        else:  # this window, or one reserved ahead by waiters
            used = st[1]
        if used + n > self._limit:
            j, used = j + 1, 0
        if j == i:
            st[0] = j
            st[1] = used + n
            return 0.0, self._limit - used - n
        delay = j * self._window - now
        if delay <= cap:
            st[0] = j
            st[1] = used + n
            return delay, 0
        return -delay, self._limit - st[1] if st[0] == i else 0

    def _peek(self, st: list[Any], now: float) -> float:
        i = _floor((now + EPS) * self._inv_window)
        if st[0] < i:
            return float(self._limit)
        return float(self._limit - st[1]) if st[0] == i else 0.0
