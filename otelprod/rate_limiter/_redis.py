"""One limit shared by every replica: the token bucket and sliding window on Redis.

Each decision is one Lua script, so it is atomic on the server and costs one
round trip. The script reads the server's clock (``TIME``), so replicas'
clocks never need to agree; tests may pass their own clock instead. The
semantics are exactly those of the in-process strategies (same ``EPS``, same
reservations for waiting callers).

When Redis cannot be reached the limiter *fails open* (allows) or *fails
closed* (refuses) as configured, counts it in ``ratelimiter.backend.failures``,
adds a ``ratelimiter.backend_failure`` span event and logs the outage once.
A Redis that is gone or stalled never blocks a decision for long: the client
built from a URL has connect and socket timeouts (``timeout``) and at most one
immediate retry (redis-py's defaults, ten retries with backoff, took seconds
per call); a client passed in without a socket timeout is warned about.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import redis

from otelprod import semconv
from otelprod._scrub import scrubber
from otelprod._telemetry import add_event, truncate
from otelprod.errors import ConfigurationError
from otelprod.rate_limiter import _instruments as _inst
from otelprod.rate_limiter._config import (
    FailureMode,
    RateLimitConfig,
    RateLimitStrategy,
    _is_real,
    _type,
    check_failure_mode,
)
from otelprod.rate_limiter._limiter import RateLimiter, log

# Times are microseconds (doubles hold them exactly up to 2**53 µs, ~285 years).
# ARGV: step µs (token interval or window), burst, tokens, cap µs, now µs or "".
# Returns {granted 0/1, delay in whole ns (Redis truncates Lua numbers to integers),
# remaining}.
_PRELUDE = """
local step = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local eps = 0.001
local keep = 60000  -- ms a key outlives its last use; state past that is a full allowance
"""

TOKEN_BUCKET_LUA = _PRELUDE + """
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + n * step
local span = burst * step
local delay = new - now - span
if delay <= eps then delay = 0 end
if delay <= cap then
  redis.call('SET', KEYS[1], string.format('%.17g', new), 'PX',
             math.ceil((new - now) / 1000) + keep)
  local remaining = 0
  if delay == 0 then remaining = math.floor((span - new + now) / step + eps) end
  return {1, math.floor(delay * 1000 + 0.5), remaining}
