"""The breaker's engine: pybreaker's state machine, with the call outside its lock.

pybreaker runs the guarded call while holding the breaker's lock, so one
breaker serialises every thread that passes through it. Here pybreaker keeps
the states, the storage (memory, or Redis shared between processes) and its
listeners, and a call goes through three steps:

1. *admit* (lock only off the closed fast path): reject while open; after
   ``reset_timeout`` move to half-open and admit trial calls, at most
   ``half_open_max_calls`` in flight at once;
2. run the call, unlocked: sync, ``async``, or a generator (sync or async),
   whose outcome is known only when it is exhausted, fails or is closed;
3. *settle* the outcome (lock), but only if the breaker is still in the state
   that admitted the call: a slow call admitted while closed must not decide a
   later half-open trial.

Half-open closes after ``success_threshold`` successful trials however far
apart they come; a failed trial reopens it, and so does a trial still running
``half_open_timeout`` seconds after it was admitted (a hung trial would
otherwise hold its slot, and the breaker, forever). Without a trial in flight,
half-open waits for the next call, as in pybreaker.

A call ended by a ``BaseException`` that is not an ``Exception``
(``asyncio.CancelledError``, ``KeyboardInterrupt``, ``SystemExit``, a
generator closed early) says nothing about the dependency: it counts as
neither success nor failure (result ``cancelled``) and frees its trial slot,
unless ``count_cancellations`` makes it a failure as pybreaker does.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Sequence
from typing import Any

import pybreaker

from otelprod import _forks, semconv
from otelprod._compat import pybreaker as compat
from otelprod._telemetry import safely
from otelprod.error_handling import _testing
from otelprod.error_handling._breaker_events import (
    BreakerTransition,
    TransitionReason,
    call_counters,
    publish,
    publish_rejection,
    track,
    tracked,
)
from otelprod.error_handling._breaker_storage import state_store
from otelprod.error_handling._fallback import MISSING, ainvoke_fallback, invoke_fallback
from otelprod.errors import OtelprodError

State = semconv.CircuitBreakerState
Result = semconv.CircuitBreakerResult
Reason = TransitionReason

#: pybreaker's state names -> the semantic-convention ones
STATE_NAMES = {pybreaker.STATE_CLOSED: State.CLOSED, pybreaker.STATE_OPEN: State.OPEN,
               pybreaker.STATE_HALF_OPEN: State.HALF_OPEN}
_CLOSED = pybreaker.CircuitClosedState
_OPEN, _HALF_OPEN = pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
_STATE_SETTER: Any = pybreaker.CircuitBreaker.state.fset  # type: ignore[attr-defined]
_NAME: Any = pybreaker.CircuitBreaker.name

# how _settle saw an outcome
NEUTRAL, SUCCEEDED, FAILED, TRIPPED = range(4)
Excluded = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class CircuitBreakerOpenError(OtelprodError, pybreaker.CircuitBreakerError):
    """The breaker rejected the call without running it."""

    def __init__(self, name: str, state: str, retry_after: float | None) -> None:
        self.name = name
        self.state = state
        self.retry_after = retry_after
        when = f"; retry in {retry_after:.1f} s" if retry_after else ""
        super().__init__(f"circuit breaker {name!r} is {state}: call rejected{when}")


class _Trial:
    """A call admitted while half-open: it holds a trial slot until it settles."""

    __slots__ = ("started", "state")

    def __init__(self, state: Any, started: float) -> None:
        self.state = state
        self.started = started


class BreakerEngine(pybreaker.CircuitBreaker):
    """pybreaker's breaker with otelprod's call path; see the module docstring.

    Takes pybreaker's constructor, plus ``half_open_max_calls`` (default:
    ``success_threshold``), ``half_open_timeout`` (default: ``reset_timeout``),
    ``count_cancellations`` and ``clock`` (seconds, default ``time.time``).
    """

    gauged_by_name = False

    def __init__(self, fail_max: int = 5, reset_timeout: float = 60,
                 success_threshold: int = 1, exclude: Any = None,
                 listeners: Sequence[pybreaker.CircuitBreakerListener] | None = None,
                 state_storage: pybreaker.CircuitBreakerStorage | None = None,
                 name: str | None = None, throw_new_error_on_trip: bool = True, *,
                 half_open_max_calls: int | None = None, half_open_timeout: float | None = None,
                 count_cancellations: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        storage = state_storage or pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        super().__init__(fail_max, reset_timeout, success_threshold, exclude, listeners,
                         storage, name, throw_new_error_on_trip)
        self._storage = storage
        self._store = state_store(storage)
        # Only this object changes a memory storage it created: no need to re-read it per call.
        self._local = state_storage is None
        self._mutex = compat.lock(self)  # pybreaker's own RLock: its transitions nest in ours
        self._st = compat.cached_state(self)  # mirrors pybreaker's cached state object
        self._clock = clock or time.time
        self._throw_on_trip = throw_new_error_on_trip
        self.half_open_max_calls = half_open_max_calls
        self.half_open_timeout = half_open_timeout
        self.count_cancellations = count_cancellations
        self._trials: list[_Trial] = []
        self._pending: list[BreakerTransition] = []
        # pybreaker's listeners, kept as a tuple so that each call reads it without a copy
        self._watchers: tuple[Any, ...] = self.listeners
        self._express: Any = None  # see _update_express
        #: a test override's state ("open"/"closed", error_handling._testing), or None
        self.forced: str | None = None
        #: the name the state gauge reports it under (None: not in the gauge)
        self.observed_as: str | None = name if self.gauged_by_name else None
        self._relabel()  # also applies a test override for the name
        self._update_express()
        self._core = self.sync_core()  # call() and call_async()
        self._async_core = self.async_core()
        _forks.register(self, after_in_child=_reset_in_child)
        track(self)

    # --- settings --------------------------------------------------------------------------
    @property
    def half_open_max_calls(self) -> int:
        """Trial calls in flight at once while half-open."""
        return self._trial_limit or self.success_threshold

    @half_open_max_calls.setter
    def half_open_max_calls(self, value: int | None) -> None:
        self._trial_limit = value

    @property
    def half_open_timeout(self) -> float:
        """How long a trial may run before the breaker gives up on it and reopens."""
        return self.reset_timeout if self._trial_timeout is None else self._trial_timeout

    @half_open_timeout.setter
    def half_open_timeout(self, value: float | None) -> None:
        self._trial_timeout = value

    @property  # type: ignore[override]
    def name(self) -> str | None:
        return _NAME.fget(self)  # type: ignore[no-any-return]

    @name.setter
    def name(self, name: str) -> None:
        _NAME.fset(self, name)
        self._relabel()

    def _relabel(self) -> None:
        self.label = self.name or "unnamed"
        overrides = _testing.current
        self.forced = overrides.breaker_state(self.label) if overrides is not None else None
        counts = call_counters(self.label)
        self._count_success = counts[Result.SUCCESS]
        self._count_failure = counts[Result.FAILURE]
        self._count_rejected = counts[Result.REJECTED]
        self._count_cancelled = counts[Result.CANCELLED]

    def add_listener(self, listener: Any) -> None:
        with self._mutex:
            super().add_listener(listener)
            self._watchers = self.listeners
            self._update_express()

    def remove_listener(self, listener: Any) -> None:
        with self._mutex:
            super().remove_listener(listener)
            self._watchers = self.listeners
            self._update_express()

    def _update_express(self) -> None:
        """The express lane: the closed state object while a call needs nothing but running
        and counting (the storage is ours, its failure count is 0, no listener waits and no
        transition is pending), else None. Calls check it instead of admitting and settling
        through the lock. Update it whenever one of those changes (hold the lock)."""
        st = self._st
        self._express = st if (self._local and st.__class__ is _CLOSED and not self._watchers
                               and not self._pending and not self._storage.counter
                               and self.forced is None) else None

    # --- state -------------------------------------------------------------------------------
    def _current(self) -> Any:
        """The state object, re-read from shared storage; never installs a stale one."""
        st = self._st
        if self._local or self._storage.state == st.name:
            return st
        with self._mutex:  # changed elsewhere: re-read under the lock, then adopt it
            return self._locked_current()

    def _locked_current(self) -> Any:
        st = self._st
        if self._local:
            return st
        name = self._storage.state
        if name != st.name:
            self._adopt(name, Reason.SHARED_STATE)
        return self._st

    def _get_state(self) -> Any:
        st = self._current()
        if self._pending:
            self._flush()
        return st

    def _set_state(self, state: str) -> None:
        with self._mutex:
            old = self._st
            _STATE_SETTER(self, state)  # pybreaker: new state object, its side effects, listeners
            self._st = compat.cached_state(self)
            self._transitioned(old, state, Reason.MANUAL)
            self._update_express()

    #: pybreaker's property without its unlocked refresh (issue 17, item 2)
    state = property(_get_state, _set_state)  # type: ignore[assignment]

    def state_name(self) -> str:
        """The current state as a semantic-convention value (closed / open / half_open)."""
        return STATE_NAMES[self._get_state().name]

    def _adopt(self, name: str, reason: str) -> None:
        """Cache the state ``name``, which the storage already holds, and tell pybreaker's
        listeners. Hold the lock."""
        old, new = compat.install_state(self, name)  # without pybreaker's side effects
        self._st = new
        for listener in self._watchers:
            safely("a pybreaker listener's state_change", listener.state_change, self, old, new)
        self._transitioned(old, name, reason)

    def _transitioned(self, old: Any, new: str, reason: str) -> None:
        self._trials = []
        previous, current = STATE_NAMES.get(getattr(old, "name", "")), STATE_NAMES.get(new)
        if previous is not None and current is not None and previous != current:
            self._pending.append(
                BreakerTransition(self.label, previous, current, reason, self._clock()))
            self._express = None

    def _flush(self) -> None:
        """Publish the transitions made under the lock, outside it."""
        if not self._pending:
            return
        with self._mutex:
            pending, self._pending = self._pending, []
            self._update_express()
        for change in pending:
            publish(change)

    def _move(self, name: str, reason: str) -> None:
        """Make a transition: pybreaker's storage writes, then the cached state."""
        with self._mutex:
            storage = self._storage
            storage.reset_success_counter()
            if name == _OPEN:
                self._store.set_opened_at(self._clock())  # before the state, for other processes
            elif name == pybreaker.STATE_CLOSED:
                storage.reset_counter()
            storage.state = name
            self._adopt(name, reason)
            self._update_express()

    # pybreaker's public transitions, made by _move (a listener's error is logged, not raised)
    def open(self) -> bool:
        """Open now; the open period is timed by this breaker's clock."""
        self._move(_OPEN, Reason.MANUAL)
        return self._throw_on_trip

    def half_open(self) -> None:
        self._move(_HALF_OPEN, Reason.MANUAL)

    def close(self) -> None:
        self._move(pybreaker.STATE_CLOSED, Reason.MANUAL)

    def retry_at(self) -> float:
        """When an open breaker admits a trial (breaker clock)."""
        opened_at = self._store.opened_at()
        return float("-inf") if opened_at is None else opened_at + self.reset_timeout

    # --- 1. admit ----------------------------------------------------------------------------
    def _admit(self) -> Any:
        """The token of an admitted call (a state object or a _Trial), or the rejection."""
        if self.forced is not None:
            return self._admit_forced()
        st = self._st if self._local else self._current()
        if st.__class__ is _CLOSED:
            if self._pending:
                self._flush()
            return st
        return self._admit_locked()

    def _admit_locked(self) -> Any:
        retry_after: float | None = None
        with self._mutex:
            st = self._locked_current()
            now = self._clock()
            if st.name == _OPEN:
                retry_at = self.retry_at()
                if now >= retry_at and self._store.begin_half_open(now, self.reset_timeout):
                    self._adopt(_HALF_OPEN, Reason.TIMEOUT_ELAPSED)
                st = self._locked_current()
                if st.name == _OPEN:
                    retry_after = max(self.retry_at() - now, 0.0)
            token = st
            if st.name == _HALF_OPEN:
                trials = self._trials
                if trials and now - min(t.started for t in trials) >= self.half_open_timeout:
                    self._move(_OPEN, Reason.TRIAL_HUNG)
                    retry_after = self.reset_timeout
                elif len(trials) >= self.half_open_max_calls:
                    retry_after = 0.0
                else:
                    token = _Trial(st, now)
                    trials.append(token)
        self._flush()
        if retry_after is None:
            return token
        self._count_rejected()
        state = STATE_NAMES[self._st.name]
        publish_rejection(self.label, state)
        return CircuitBreakerOpenError(self.label, state, retry_after or None)

    def _admit_forced(self) -> Any:
        """Under a test override: reject as if open, or admit with a token no state owns,
        so that settling it counts the call and changes no state (see _succeeded)."""
        if self.forced == _testing.OPEN:
            self._count_rejected()
            publish_rejection(self.label, State.OPEN)
            return CircuitBreakerOpenError(self.label, State.OPEN, None)
        return _FORCED_CLOSED

    def _before_call(self, fn: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> None:
        for listener in self._watchers:
            safely("a pybreaker listener's before_call", listener.before_call, self, fn,
                   *args, **kwargs)

    # --- 3. settle ---------------------------------------------------------------------------
    def _succeeded(self, token: Any) -> None:
        self._count_success()
        if token.__class__ is _CLOSED and not (
                self._local or self._watchers or self._storage.counter):
            return  # shared storage with nothing to reset and nobody to tell: stay off the lock
        with self._mutex:
            st = self._end(token)
            if self._locked_current() is st:
                self._storage.reset_counter()
                self._update_express()
                if st.name == _HALF_OPEN:
                    self._storage.increment_success_counter()
                    if self._storage.success_counter >= self.success_threshold:
                        self._move(pybreaker.STATE_CLOSED, Reason.SUCCESS_THRESHOLD)
                for listener in self._watchers:
                    safely("a pybreaker listener's success", listener.success, self)
        self._flush()

    def _failed(self, token: Any, exc: BaseException) -> int:
        self._count_failure()
        verdict = FAILED
        with self._mutex:
            st = self._end(token)
            if self._locked_current() is st:  # else stale: admitted by an earlier state
                self._express = None
                self._storage.increment_counter()
                for listener in self._watchers:
                    safely("a pybreaker listener's failure", listener.failure, self, exc)
                if st.name == _HALF_OPEN:
                    self._move(_OPEN, Reason.TRIAL_FAILED)
                    verdict = TRIPPED
                elif self._storage.counter >= self.fail_max:
                    self._move(_OPEN, Reason.FAILURE_THRESHOLD)
                    verdict = TRIPPED
        self._flush()
        return verdict

    def _cancelled(self, token: Any) -> None:
        self._count_cancelled()
        if token.__class__ is _Trial:
            with self._mutex:
                self._end(token)

    def _end(self, token: Any) -> Any:
        """The state that admitted the call; a trial gives its slot back. Hold the lock."""
        if token.__class__ is not _Trial:
            return token
        if token in self._trials:
            self._trials.remove(token)
        return token.state

    def _settle(self, token: Any, exc: BaseException, excluded: Excluded) -> int:
        """Record a call that raised ``exc``; NEUTRAL, SUCCEEDED, FAILED or TRIPPED."""
        if not isinstance(exc, Exception) and not self.count_cancellations:
            self._cancelled(token)
            return NEUTRAL
        if excluded and (isinstance(exc, excluded) if isinstance(excluded, tuple)
                         else excluded(exc)):
            self._succeeded(token)
            return SUCCEEDED
        if not self.is_system_error(exc):  # pybreaker's ``exclude``
            self._succeeded(token)
            return SUCCEEDED
        return self._failed(token, exc)

    def _raised(self, token: Any, exc: BaseException, excluded: Excluded, fallback: Any
                ) -> bool:
        """Settle a raised call; True when the fallback answers. Raises pybreaker's error
        instead of ``exc`` when the call tripped the breaker and that is the caller's choice."""
        verdict = self._settle(token, exc, excluded)
        if verdict >= FAILED and fallback is not MISSING and isinstance(exc, Exception):
            return True
        if verdict == TRIPPED and self._throw_on_trip:
            message = ("Trial call failed, circuit breaker opened" if token.__class__ is _Trial
                       else "Failures threshold reached, circuit breaker opened")
            raise pybreaker.CircuitBreakerError(message) from exc
        return False

    # --- 2. run: one core for every kind of callable ------------------------------------------
    def sync_core(self, excluded: Excluded = (), fallback: Any = MISSING, label: str = ""
                  ) -> Callable[..., Any]:
        """``core(fn, *args, **kwargs)``: call ``fn`` guarded by this breaker. A generator or
        coroutine that ``fn`` returns is settled when it ends. ``fallback`` answers
        rejections and failures."""
        admit, succeeded, raised = self._admit, self._succeeded, self._raised

        def core(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            token = self._express
            if token is None:
                token = admit()
                if token.__class__ is CircuitBreakerOpenError:
                    if fallback is MISSING:
                        raise token
                    return invoke_fallback(label, fallback, token, args, kwargs)
                if self._watchers:
                    self._before_call(fn, args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                if raised(token, exc, excluded, fallback):
                    return invoke_fallback(label, fallback, exc, args, kwargs)
                raise
            if result.__class__ in _DEFERRED:
                return _DEFERRED[result.__class__](self, token, result, excluded)
            if token is self._express:
                self._count_success()
            else:
                succeeded(token)
            return result

        return core

    def async_core(self, excluded: Excluded = (), fallback: Any = MISSING, label: str = ""
                   ) -> Callable[..., Any]:
        """The same for an ``async def`` ``fn``: admitted when awaited."""
        admit, succeeded, raised = self._admit, self._succeeded, self._raised

        async def core(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            token = self._express
            if token is None:
                token = admit()
                if token.__class__ is CircuitBreakerOpenError:
                    if fallback is MISSING:
                        raise token
                    return await ainvoke_fallback(label, fallback, token, args, kwargs)
                if self._watchers:
                    self._before_call(fn, args, kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                if raised(token, exc, excluded, fallback):
                    return await ainvoke_fallback(label, fallback, exc, args, kwargs)
                raise
            if token is self._express:
                self._count_success()
            else:
                succeeded(token)
            return result

        return core


# --- outcomes known only later: generators and coroutines -----------------------------------
def _generator(engine: BreakerEngine, token: Any, gen: Any, excluded: Excluded) -> Any:
    try:
        result = yield from gen  # send(), throw() and close() reach the generator as they are
    except BaseException as exc:
        engine._raised(token, exc, excluded, MISSING)
        raise
    engine._succeeded(token)
    return result


async def _async_generator(engine: BreakerEngine, token: Any, agen: Any, excluded: Excluded
                           ) -> Any:
    try:
        item = await agen.__anext__()
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                await agen.aclose()
                raise
            except BaseException as thrown:
                item = await agen.athrow(thrown)
            else:
                item = await agen.asend(sent)
    except StopAsyncIteration:
        engine._succeeded(token)
    except BaseException as exc:
        engine._raised(token, exc, excluded, MISSING)
        raise


async def _coroutine(engine: BreakerEngine, token: Any, coro: Any, excluded: Excluded) -> Any:
    try:
        result = await coro
    except BaseException as exc:
        engine._raised(token, exc, excluded, MISSING)
        raise
    engine._succeeded(token)
    return result


_DEFERRED: dict[type, Callable[..., Any]] = {
    types.GeneratorType: _generator, types.AsyncGeneratorType: _async_generator,
    types.CoroutineType: _coroutine}


#: the token of a call admitted by a breaker forced closed: no state is it, so settling it
#: changes nothing but the counts
_FORCED_CLOSED = object()


def _apply_overrides(overrides: _testing.TestingOverrides | None) -> None:
    """Force (or release) every live breaker the test overrides name."""
    for engine in tracked():
        if not isinstance(engine, BreakerEngine):
            continue
        with engine._mutex:
            engine.forced = (overrides.breaker_state(engine.label)
                             if overrides is not None else None)
            engine._update_express()


_testing.on_change(_apply_overrides)


# --- a forked child -----------------------------------------------------------------------
def _reset_in_child(engine: BreakerEngine) -> None:
    """In a forked child: fresh locks, no trials or transitions inherited from the parent.

    A lock some parent thread held at fork() stays held forever in the child,
    and the parent's trials in flight never settle there. Registered with the
    fork registry by every engine.
    """
    compat.renew_lock(engine)
    engine._mutex = compat.lock(engine)
    engine._trials = []
    engine._pending = []
    engine._update_express()
