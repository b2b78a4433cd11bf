"""A drop-in for ``pybreaker.CircuitBreaker``: its API, otelprod's call path and telemetry.

    from otelprod.error_handling.pybreaker_compat import CircuitBreaker, CircuitBreakerError

    db_breaker = CircuitBreaker(fail_max=5, reset_timeout=60, name="db")

    @db_breaker
    def query(sql): ...

Code written for pybreaker 1.4 keeps working (constructor, ``call``,
``calling()``, the decorator, ``open()``/``half_open()``/``close()``,
listeners, ``current_state``, ``fail_counter``, storages); calls are no
longer serialised by the breaker's lock, ``async def`` works on asyncio, and
every transition, rejection and call shows up as otelprod telemetry.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from pybreaker import (
    STATE_CLOSED,
    STATE_HALF_OPEN,
    STATE_OPEN,
    CircuitBreakerError,
    CircuitBreakerListener,
    CircuitBreakerStorage,
    CircuitMemoryStorage,
    CircuitRedisStorage,
)

from otelprod.error_handling._breaker_engine import _NAME, BreakerEngine, CircuitBreakerOpenError
from otelprod.error_handling._fallback import MISSING

__all__ = ["STATE_CLOSED", "STATE_HALF_OPEN", "STATE_OPEN", "CircuitBreaker",
           "CircuitBreakerError", "CircuitBreakerListener", "CircuitBreakerOpenError",
           "CircuitBreakerStorage", "CircuitMemoryStorage", "CircuitRedisStorage"]


class CircuitBreaker(BreakerEngine):
    """``pybreaker.CircuitBreaker`` (a subclass) with otelprod's unlocked call path.

    Takes pybreaker's constructor, and keyword-only ``half_open_max_calls``,
    ``half_open_timeout``, ``count_cancellations`` and ``clock``. Where it
    differs from pybreaker 1.4.1:

    1. The guarded call runs outside the breaker's lock, so concurrent calls
       are not serialised. While half-open, at most ``half_open_max_calls``
       (default ``success_threshold``) trial calls run at once; a caller
       beyond that is rejected at once, where pybreaker makes it wait for the
       lock and then run it.
    2. A call's outcome counts only if the breaker is still in the state that
       admitted it: a slow call admitted while closed does not decide a later
       half-open trial.
    3. A trial still running ``half_open_timeout`` seconds (default
       ``reset_timeout``) after it started reopens the breaker at the next
       call. pybreaker has no such bound (every caller waits on its lock).
    4. A call ended by a ``BaseException`` that is not an ``Exception``
       (``asyncio.CancelledError``, ``KeyboardInterrupt``, ``SystemExit``,
       ``GeneratorExit`` from a generator closed early) counts as neither
       success nor failure. ``count_cancellations=True`` makes it a failure,
       as in pybreaker.
    5. ``async def`` runs on asyncio, without tornado: ``call_async`` returns
       a coroutine, the decorator turns an ``async def`` into one admitted
       when awaited, and ``__pybreaker_call_async=True`` needs no tornado (it
       makes the decorator await what the function returns). ``call()`` on an
       ``async def`` returns a coroutine counted when it finishes; pybreaker
       counts a success when the coroutine object is created.
    6. A rejected call raises ``CircuitBreakerOpenError``, a subclass of
       ``CircuitBreakerError`` with otelprod's message and a ``retry_after``.
       The call that trips the breaker raises ``CircuitBreakerError`` with
       pybreaker's messages (or its own error with
       ``throw_new_error_on_trip=False``), as in pybreaker.
    7. A listener's exception (``before_call``, ``success``, ``failure``,
       ``state_change``) is logged, not raised into the call, except from
       ``state_change`` when the state setter (``breaker.state = ...``) is
       used directly, which stays pybreaker's own.
    8. Reading ``state`` never installs a stale state: pybreaker refreshes its
       cached state without the lock, racing with transitions.
    9. Shared (Redis) state: noticing a state another process set does not
       reset the shared counters (listeners still hear ``state_change``);
       open -> half-open is one Redis transaction; the open time is also kept
       exactly, next to pybreaker's whole seconds.
    10. pybreaker's state objects are still created (``state`` returns them,
        listeners receive them), but calls do not go through their
        ``call``/``before_call``/``on_success``/``on_failure``: overriding
        those in a subclass of a state has no effect.
    11. It emits otelprod telemetry under its name (``unnamed`` when it has
        none); a named breaker is in the ``circuitbreaker.state`` gauge.
    """

    #: in the ``circuitbreaker.state`` gauge under its name (when it has one)
    gauged_by_name = True

    @property  # type: ignore[override]
    def name(self) -> str | None:
        return _NAME.fget(self)  # type: ignore[no-any-return]

    @name.setter
    def name(self, name: str) -> None:
        BreakerEngine.name.fset(self, name)  # type: ignore[attr-defined]
        self.observed_as = name

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` through the breaker."""
        return self._core(func, *args, **kwargs)

    def call_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A coroutine awaiting ``func(*args, **kwargs)`` through the breaker."""
        return self._async_core(func, *args, **kwargs)

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """The block of the ``with`` statement is the guarded call."""
        token = self._admit()
        if token.__class__ is CircuitBreakerOpenError:
            raise token
        if self._watchers:
            self._before_call(self.calling, (), {})
        try:
            yield
        except BaseException as exc:
            self._raised(token, exc, (), MISSING)
            raise
        self._succeeded(token)

    def __call__(self, *call_args: Any, **call_kwargs: Any) -> Any:
        """Decorate a function (sync, ``async def`` or generator) with the breaker."""
        awaits = bool(call_kwargs.pop("__pybreaker_call_async", False))

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            if awaits or inspect.iscoroutinefunction(func):
                async_core = self._async_core

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await async_core(func, *args, **kwargs)

                return async_wrapper
            core = self._core

            @functools.wraps(func)  # a function, not a partial: methods still bind ``self``
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return core(func, *args, **kwargs)

            return wrapper

        if call_args:
            return decorate(*call_args)
        return decorate