end
return {0, math.floor(delay * 1000 + 0.5), math.floor((span - tat + now) / step + eps)}
"""

SLIDING_WINDOW_LUA = _PRELUDE + """
local member = ARGV[6]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now - step + eps))
local count = redis.call('ZCARD', KEYS[1])
local slot = now
if count + n > burst then
  local oldest = redis.call('ZRANGE', KEYS[1], count + n - burst - 1, count + n - burst - 1,
                            'WITHSCORES')
  slot = tonumber(oldest[2]) + step
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if tonumber(last[2]) > slot then slot = tonumber(last[2]) end
end
local delay = slot - now
if delay <= cap then
  local args = {}
  local score = string.format('%.17g', slot)
  for i = 1, n do
    args[#args + 1] = score
    args[#args + 1] = member .. ':' .. i
  end
  redis.call('ZADD', KEYS[1], unpack(args))
  redis.call('PEXPIRE', KEYS[1], math.ceil((slot - now + step) / 1000) + keep)
  local remaining = 0
  if delay == 0 then remaining = burst - count - n end
  return {1, math.floor(delay * 1000 + 0.5), remaining}
end
local remaining = burst - count
if remaining < 0 then remaining = 0 end
return {0, math.floor(delay * 1000 + 0.5), remaining}
"""

_SUPPORTED = (RateLimitStrategy.TOKEN_BUCKET, RateLimitStrategy.SLIDING_WINDOW)
_SCHEMES = ("redis://", "rediss://", "unix://")
_SMALL = (b"0", b"1", b"2", b"3")


def _client(target: str | redis.Redis, timeout: float, name: str) -> redis.Redis:
    if isinstance(target, redis.Redis):
        own = target.connection_pool.connection_kwargs.get("socket_timeout")
        if own is None or own > timeout:
            log.warning("rate limiter %r: the Redis client's socket_timeout (%s s) is longer "
                        "than the limiter's timeout (%s s): a Redis that stalls blocks each "
                        "decision that long (pass a redis:// URL, or set the client's "
                        "socket_timeout and socket_connect_timeout)", name, own, timeout)
        return target
    if isinstance(target, str) and target.startswith(_SCHEMES):
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # one immediate retry after a dropped connection (a pooled one gone stale when
        # Redis restarted); none after a timeout: a stalled Redis would stall it twice
        return redis.Redis.from_url(
            target, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
    shown = scrubber.scrub_text(target) if isinstance(target, str) else target  # a password
    raise ConfigurationError(
        f"redis: {_type(target)} {shown!r} must be a {', '.join(_SCHEMES)} URL or a "
        "redis.Redis client"
    )


class RedisRateLimiter(RateLimiter):
    """A limit shared through Redis by every process that uses the same name (or
    ``redis_key``). Supports the token bucket and the sliding window.

    ``failure_mode`` decides requests while Redis is unreachable: ``"open"``
    allows them, ``"closed"`` refuses them with ``retry_after =
    failure_retry_after``. ``timeout`` bounds each Redis call in seconds.
    """

    backend = "redis"

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        *,
        redis_client: str | redis.Redis,
        name: str = "default",
        redis_key: str | None = None,
        failure_mode: FailureMode | str = FailureMode.OPEN,
        failure_retry_after: float = 1.0,
        timeout: float = 0.25,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        config = config or RateLimitConfig()
        if not isinstance(config, RateLimitConfig):
            raise TypeError(f"config: expected RateLimitConfig, got {_type(config)} {config!r}")
        if config.strategy not in _SUPPORTED:
            raise ConfigurationError(
                f"strategy: {config.strategy.value!r} is not available on Redis; use one of: "
                + ", ".join(s.value for s in _SUPPORTED)
            )
        problems = []
        for key, value in (("failure_retry_after", failure_retry_after), ("timeout", timeout)):
            if not _is_real(value) or not 0 < value < 3600:  # type: ignore[operator]
                problems.append(f"{key}: {_type(value)} {value!r} must be a number of seconds "
                                "in (0, 3600)")
        if problems:
            raise ConfigurationError(problems)
        self.failure_mode = check_failure_mode(failure_mode)
        self._failure_retry_after = float(failure_retry_after)
        self._redis = _client(redis_client, float(timeout), name)
        self._user_clock = clock
        self._last_remaining = float(config.burst_size)
        super().__init__(config, name=name, clock=clock, sleep=sleep, async_sleep=async_sleep)
        self.redis_key = redis_key or f"otelprod:ratelimit:{name}"
        token = config.strategy is RateLimitStrategy.TOKEN_BUCKET
        self._sliding = not token
        self._script = self._redis.register_script(TOKEN_BUCKET_LUA if token
                                                   else SLIDING_WINDOW_LUA)
        step = 1.0 / config.requests_per_second if token else config.window
        # pre-encoded: redis-py encodes bytes for free, numbers at a cost
        self._args_head = (repr(step * 1e6).encode(), str(config.burst_size).encode())
        self._healthy = True
        self._last_error = ""
        self._health_lock = threading.Lock()
        mode = {semconv.RATELIMITER_FAILURE_MODE: self.failure_mode.value}
        self._failure_attrs = {semconv.RATELIMITER_NAME: name, **mode}

    # the in-process state machine is unused: Redis holds the state
    def _new_state(self) -> None:
        return None

    # acquire() and acquire_async() are RateLimiter's, with _decide below as the round trip
    async def _decide_async(self, tokens: int, cap: float,
                            key: Hashable | None) -> tuple[float, int]:
        """The round trip in a worker thread, so the event loop never blocks."""
        return await asyncio.to_thread(self._decide, tokens, cap, key)

    def reset(self, key: Hashable | None = None) -> None:
        """Delete the shared state (for every replica). Without ``key`` the
        per-key states under this limiter go too."""
        if key is not None:
            self._redis.delete(self._key(key))
            return
        keys = [self.redis_key, *self._redis.scan_iter(match=self._escaped() + ":k:*")]
        self._redis.delete(*keys)

    def available(self, key: Hashable | None = None) -> float:
        """The ``remaining`` Redis reported with the latest decision (no round trip)."""
        return self._last_remaining

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(
            redis_key=self.redis_key,
            failure_mode=self.failure_mode.value,
            backend_healthy=self._healthy,
            backend_failures=self._counts.backend_failures,
            last_backend_error=self._last_error,
        )
        return out

    # --- internals ----------------------------------------------------------------
    def _key(self, key: Hashable | None) -> str:
        return self.redis_key if key is None else f"{self.redis_key}:k:{key}"

    def _escaped(self) -> str:
        return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.redis_key)

    def _decide(self, tokens: int, cap: float, key: Hashable | None) -> tuple[float, int]:
        now = b"" if self._user_clock is None else repr(self._user_clock() * 1e6).encode()
        args = [*self._args_head, _SMALL[tokens] if tokens < 4 else str(tokens).encode(),
                b"0" if cap == 0.0 else repr(cap * 1e6).encode(), now]
        if self._sliding:
            args.append(os.urandom(8).hex().encode())  # unique members, also across forks
        try:
            granted, delay_ns, remaining = self._script(keys=[self._key(key)], args=args)
        except redis.RedisError as exc:
            return self._on_failure(exc)
        if not self._healthy:
            self._on_recovery()
        delay = int(delay_ns) / 1e9
        remaining = max(0, int(remaining))
        if key is None:
            self._last_remaining = float(remaining)
        with self._lock:
            if granted:
                if delay == 0.0:
                    self._counts.allowed += 1
                else:
                    self._count(delay)
                return delay, remaining
            self._count(-1.0)
        return -max(delay, 1e-9), remaining

    def _on_failure(self, exc: BaseException) -> tuple[float, int]:
        with self._health_lock:
            first = self._healthy
            self._healthy = False
            self._last_error = truncate(f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._counts.backend_failures += 1
            if self.failure_mode is FailureMode.OPEN:
                self._counts.allowed += 1
            else:
                self._counts.rejected += 1
        attrs = {**self._failure_attrs, semconv.ERROR_TYPE: type(exc).__qualname__}
        _inst.record(_inst.backend_failures, 1, attrs)
        add_event(semconv.EVENT_RATELIMITER_BACKEND_FAILURE,
                  {**attrs, semconv.EXCEPTION_MESSAGE: truncate(str(exc))})
        if first:
            log.warning("rate limiter %r: Redis unreachable (%s); failing %s until it is back",
                        self.name, self._last_error, self.failure_mode.value)
        if self.failure_mode is FailureMode.OPEN:
            return 0.0, 0
        return -self._failure_retry_after, 0

    def _on_recovery(self) -> None:
        with self._health_lock:
            if self._healthy:
                return
            self._healthy = True
        log.warning("rate limiter %r: Redis reachable again", self.name)
