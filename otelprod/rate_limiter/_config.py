"""Configuration and result types, checked once so the hot path never has to."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, NamedTuple

from otelprod.errors import ConfigurationError, OtelprodError


class RateLimitStrategy(str, enum.Enum):
    """How a limiter spends its ``requests_per_second`` and ``burst_size``.

    All four admit the same long-run rate; they differ in how bursts look:

    - ``TOKEN_BUCKET``: up to ``burst_size`` at once, then one every ``1/rate`` s.
    - ``LEAKY_BUCKET``: never two requests closer than ``1/rate`` s; ``burst_size``
      is how many waiting callers the bucket holds.
    - ``SLIDING_WINDOW``: at most ``burst_size`` in *any* window of
      ``burst_size/rate`` s (an exact log of grant times).
    - ``FIXED_WINDOW``: at most ``burst_size`` per aligned window of
      ``burst_size/rate`` s; two windows' worth can pass around a boundary.
    """

    TOKEN_BUCKET = "token_bucket"
    LEAKY_BUCKET = "leaky_bucket"
    SLIDING_WINDOW = "sliding_window"
    FIXED_WINDOW = "fixed_window"


class FailureMode(str, enum.Enum):
    """What a shared (Redis-backed) limiter does when its store is unreachable."""

    OPEN = "open"  # allow: availability over strictness
    CLOSED = "closed"  # reject: strictness over availability


def _type(value: object) -> str:
    return type(value).__name__


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_strategy(value: object, problems: list[str]) -> RateLimitStrategy | None:
    if isinstance(value, RateLimitStrategy):
        return value
    allowed = ", ".join(s.value for s in RateLimitStrategy)
    try:
        return RateLimitStrategy(value.lower() if isinstance(value, str) else value)
    except ValueError:
        problems.append(f"strategy: {_type(value)} {value!r} is not one of: {allowed}")
        return None


def check_wait(wait: object) -> None:
    """``wait`` as ``acquire`` takes it: None, a bool, or seconds >= 0."""
    if wait is None or isinstance(wait, bool) or (
            _is_real(wait) and wait >= 0):  # type: ignore[operator]
        return
    raise ValueError(f"wait: {_type(wait)} {wait!r} must be None, a bool or a number of "
                     "seconds >= 0")


def check_failure_mode(value: object) -> FailureMode:
    try:
        if isinstance(value, str) and not isinstance(value, FailureMode):
            value = value.strip().lower()
        return value if isinstance(value, FailureMode) else FailureMode(value)
    except ValueError:
        raise ConfigurationError(
            f"failure_mode: {_type(value)} {value!r} is not one of: open, closed"
        ) from None


@dataclass(frozen=True)
class RateLimitConfig:
    """A limiter's settings; every problem is reported at once, naming the key.

    The window strategies use a window of ``burst_size / requests_per_second``
    seconds holding ``burst_size`` requests, so every strategy admits the same
    long-run rate and the same largest burst as the token bucket.
    """

    requests_per_second: float = 10.0
    burst_size: int = 20
    strategy: RateLimitStrategy = RateLimitStrategy.TOKEN_BUCKET
    #: wait (sleep) for a slot when ``acquire()`` is called without ``wait=``
    wait_on_rate_limit: bool = False
    #: never sleep longer than this many seconds for one acquire
    max_wait: float = 10.0
    #: most per-key states kept (least recently used ones are forgotten)
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        problems: list[str] = []
        rps = self.requests_per_second
        if not _is_real(rps) or not math.isfinite(rps) or rps <= 0:
            problems.append(
                f"requests_per_second: {_type(rps)} {rps!r} must be a finite number > 0"
            )
        burst: Any = self.burst_size
        if isinstance(burst, float) and burst.is_integer():
            burst = int(burst)
        if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
            problems.append(f"burst_size: {_type(burst)} {burst!r} must be an int >= 1")
        strategy = check_strategy(self.strategy, problems)
        if not isinstance(self.wait_on_rate_limit, bool):
            problems.append(
                f"wait_on_rate_limit: {_type(self.wait_on_rate_limit)} "
                f"{self.wait_on_rate_limit!r} must be True or False"
            )
        mw = self.max_wait
        if not _is_real(mw) or not math.isfinite(mw) or mw < 0:
            problems.append(f"max_wait: {_type(mw)} {mw!r} must be a finite number >= 0 (s)")
        mk = self.max_keys
        if not isinstance(mk, int) or isinstance(mk, bool) or mk < 1:
            problems.append(f"max_keys: {_type(mk)} {mk!r} must be an int >= 1")
        if problems:
            raise ConfigurationError(problems)
        object.__setattr__(self, "requests_per_second", float(rps))
        object.__setattr__(self, "burst_size", burst)
        object.__setattr__(self, "strategy", strategy)
        object.__setattr__(self, "max_wait", float(mw))

    @property
    def window(self) -> float:
        """Seconds per window for the window strategies (one burst's worth)."""
        return self.burst_size / self.requests_per_second

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_per_second": self.requests_per_second,
            "burst_size": self.burst_size,
            "strategy": self.strategy.value,
            "wait_on_rate_limit": self.wait_on_rate_limit,
            "max_wait": self.max_wait,
            "max_keys": self.max_keys,
        }


class RateLimitStatus(NamedTuple):
    """The answer to one ``acquire``; truthy exactly when it was allowed.

    ``remaining`` counts what could still be granted now without waiting (for
    the leaky bucket: the room left in the bucket for waiting callers);
    ``waited`` is how long this call slept for its slot, in seconds.
    """

    allowed: bool
    retry_after: float
    remaining: int
    limit: int
    waited: float

    def __bool__(self) -> bool:
        return self.allowed


class RateLimitExceeded(OtelprodError):
    """Raised by :func:`rate_limited` when a call is not allowed."""

    def __init__(self, name: str, status: RateLimitStatus) -> None:
        self.name = name
        self.status = status
        self.retry_after = status.retry_after
        super().__init__(
            f"rate limit {name!r} exceeded: retry after {status.retry_after:.3f} s "
            f"(limit {status.limit})"
        )
