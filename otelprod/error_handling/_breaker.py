"""Circuit breakers on pybreaker whose lock covers state changes only.

pybreaker runs the guarded call while holding the breaker's lock, so one
breaker serialises every thread that passes through it, and it has no
asyncio support. Here pybreaker keeps the state machine (its state objects,
counters, storage, including the Redis storage shared between processes,
and its listeners), while the call itself runs outside the lock:

1. *admit* (lock only off the closed fast path): reject while open, move to
   half-open after ``timeout``, admit at most ``half_open_max_calls`` trial
   calls, and reopen when half-open outlasts ``half_open_timeout``;
2. run the call, unlocked, sync or ``async``;
3. *record* the outcome (lock) through pybreaker's own state object, but only
   if the breaker is still in the state that admitted the call: a slow call
   admitted while closed must not decide a later half-open trial.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import pybreaker
from opentelemetry.metrics import CallbackOptions, Observation

from otelprod import semconv
from otelprod._telemetry import add_event, meter, safely
from otelprod.error_handling._common import (
    Tally,
    _log,
    await_in_own_span,
    call_in_own_span,
    mark_ours,
    no_active_span,
    qualname,
    unwrap_ours,
)
from otelprod.error_handling._fallback import MISSING, ainvoke_fallback, invoke_fallback
from otelprod.error_handling._validate import Checker
from otelprod.errors import ConfigurationError, OtelprodError

F = TypeVar("F", bound=Callable[..., Any])
State = semconv.CircuitBreakerState
Result = semconv.CircuitBreakerResult

#: pybreaker's state names -> the semantic-convention ones
_CLOSED = pybreaker.CircuitClosedState
_STATE_NAMES = {pybreaker.STATE_CLOSED: State.CLOSED, pybreaker.STATE_OPEN: State.OPEN,
                pybreaker.STATE_HALF_OPEN: State.HALF_OPEN}


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """When to open, how long to stay open, and how to probe for recovery.

    Opens after ``failure_threshold`` consecutive failures; after ``timeout``
    seconds the next call moves it to half-open, which admits at most
    ``half_open_max_calls`` trial calls (default: ``success_threshold``) and
    closes after ``success_threshold`` successes. A failed trial reopens it,
    and so does staying half-open longer than ``half_open_timeout`` seconds.
    ``redis_url`` shares the state between processes and replicas through
    pybreaker's Redis storage (keys namespaced by the breaker's name). Each
    call then reads the state from Redis, synchronously, also for ``async``
    callers; the half-open trial bound is counted per process.
    """

    failure_threshold: int = 5
    success_threshold: int = 2
    timeout: float = 60.0
    half_open_timeout: float = 30.0
    half_open_max_calls: int | None = None
    redis_url: str | None = None

    def __post_init__(self) -> None:
        check = Checker("CircuitBreakerConfig")
        check.integer("failure_threshold", self.failure_threshold, 1)
        check.integer("success_threshold", self.success_threshold, 1)
        check.number("timeout", self.timeout, 0)
        check.number("half_open_timeout", self.half_open_timeout, 0, exclusive=True)
        if self.half_open_max_calls is not None:
            minimum = self.success_threshold if isinstance(self.success_threshold, int) else 1
            check.integer("half_open_max_calls", self.half_open_max_calls, minimum)
        if self.redis_url is not None and not (
                isinstance(self.redis_url, str)
                and self.redis_url.startswith(("redis://", "rediss://", "unix://"))):
            check._bad("redis_url", self.redis_url, "None or a redis:// URL")
        check.done()

    @property
    def max_trial_calls(self) -> int:
        return self.half_open_max_calls or self.success_threshold


class CircuitBreakerOpenError(OtelprodError, pybreaker.CircuitBreakerError):
    """The breaker rejected the call without running it."""

    def __init__(self, name: str, state: str, retry_after: float | None) -> None:
        self.name = name
        self.state = state
        self.retry_after = retry_after
        when = f"; retry in {retry_after:.1f} s" if retry_after else ""
        super().__init__(f"circuit breaker {name!r} is {state}: call rejected{when}")


_calls = Tally((semconv.CIRCUITBREAKER_NAME, semconv.CIRCUITBREAKER_RESULT))
_transitions = meter.create_counter(
    semconv.METRIC_CIRCUITBREAKER_TRANSITIONS, unit="{transition}",
    description="Circuit breaker state changes, by the new state.")
_registry: dict[str, CircuitBreaker] = {}
_registry_lock = threading.Lock()
_state_listeners: list[Callable[[str, str, str], Any]] = []


def _observe_states(_options: CallbackOptions) -> list[Observation]:
    out = []
    for breaker in list(_registry.values()):
        try:
            current = breaker.state
        except Exception:
            continue
        for state in State.ALL:
            out.append(Observation(1 if state == current else 0, {
                semconv.CIRCUITBREAKER_NAME: breaker.name, semconv.CIRCUITBREAKER_STATE: state}))
    return out


meter.create_observable_gauge(
    semconv.METRIC_CIRCUITBREAKER_STATE, callbacks=[_observe_states], unit="{state}",
    description="1 for the breaker's current state, 0 for the others.")
meter.create_observable_counter(
    semconv.METRIC_CIRCUITBREAKER_CALLS, callbacks=[_calls.observe], unit="{call}",
    description="Calls through circuit breakers, by result.")


class _PyBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker, timing its open state by our (injectable) clock."""

    clock: Callable[[], float] = time.time

    def open(self) -> bool:
        with self._lock:
            self._state_storage.opened_at = datetime.fromtimestamp(self.clock(), timezone.utc)
            self.state = self._state_storage.state = pybreaker.STATE_OPEN  # type: ignore[assignment]
            return self._throw_new_error_on_trip


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: CircuitBreaker) -> None:
        self.owner = owner

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.owner._on_state_change(old_state.name if old_state else None, new_state.name)


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
            import redis

            storage = pybreaker.CircuitRedisStorage(
                pybreaker.STATE_CLOSED, redis.Redis.from_url(config.redis_url),
                namespace=f"otelprod:{name}")
        self._pending: list[tuple[str | None, str]] = []
        self._trials = 0
        self._half_open_since: float | None = None
        self._cb = _PyBreaker(
            fail_max=config.failure_threshold, reset_timeout=config.timeout,
            success_threshold=config.success_threshold, state_storage=storage, name=name,
            listeners=[_Listener(self)], throw_new_error_on_trip=False)
        self._cb.clock = self._clock
        self._storage = self._cb._state_storage
        self._lock = self._cb._lock  # pybreaker's own RLock: its transitions nest inside ours
        # Memory state changes only through this object: no need to re-read it per call.
        self._local = isinstance(self._storage, pybreaker.CircuitMemoryStorage)
        self._count_success = _calls.counter((name, Result.SUCCESS))
        self._count_failure = _calls.counter((name, Result.FAILURE))
        self._count_rejected = _calls.counter((name, Result.REJECTED))

    # --- state ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The current state as a semantic-convention value (closed / open / half_open)."""
        name = self._cb.state.name
        self._flush()
        return _STATE_NAMES[name]

    @property
    def failure_count(self) -> int:
        return self._storage.counter

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot for status reports."""
        state = self.state
        opened_at = self._storage.opened_at
        retry_after = None
        if state == State.OPEN and opened_at is not None:
            retry_after = max(0.0, opened_at.timestamp() + self.config.timeout - self._clock())
        return {
            "name": self.name, "state": state,
            "failure_count": self._storage.counter,
            "success_count": self._storage.success_counter,
            "failure_threshold": self.config.failure_threshold,
            "success_threshold": self.config.success_threshold,
            "timeout": self.config.timeout, "half_open_timeout": self.config.half_open_timeout,
            "opened_at": opened_at.timestamp() if opened_at else None,
            "retry_after": retry_after,
            "storage": self._storage.name,
            "calls": {r: _calls.get((self.name, r))
                      for r in (Result.SUCCESS, Result.FAILURE, Result.REJECTED)},
        }

    def reset(self) -> None:
        """Close the breaker and forget its counts (the seed's "stuck open" remedy)."""
        with self._lock:
            self._cb.close()
            self._storage.reset_counter()
        self._flush()

    def force_open(self) -> None:
        """Open the breaker now, e.g. during maintenance of the dependency."""
        self._cb.open()
        self._flush()

    # --- pybreaker listener -> telemetry ------------------------------------------------
    def _on_state_change(self, old: str | None, new: str) -> None:
        # Runs under the lock: only bookkeeping here; telemetry and listeners in _flush.
        self._trials = 0
        self._half_open_since = self._clock() if new == pybreaker.STATE_HALF_OPEN else None
        self._pending.append((_STATE_NAMES.get(old) if old else None, _STATE_NAMES[new]))

    def _flush(self) -> None:
        if not self._pending:
            return
        with self._lock:
            pending, self._pending = self._pending, []
        for previous, new in pending:
            attrs = {semconv.CIRCUITBREAKER_NAME: self.name, semconv.CIRCUITBREAKER_STATE: new}
            safely("counting a breaker transition", _transitions.add, 1, attrs)
            if previous is not None:
                attrs[semconv.CIRCUITBREAKER_STATE_PREVIOUS] = previous
            add_event(semconv.EVENT_CIRCUITBREAKER_STATE_CHANGE, attrs)
            _log.log(logging.WARNING if new == State.OPEN else logging.INFO,
                     "circuit breaker %r: %s -> %s", self.name, previous, new)
            for listener in list(_state_listeners):
                safely("a circuit breaker state listener", listener, self.name,
                       previous or new, new)

    # --- the three steps of a call --------------------------------------------------------
    def _admit(self) -> Any:
        """The pybreaker state object that admits the call, or a CircuitBreakerOpenError."""
        st = self._cb._state if self._local else self._cb.state
        if st.__class__ is _CLOSED:
            if self._pending:
                self._flush()
            return st
        retry_after: float | None = None
        with self._lock:
            st = self._cb.state
            now = self._clock()
            if st.name == pybreaker.STATE_OPEN:
                opened_at = self._storage.opened_at
                until = (opened_at.timestamp() if opened_at else now) + self.config.timeout
                if now < until:
                    retry_after = until - now
                else:
                    self._cb.half_open()
                    st = self._cb.state
            if retry_after is None and st.name == pybreaker.STATE_HALF_OPEN:
                if self._half_open_since is None:  # went half-open in another process
                    self._half_open_since = now
                if now - self._half_open_since >= self.config.half_open_timeout:
                    self._cb.open()
                    retry_after = self.config.timeout
                elif self._trials >= self.config.max_trial_calls:
                    retry_after = 0.0
                else:
                    self._trials += 1
        self._flush()
        if retry_after is None:
            return st
        self._count_rejected()
        state = _STATE_NAMES[self._cb.state.name]
        add_event(semconv.EVENT_CIRCUITBREAKER_REJECTED, {
            semconv.CIRCUITBREAKER_NAME: self.name, semconv.CIRCUITBREAKER_STATE: state})
        return CircuitBreakerOpenError(self.name, state, retry_after or None)

    def _succeeded(self, st: Any) -> None:
        self._count_success()
        if st.__class__ is _CLOSED and not self._storage.counter:
            return  # nothing for pybreaker to reset: stay off the lock
        with self._lock:
            if self._cb.state is st:
                st._handle_success()
        self._flush()

    def _failed(self, st: Any, exc: BaseException) -> None:
        self._count_failure()
        with self._lock:
            if self._cb.state is st:
                try:
                    st._handle_error(exc, reraise=False)
                except BaseException as raised:  # pybreaker re-raises exc when it trips
                    if raised is not exc:
                        raise
        self._flush()

    def _outcome(self, st: Any, exc: BaseException, exclude: tuple[type[BaseException], ...]
                 ) -> bool:
        """Record a raised call; True when it counts as a failure (not excluded)."""
        if (exclude and isinstance(exc, exclude)) or not self._cb.is_system_error(exc):
            self._succeeded(st)
            return False
        self._failed(st, exc)
        return True

    # --- public call API -------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` through the breaker (raises CircuitBreakerOpenError)."""
        st = self._admit()
        if st.__class__ is CircuitBreakerOpenError:
            raise st
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._outcome(st, exc, ())
            raise
        self._succeeded(st)
        return result

    async def call_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        st = self._admit()
        if st.__class__ is CircuitBreakerOpenError:
            raise st
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._outcome(st, exc, ())
            raise
        self._succeeded(st)
        return result

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state}>"


