"""The limiter every strategy shares: locking, waiting, per-key state, telemetry.

``RateLimiter(config)`` builds the subclass that implements ``config.strategy``
(each strategy subclass names its strategy in its class statement, see
``_strategies``). A strategy only decides. Its ``_take(state, now, tokens, cap)`` returns the
delay before the caller's slot (``0.0``: now; ``> 0``: reserved, sleep first)
or minus the retry-after when refused, plus what remains. The slot is
reserved under the lock and the caller sleeps outside it, so waiting callers
queue in order without a thundering herd and never hold the lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, ClassVar

from opentelemetry.trace import get_current_span

from otelprod import _forks, semconv
from otelprod._telemetry import add_event
from otelprod.rate_limiter import _instruments as _inst
from otelprod.rate_limiter._config import (
    RateLimitConfig,
    RateLimitStatus,
    RateLimitStrategy,
    _is_real,
    _type,
)

log = logging.getLogger("otelprod.rate_limiter")

#: times within a nanosecond count as equal, so float error never costs a request
EPS = 1e-9

_new_status = tuple.__new__


class RateLimiter:
    """A thread-safe, in-process rate limiter.

    ``RateLimiter(config, name=...)`` builds the strategy the config names.
    ``clock`` (monotonic seconds) and ``sleep``/``async_sleep`` are injectable
    so tests can simulate minutes in milliseconds. With ``key=``, every key
    (user, tenant, ...) gets a limit of its own; at most ``config.max_keys``
    keys are remembered, and the least recently used one is forgotten first
    (it starts again with a full allowance).
    """

    #: "memory" or "redis", for stats()
    backend = "memory"
    #: strategy -> the subclass implementing it (filled by ``__init_subclass__``)
    _implementations: ClassVar[dict[RateLimitStrategy, type[RateLimiter]]] = {}

    def __init_subclass__(cls, strategy: RateLimitStrategy | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if strategy is not None:
            RateLimiter._implementations[strategy] = cls

    def __new__(cls, config: RateLimitConfig | None = None, *args: Any, **kwargs: Any) -> Any:
        if cls is RateLimiter:
            if config is not None and not isinstance(config, RateLimitConfig):
                raise TypeError(f"config: expected RateLimitConfig, got {_type(config)} "
                                f"{config!r}")
            cls = RateLimiter._implementations[(config or RateLimitConfig()).strategy]
        return object.__new__(cls)

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        *,
        name: str = "default",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        if config is None:
            config = RateLimitConfig()
        elif not isinstance(config, RateLimitConfig):
            raise TypeError(f"config: expected RateLimitConfig, got {_type(config)} {config!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: {_type(name)} {name!r} must be a non-empty str")
        self.name = name
        self.config = config
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._async_sleep = async_sleep or asyncio.sleep
        self._lock = threading.Lock()
        self._limit = config.burst_size
        self._max_wait = config.max_wait
        self._wait_default = config.max_wait if config.wait_on_rate_limit else 0.0
        self._max_keys = config.max_keys
        self._keys: OrderedDict[Hashable, Any] = OrderedDict()
        self._setup()
        self._state = self._new_state()
        self._counts = _inst.counts_for(name, self)
        _forks.register(self, after_in_child=renew_lock)

    def __repr__(self) -> str:
        c = self.config
        return (f"<{type(self).__name__} {self.name!r} {c.requests_per_second:g}/s "
                f"burst {c.burst_size}>")

    # --- what a strategy provides ----------------------------------------------
    def _setup(self) -> None:
        """Derive the strategy's constants from ``self.config``."""

    def _new_state(self) -> Any:
        raise NotImplementedError

    def _take(self, state: Any, now: float, tokens: int, cap: float) -> tuple[float, int]:
        raise NotImplementedError

    def _peek(self, state: Any, now: float) -> float:
        """What could be granted now without waiting; never changes ``state``."""
        raise NotImplementedError

    # --- the public surface -----------------------------------------------------
    @property
    def strategy(self) -> RateLimitStrategy:
        return self.config.strategy

    def acquire(
        self, tokens: int = 1, wait: bool | float | None = None, key: Hashable | None = None
    ) -> RateLimitStatus:
        """Take ``tokens`` now, or (with ``wait``) sleep until the slot reserved for
        this call comes up, never longer than ``max_wait``.

        ``wait=None`` follows ``config.wait_on_rate_limit``; a number is the most
        this call may wait (capped by ``max_wait``).
        """
        delay, remaining = self._decide(tokens, self._wait_cap(tokens, wait), key)
        if delay > 0.0:
            self._sleep(delay)
        return self._status(delay, remaining)

    async def acquire_async(
        self, tokens: int = 1, wait: bool | float | None = None, key: Hashable | None = None
    ) -> RateLimitStatus:
        """``acquire`` for asyncio: waits with ``asyncio.sleep``, never blocking the loop.

        A waiter cancelled while asleep gives up its slot unused.
        """
        delay, remaining = await self._decide_async(tokens, self._wait_cap(tokens, wait), key)
        if delay > 0.0:
            await self._async_sleep(delay)
        return self._status(delay, remaining)

    def reset(self, key: Hashable | None = None) -> None:
        """Forget what was granted: the limit starts again with a full allowance.

        Without ``key`` every key is forgotten too. The request counters are
        kept (exported counters never go backwards).
        """
        with self._lock:
            if key is None:
                self._state = self._new_state()
                self._keys.clear()
            else:
                self._keys.pop(key, None)

    def available(self, key: Hashable | None = None) -> float:
        """Requests that could be granted right now without waiting."""
        with self._lock:
            now = self._clock()
            if key is None:
                return self._peek(self._state, now)
            state = self._keys.get(key)
            return float(self._limit) if state is None else self._peek(state, now)

    def stats(self) -> dict[str, Any]:
        """Counters and settings as plain JSON-serialisable values."""
        c = self._counts
        total = c.allowed + c.waited + c.rejected
        out: dict[str, Any] = {"name": self.name, "backend": self.backend}
        out.update(self.config.as_dict())
        if self.config.strategy in (RateLimitStrategy.SLIDING_WINDOW,
                                    RateLimitStrategy.FIXED_WINDOW):
            out["window_seconds"] = self.config.window
        out.update(
            allowed=c.allowed,
            waited=c.waited,
            rejected=c.rejected,
            total_requests=total,
            block_rate=c.rejected / total if total else 0.0,
            total_wait_seconds=c.wait_seconds,
            available=self._available_now(),
            keys=len(self._keys),
        )
        return out

    # --- internals ----------------------------------------------------------------
    def _wait_cap(self, tokens: int, wait: bool | float | None) -> float:
        """The longest this call may wait, after checking its arguments."""
        if tokens != 1:
            self._check_tokens(tokens)
        return self._wait_default if wait is None else self._cap(wait)

    def _status(self, delay: float, remaining: int) -> RateLimitStatus:
        """The answer to a call that was granted (``delay >= 0``, slept) or refused."""
        if delay == 0.0:
            return _new_status(RateLimitStatus, (True, 0.0, remaining, self._limit, 0.0))
        if delay > 0.0:
            return self._waited(delay, remaining)
        return self._rejected(-delay, remaining)

    async def _decide_async(self, tokens: int, cap: float,
                            key: Hashable | None) -> tuple[float, int]:
        """:meth:`_decide` for ``acquire_async``; in memory it never blocks the loop."""
        return self._decide(tokens, cap, key)

    def _decide(self, tokens: int, cap: float, key: Hashable | None) -> tuple[float, int]:
        """Reserve or refuse under the lock and count the outcome: ``_take``'s answer."""
        with self._lock:
            delay, remaining = self._take(
                self._state if key is None else self._keyed(key), self._clock(), tokens, cap
            )
            if delay == 0.0:
                self._counts.allowed += 1
            elif delay < 0.0:
                self._counts.rejected += 1
            else:
                self._count(delay)
        return delay, remaining

    def _available_now(self) -> float:
        value = self.available()
        return value if math.isfinite(value) else float(self._limit)

    def _keyed(self, key: Hashable) -> Any:
        keys = self._keys
        state = keys.get(key)
        if state is None:
            state = keys[key] = self._new_state()
            if len(keys) > self._max_keys:
                keys.popitem(last=False)
        else:
            keys.move_to_end(key)
        return state

    def _check_tokens(self, tokens: object) -> None:
        if (not isinstance(tokens, int) or isinstance(tokens, bool)
                or not 1 <= tokens <= self._limit):
            raise ValueError(
                f"tokens: {_type(tokens)} {tokens!r} must be an int from 1 to "
                f"burst_size={self._limit} (a larger request could never be granted)"
            )

    def _cap(self, wait: object) -> float:
        if wait is True:
            return self._max_wait
        if wait is False:
            return 0.0
        if _is_real(wait) and wait >= 0:  # type: ignore[operator]
            return min(float(wait), self._max_wait)  # type: ignore[arg-type]
        raise ValueError(
            f"wait: {_type(wait)} {wait!r} must be None, a bool or a number of seconds >= 0"
        )

    def _count(self, delay: float) -> None:
        """Count a wait or a refusal (called under the lock)."""
        if delay > 0.0:
            self._counts.waited += 1
            self._counts.wait_seconds += delay
        else:
            self._counts.rejected += 1

    def _waited(self, delay: float, remaining: int) -> RateLimitStatus:
        c = self._counts
        _inst.record(_inst.wait_histogram, delay, c.attrs["name"])
        add_event(semconv.EVENT_RATELIMITER_WAIT,
                  {semconv.RATELIMITER_NAME: self.name, semconv.RATELIMITER_DELAY: delay})
        return _new_status(RateLimitStatus, (True, 0.0, remaining, self._limit, delay))

    def _rejected(self, retry_after: float, remaining: int) -> RateLimitStatus:
        # refusals are the hot path of an overloaded service: no attribute dict
        # is built unless a span records it
        if get_current_span().is_recording():
            add_event(semconv.EVENT_RATELIMITER_REJECTED,
                      {semconv.RATELIMITER_NAME: self.name,
                       semconv.RATELIMITER_RETRY_AFTER: retry_after})
        return _new_status(RateLimitStatus, (False, retry_after, remaining, self._limit, 0.0))


def renew_lock(owner: Any) -> None:
    """In a forked child: a lock another thread held at fork() would stay held forever."""
    owner._lock = threading.Lock()


__all__ = ["EPS", "RateLimiter", "log", "renew_lock"]
