"""Rate limiting and backpressure, in process and across replicas, as OpenTelemetry.

    from otelprod.rate_limiter import rate_limit_manager, RateLimitConfig, RateLimitStrategy

    rate_limit_manager.register_limiter(
        "api_requests",
        RateLimitConfig(requests_per_second=10.0, burst_size=20,
                        strategy=RateLimitStrategy.TOKEN_BUCKET, wait_on_rate_limit=True),
    )
    status = rate_limit_manager.get_limiter("api_requests").acquire(tokens=1, wait=True)

Four strategies (token bucket, leaky bucket, sliding window, fixed window;
see :class:`RateLimitStrategy` for exactly what each admits), per-key limits,
waiting that sleeps only as long as the reserved slot needs, a Redis backend
shared by every replica, and backpressure with watermarks.

Telemetry (names in ``otelprod.semconv``): ``ratelimiter.requests`` by
``ratelimiter.result`` (allowed / waited / rejected), ``ratelimiter.wait.duration``,
``ratelimiter.available``, ``ratelimiter.backend.failures``,
``backpressure.queue.size`` and ``backpressure.rejections``; span events
``ratelimiter.wait``, ``ratelimiter.rejected`` (with ``ratelimiter.retry_after``),
``ratelimiter.backend_failure`` and ``backpressure.rejected`` on the current
span when it is recording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otelprod.rate_limiter._backpressure import Backpressure, BackpressureRejected
from otelprod.rate_limiter._config import (
    FailureMode,
    RateLimitConfig,
    RateLimitExceeded,
    RateLimitStatus,
    RateLimitStrategy,
)
from otelprod.rate_limiter._limiter import RateLimiter
from otelprod.rate_limiter._manager import RateLimitManager, rate_limit_manager, rate_limited
from otelprod.rate_limiter._strategies import FixedWindow, LeakyBucket, SlidingWindow, TokenBucket

if TYPE_CHECKING:
    from otelprod.rate_limiter._redis import RedisRateLimiter

#: the seed's name for the backpressure controller
BackpressureManager = Backpressure

__all__ = [
    "Backpressure",
    "BackpressureManager",
    "BackpressureRejected",
    "FailureMode",
    "FixedWindow",
    "LeakyBucket",
    "RateLimitConfig",
    "RateLimitExceeded",
    "RateLimitManager",
    "RateLimitStatus",
    "RateLimitStrategy",
    "RateLimiter",
    "RedisRateLimiter",
    "SlidingWindow",
    "TokenBucket",
    "rate_limit_manager",
    "rate_limited",
]


def __getattr__(name: str) -> Any:
    # the Redis backend imports redis-py only when somebody asks for it
    if name == "RedisRateLimiter":
        from otelprod.rate_limiter._redis import RedisRateLimiter

        return RedisRateLimiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