# --- registry ----------------------------------------------------------------------------
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
        breaker = _registry[name] = CircuitBreaker(name, config, clock=clock)
        return breaker


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
    with _registry_lock:
        _registry.pop(name, None)


def add_breaker_state_listener(listener: Callable[[str, str, str], Any]) -> None:
    """Call ``listener(name, previous_state, new_state)`` on every state change.

    States are semantic-convention values; a listener's exception is logged,
    never raised into the guarded call.
    """
    if listener not in _state_listeners:
        _state_listeners.append(listener)


def remove_breaker_state_listener(listener: Callable[[str, str, str], Any]) -> None:
    if listener in _state_listeners:
        _state_listeners.remove(listener)


def with_circuit_breaker(name: str | CircuitBreaker, config: CircuitBreakerConfig | None = None,
                         *, fallback: Any = None,
                         exclude: type[BaseException] | tuple[type[BaseException], ...] = ()
                         ) -> Callable[[F], F]:
    """Guard the decorated function (sync or ``async def``) with the breaker ``name``.

    ``fallback`` (a value, or a callable taking the call's arguments) answers
    instead when the breaker rejects the call or the call fails; exceptions in
    ``exclude`` are business errors: they propagate but count as successes.
    """
    if isinstance(name, CircuitBreaker):
        breaker = name
        with _registry_lock:  # so that it shows in status reports and the state gauge
            _registry.setdefault(breaker.name, breaker)
    else:
        breaker = circuit_breaker(name, config)
    check = Checker("with_circuit_breaker")
    excluded = () if exclude == () else check.exceptions("exclude", exclude)
    check.done()
    excluded = excluded or ()
    fb = MISSING if fallback is None else fallback
    admit, succeeded, outcome = breaker._admit, breaker._succeeded, breaker._outcome

    def decorate(fn: F) -> F:
        span_name = qualname(fn)
        fb_name = breaker.name
        target = unwrap_ours(fn)
        if inspect.iscoroutinefunction(fn):
            async def acore(*args: Any, **kwargs: Any) -> Any:
                st = admit()
                if st.__class__ is CircuitBreakerOpenError:
                    if fb is MISSING:
                        raise st
                    return await ainvoke_fallback(fb_name, fb, st, args, kwargs)
                try:
                    result = await target(*args, **kwargs)
                except BaseException as exc:
                    if outcome(st, exc, excluded) and fb is not MISSING and isinstance(
                            exc, Exception):
                        return await ainvoke_fallback(fb_name, fb, exc, args, kwargs)
                    raise
                succeeded(st)
                return result

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if no_active_span():
                    return await await_in_own_span(span_name, acore, *args, **kwargs)
                return await acore(*args, **kwargs)

            async_wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
            mark_ours(async_wrapper, acore)
            return async_wrapper  # type: ignore[return-value]

        def core(*args: Any, **kwargs: Any) -> Any:
            st = admit()
            if st.__class__ is CircuitBreakerOpenError:
                if fb is MISSING:
                    raise st
                return invoke_fallback(fb_name, fb, st, args, kwargs)
            try:
                result = target(*args, **kwargs)
            except BaseException as exc:
                if outcome(st, exc, excluded) and fb is not MISSING and isinstance(exc, Exception):
                    return invoke_fallback(fb_name, fb, exc, args, kwargs)
                raise
            succeeded(st)
            return result

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if no_active_span():
                return call_in_own_span(span_name, core, *args, **kwargs)
            return core(*args, **kwargs)

        wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
        mark_ours(wrapper, core)
        return wrapper  # type: ignore[return-value]

    return decorate
