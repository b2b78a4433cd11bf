"""Named circuit breakers: config, registry, and the ``with_circuit_breaker`` decorator.

The state machine and the unlocked call path are in ``_breaker_engine``
(pybreaker underneath); transitions reach telemetry and listeners through
``_breaker_events``. This module gives each breaker a name and a validated
``CircuitBreakerConfig``, keeps the registry that status reports and the
state gauge read, and decorates sync, ``async`` and generator functions.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pybreaker

from otelprod import semconv
from otelprod.error_handling._breaker_engine import BreakerEngine, CircuitBreakerOpenError
from otelprod.error_handling._breaker_events import (
    BreakerListener,
    BreakerTransition,
    TransitionReason,
    add_breaker_state_listener,
    calls,
    remove_breaker_state_listener,
)
from otelprod.error_handling._breaker_storage import redis_storage
from otelprod.error_handling._common import (
    await_in_own_span,
    call_in_own_span,
    mark_ours,
    no_active_span,
    qualname,
    unwrap_ours,
)
from otelprod.error_handling._fallback import MISSING
from otelprod.error_handling._validate import Checker
from otelprod.errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])
State = semconv.CircuitBreakerState
Result = semconv.CircuitBreakerResult

__all__ = ["BreakerListener", "BreakerTransition", "CircuitBreaker", "CircuitBreakerConfig",
           "CircuitBreakerOpenError", "TransitionReason", "add_breaker_state_listener",
           "circuit_breaker", "get_circuit_breaker", "get_circuit_breakers",
           "remove_breaker_state_listener", "unregister_circuit_breaker", "with_circuit_breaker"]


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """When to open, how long to stay open, and how to probe for recovery.

    Opens after ``failure_threshold`` consecutive failures. After ``timeout``
    seconds the next call moves it to half-open, where calls are trials, at
    most ``half_open_max_calls`` in flight at once (default:
    ``success_threshold``). It closes after ``success_threshold`` successful
    trials, however far apart they come. A failed trial reopens it, and so
    does a trial still running ``half_open_timeout`` seconds after it started.
    A call ended by cancellation (``asyncio.CancelledError``,
    ``KeyboardInterrupt``, a generator closed early) counts as neither success
    nor failure unless ``count_cancellations``.

    ``redis_url`` shares the state between processes and replicas through
    pybreaker's Redis storage (keys namespaced by the breaker's name). Each
    call then reads the state from Redis, synchronously, also for ``async``
    callers; the bound on trials in flight is per process. ``redis_timeout``
    bounds each Redis round trip (connect and read, seconds): a Redis that is
    gone or stalled costs a call at most about twice that.
    """

    failure_threshold: int = 5
    success_threshold: int = 2
    timeout: float = 60.0
    half_open_timeout: float = 30.0
    half_open_max_calls: int | None = None
    redis_url: str | None = None
    redis_timeout: float = 0.5
    count_cancellations: bool = False

    def __post_init__(self) -> None:
        check = Checker("CircuitBreakerConfig")
        check.integer("failure_threshold", self.failure_threshold, 1)
        check.integer("success_threshold", self.success_threshold, 1)
        check.number("timeout", self.timeout, 0)
        check.number("half_open_timeout", self.half_open_timeout, 0, exclusive=True)
        if self.half_open_max_calls is not None:
            check.integer("half_open_max_calls", self.half_open_max_calls, 1)
        if self.redis_url is not None and not (
                isinstance(self.redis_url, str)
                and self.redis_url.startswith(("redis://", "rediss://", "unix://"))):
            check._bad("redis_url", self.redis_url, "None or a redis:// URL")
        check.number("redis_timeout", self.redis_timeout, 0, exclusive=True)
        check.boolean("count_cancellations", self.count_cancellations)
        check.done()

    @property
    def max_trial_calls(self) -> int:
        return self.half_open_max_calls or self.success_threshold


_registry: dict[str, CircuitBreaker] = {}
_registry_lock = threading.Lock()


class CircuitBreaker:
    """A named breaker. Use it through ``with_circuit_breaker`` or ``call``/``call_async``.

    ``clock`` (seconds, default ``time.time``) is injectable so tests can walk
    the state machine without sleeping. Breakers sharing Redis state need a
    wall clock, since the open time is stored as a Unix timestamp.
    """

    def __init__(self, name: str, config: CircuitBreakerConfig | None = None, *,
                 clock: Callable[[], float] | None = None,
                 storage: pybreaker.CircuitBreakerStorage | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("circuit breaker name must be a non-empty str, got "
                                     f"{name!r} ({type(name).__name__})")
        if config is not None and not isinstance(config, CircuitBreakerConfig):
            raise ConfigurationError(
                f"circuit breaker {name!r}: config must be a CircuitBreakerConfig, "
                f"got {type(config).__name__}")
        self.name = name
        self.config = config = config or CircuitBreakerConfig()
        self._clock = clock or time.time
        if storage is None and config.redis_url:
            storage = redis_storage(config.redis_url, f"otelprod:{name}", config.redis_timeout)
        self._engine = BreakerEngine(
            fail_max=config.failure_threshold, reset_timeout=config.timeout,
            success_threshold=config.success_threshold, state_storage=storage, name=name,
            throw_new_error_on_trip=False, half_open_max_calls=config.half_open_max_calls,
            half_open_timeout=config.half_open_timeout,
            count_cancellations=config.count_cancellations, clock=self._clock)

    # --- state ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The current state as a semantic-convention value (closed / open / half_open)."""
        return self._engine.state_name()

    @property
    def failure_count(self) -> int:
        return self._engine.fail_counter

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot for status reports."""
        engine = self._engine
        state = self.state
        opened_at = engine._store.opened_at()
        retry_after = None
        if state == State.OPEN and opened_at is not None:
            retry_after = max(0.0, engine.retry_at() - self._clock())
        return {
            "name": self.name, "state": state,
            "failure_count": engine.fail_counter,
            "success_count": engine.success_counter,
            "failure_threshold": self.config.failure_threshold,
            "success_threshold": self.config.success_threshold,
            "timeout": self.config.timeout, "half_open_timeout": self.config.half_open_timeout,
            "opened_at": opened_at,
            "retry_after": retry_after,
            "storage": engine._storage.name,
            "calls": {r: calls.get((self.name, r)) for r in Result.ALL},
        }

    def reset(self) -> None:
        """Close the breaker and forget its counts (the seed's "stuck open" remedy)."""
        self._engine.close()  # resets both counts
        self._engine._flush()

    def force_open(self) -> None:
        """Open the breaker now, e.g. during maintenance of the dependency."""
        self._engine.open()
        self._engine._flush()

    # --- calls ----------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` through the breaker (raises CircuitBreakerOpenError).

        A generator or coroutine that ``fn`` returns is admitted now and
        counted when it ends.
        """
        return self._engine._core(fn, *args, **kwargs)

    async def call_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        return await self._engine._async_core(fn, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state}>"


# --- registry ----------------------------------------------------------------------------
def _register(breaker: CircuitBreaker) -> CircuitBreaker:
    """Under _registry_lock: the breaker registered under its name (this one if none)."""
    registered = _registry.setdefault(breaker.name, breaker)
    registered._engine.observed_as = registered.name  # in the state gauge
    return registered


def circuit_breaker(name: str, config: CircuitBreakerConfig | None = None, *,
                    clock: Callable[[], float] | None = None) -> CircuitBreaker:
    """The breaker registered as ``name``, created (and registered) on first use.

    Asking again with a different ``config`` is an error rather than a silent
    second breaker under the same name.
    """
    with _registry_lock:
        existing = _registry.get(name)
        if existing is not None:
            if config is not None and config != existing.config:
                raise ConfigurationError(
                    f"circuit breaker {name!r} is already registered with {existing.config}; "
                    f"got a different config {config}")
            return existing
        return _register(CircuitBreaker(name, config, clock=clock))


def get_circuit_breakers() -> dict[str, CircuitBreaker]:
    """Every registered breaker by name (a copy)."""
    return dict(_registry)


def get_circuit_breaker(name: str) -> CircuitBreaker:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise KeyError(f"no circuit breaker named {name!r} (registered: {known})") from None


def unregister_circuit_breaker(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name: expected a circuit breaker's name (str), got "
                        f"{type(name).__name__} {name!r}")
    with _registry_lock:
        breaker = _registry.pop(name, None)
        if breaker is not None:
            breaker._engine.observed_as = None


def with_circuit_breaker(name: str | CircuitBreaker, config: CircuitBreakerConfig | None = None,
                         *, fallback: Any = None,
                         exclude: type[BaseException] | tuple[type[BaseException], ...]
                         | Callable[[BaseException], bool] = ()
                         ) -> Callable[[F], F]:
    """Guard the decorated function (sync, ``async def`` or generator) with the breaker ``name``.

    ``fallback`` (a value, or a callable taking the call's arguments) answers
    instead when the breaker rejects the call or the call fails; exceptions in
    ``exclude`` (classes, or a predicate) are business errors: they propagate
    but count as successes. A generator is admitted when it is created and
    counted when it is exhausted, fails or is closed; it gets no span of its
    own, and its fallback answers only a rejection.
    """
    if isinstance(name, CircuitBreaker):
        breaker = name
        with _registry_lock:  # so that it shows in status reports and the state gauge
            _register(breaker)
    else:
        breaker = circuit_breaker(name, config)
    check = Checker("with_circuit_breaker")
    excluded: Any = () if exclude == () else check.exceptions("exclude", exclude)
    check.done()
    if excluded is None:  # a predicate
        excluded = exclude
    fb = MISSING if fallback is None else fallback
    engine = breaker._engine

    def decorate(fn: F) -> F:
        span_name = qualname(fn)
        target = unwrap_ours(fn)
        if inspect.iscoroutinefunction(fn):
            acore = engine.async_core(excluded, fb, breaker.name)
            abound = functools.partial(acore, target)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if no_active_span():
                    return await await_in_own_span(span_name, abound, *args, **kwargs)
                return await acore(target, *args, **kwargs)

            async_wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
            mark_ours(async_wrapper, abound)
            return async_wrapper  # type: ignore[return-value]

        core = engine.sync_core(excluded, fb, breaker.name)
        bound = functools.partial(core, target)
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return core(target, *args, **kwargs)  # no span: it would end before the generator
        else:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if no_active_span():
                    return call_in_own_span(span_name, bound, *args, **kwargs)
                return core(target, *args, **kwargs)

        wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
        mark_ours(wrapper, bound)
        return wrapper  # type: ignore[return-value]

    return decorate
