"""The process-wide registry of limiters and backpressure controllers, and the
decorator that puts a function behind a limiter."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from opentelemetry.trace import INVALID_SPAN, get_current_span

from otelprod._telemetry import tracer
from otelprod.rate_limiter._backpressure import Backpressure
from otelprod.rate_limiter._config import (
    FailureMode,
    RateLimitConfig,
    RateLimitExceeded,
    _type,
    check_failure_mode,
    check_wait,
)
from otelprod.rate_limiter._limiter import RateLimiter, log

F = TypeVar("F", bound=Callable[..., Any])


class RateLimitManager:
    """Named limiters and backpressure controllers for one process.

    ``get_limiter`` of a name nobody registered returns a limiter built from
    ``default_config`` (and logs a warning once per name) rather than failing:
    the seed's examples fetch limiters they never registered, and a missing
    registration should degrade to a sane default, not take the service down.
    Pass ``create=False`` to get a ``KeyError`` instead.
    """

    def __init__(self, default_config: RateLimitConfig | None = None) -> None:
        if default_config is not None and not isinstance(default_config, RateLimitConfig):
            raise TypeError(f"default_config: expected a RateLimitConfig or None, got "
                            f"{_type(default_config)} {default_config!r}")
        self.default_config = default_config or RateLimitConfig()
        self._limiters: dict[str, RateLimiter] = {}
        self._backpressure: dict[str, Backpressure] = {}
        self._lock = threading.Lock()

    # --- limiters -----------------------------------------------------------------
    def register_limiter(
        self,
        name: str,
        config: RateLimitConfig | None = None,
        *,
        redis: Any = None,
        failure_mode: FailureMode | str = FailureMode.OPEN,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        **redis_options: Any,
    ) -> RateLimiter:
        """Create (or replace) the limiter called ``name`` and return it.

        With ``redis`` (a ``redis://`` URL or a ``redis.Redis`` client) the limit
        lives in Redis and is shared by every process registering the same name;
        ``failure_mode`` and ``redis_options`` (``redis_key``,
        ``failure_retry_after``, ``timeout``) go to :class:`RedisRateLimiter`.
        """
        config = config or self.default_config
        if not isinstance(config, RateLimitConfig):
            raise TypeError(f"config: expected a RateLimitConfig or None, got {_type(config)} "
                            f"{config!r}")
        failure_mode = check_failure_mode(failure_mode)  # checked with or without Redis
        limiter: RateLimiter
        if redis is not None:
            from otelprod.rate_limiter._redis import RedisRateLimiter

            limiter = RedisRateLimiter(config, redis_client=redis, name=name,
                                       failure_mode=failure_mode, clock=clock, sleep=sleep,
                                       **redis_options)
        else:
            if redis_options:
                raise TypeError(f"register_limiter: {sorted(redis_options)} only apply with "
                                "redis=...")
            limiter = RateLimiter(config, name=name, clock=clock, sleep=sleep)
        with self._lock:
            self._limiters[name] = limiter
        return limiter

    def get_limiter(self, name: str, *, create: bool = True) -> RateLimiter:
        """The limiter called ``name``; an unknown name gets ``default_config``
        (see the class docstring) unless ``create=False``."""
        limiter = self._limiters.get(name)
        if limiter is not None:
            return limiter
        if not create:
            raise KeyError(f"no rate limiter named {name!r}; registered: "
                           f"{sorted(self._limiters) or 'none'}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: {_type(name)} {name!r} must be a non-empty str")
        with self._lock:
            limiter = self._limiters.get(name)
            if limiter is None:
                limiter = self._limiters[name] = RateLimiter(self.default_config, name=name)
                log.warning(
                    "rate limiter %r was never registered; using the default config "
                    "(%g/s, burst %d, %s)", name, self.default_config.requests_per_second,
                    self.default_config.burst_size, self.default_config.strategy.value)
        return limiter

    def has_limiter(self, name: str) -> bool:
        return name in self._limiters

    def remove_limiter(self, name: str) -> bool:
        with self._lock:
            return self._limiters.pop(name, None) is not None

    @property
    def limiters(self) -> dict[str, RateLimiter]:
        """A snapshot of the registered limiters by name."""
        return dict(self._limiters)

    # --- backpressure -----------------------------------------------------------------
    def register_backpressure(self, name: str, max_queue_size: int, *,
                              high_watermark: float = 1.0,
                              low_watermark: float | None = None) -> Backpressure:
        """Create (or replace) the backpressure controller called ``name``."""
        bp = Backpressure(name, max_queue_size, high_watermark=high_watermark,
                          low_watermark=low_watermark)
        with self._lock:
            self._backpressure[name] = bp
        return bp

    def get_backpressure(self, name: str) -> Backpressure:
        try:
            return self._backpressure[name]
        except KeyError:
            raise KeyError(f"no backpressure controller named {name!r}; registered: "
                           f"{sorted(self._backpressure) or 'none'}") from None

    @property
    def backpressure(self) -> dict[str, Backpressure]:
        """A snapshot of the registered backpressure controllers by name."""
        return dict(self._backpressure)

    # --- everything -----------------------------------------------------------------
    def get_all_stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{"limiters": {name: stats}, "backpressure": {name: stats}}``, JSON-ready."""
        limiters, bps = self.limiters, self.backpressure
        return {
            "limiters": {name: _safe_stats(lim) for name, lim in sorted(limiters.items())},
            "backpressure": {name: _safe_stats(bp) for name, bp in sorted(bps.items())},
        }

    def reset_all(self) -> None:
        """Reset every limiter's state (the counters are kept)."""
        for limiter in self.limiters.values():
            limiter.reset()

    def clear(self) -> None:
        """Forget every registration (for tests and reconfiguration)."""
        with self._lock:
            self._limiters.clear()
            self._backpressure.clear()


def _safe_stats(obj: RateLimiter | Backpressure) -> dict[str, Any]:
    try:
        return obj.stats()
    except Exception as exc:  # a status report must not fail because one part did
        return {"name": obj.name, "error": f"{type(exc).__name__}: {exc}"}


#: the process-wide manager the seed's examples use
rate_limit_manager = RateLimitManager()


def rate_limited(
    limiter: RateLimiter | str,
    *,
    tokens: int = 1,
    wait: bool | float | None = None,
    key: Callable[..., Hashable] | None = None,
) -> Callable[[F], F]:
    """Put a function (sync or async) behind a limiter; raise
    :class:`RateLimitExceeded` when a call is not allowed.

    ``limiter`` may be a name, looked up in ``rate_limit_manager`` on each call
    (so registering after decorating works). ``key`` receives the call's
    arguments and returns the per-key bucket (e.g. ``lambda user, **_: user``).
    A call made outside any span gets a span of its own, named after the
    function, so its ``ratelimiter.*`` events are never lost.
    """

    if not (isinstance(limiter, RateLimiter) or (isinstance(limiter, str) and limiter)):
        raise TypeError(f"limiter: expected a RateLimiter or a limiter's name, got "
                        f"{_type(limiter)} {limiter!r}")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens: expected an int >= 1, got {_type(tokens)} {tokens!r}")
    check_wait(wait)
    if key is not None and not callable(key):
        raise TypeError(f"key: expected a callable(*args, **kwargs) -> hashable or None, got "
                        f"{_type(key)} {key!r}")

    def resolve() -> RateLimiter:
        return (rate_limit_manager.get_limiter(limiter) if isinstance(limiter, str)
                else limiter)

    def decorate(fn: F) -> F:
        span_name = getattr(fn, "__qualname__", None) or repr(fn)
        if inspect.iscoroutinefunction(fn):
            async_fn = cast(Callable[..., Awaitable[Any]], fn)

            async def acore(*args: Any, **kwargs: Any) -> Any:
                lim = resolve()
                status = await lim.acquire_async(
                    tokens, wait, None if key is None else key(*args, **kwargs))
                if not status.allowed:
                    raise RateLimitExceeded(lim.name, status)
                return await async_fn(*args, **kwargs)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if get_current_span() is INVALID_SPAN:  # give the events a span to land on
                    with tracer.start_as_current_span(span_name):
                        return await acore(*args, **kwargs)
                return await acore(*args, **kwargs)

            return cast(F, async_wrapper)

        def core(*args: Any, **kwargs: Any) -> Any:
            lim = resolve()
            status = lim.acquire(tokens, wait, None if key is None else key(*args, **kwargs))
            if not status.allowed:
                raise RateLimitExceeded(lim.name, status)
            return fn(*args, **kwargs)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if get_current_span() is INVALID_SPAN:  # give the events a span to land on
                with tracer.start_as_current_span(span_name):
                    return core(*args, **kwargs)
            return core(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
