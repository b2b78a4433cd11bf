"""What a breaker tells the world: typed transition records, listeners, telemetry.

A state change becomes one ``BreakerTransition``; ``publish`` turns it into a
``circuitbreaker.state_change`` span event, a ``circuitbreaker.transitions``
count and a log line, then hands it to every listener added with
``add_breaker_state_listener`` (a ``BreakerListener``: any callable taking the
record). Calls are tallied per result and read by an observable counter;
every live breaker is tracked, and those with a name to report under
(``observed_as``) are in the state gauge.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from otelprod import _forks, semconv
from otelprod._telemetry import add_event, meter, safely
from otelprod.error_handling._common import Tally, _log

State = semconv.CircuitBreakerState
Result = semconv.CircuitBreakerResult


class TransitionReason:
    """Why a breaker changed state (``BreakerTransition.reason``)."""

    #: closed -> open: ``failure_threshold`` consecutive failures
    FAILURE_THRESHOLD: Final = "failure_threshold"
    #: half_open -> open: a trial call failed
    TRIAL_FAILED: Final = "trial_failed"
    #: half_open -> open: a trial call ran longer than ``half_open_timeout``
    TRIAL_HUNG: Final = "trial_hung"
    #: open -> half_open: ``timeout`` elapsed and a call came
    TIMEOUT_ELAPSED: Final = "timeout_elapsed"
    #: half_open -> closed: ``success_threshold`` trials succeeded
    SUCCESS_THRESHOLD: Final = "success_threshold"
    #: open(), close(), half_open(), reset(), force_open() or the state setter
    MANUAL: Final = "manual"
    #: another process changed the shared (Redis) state; this one noticed
    SHARED_STATE: Final = "shared_state"


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One state change of one breaker, as listeners receive it.

    ``previous`` and ``new`` are semantic-convention states (closed / open /
    half_open); ``at`` is the breaker's clock (``time.time`` unless injected)
    when the change was made.
    """

    name: str
    previous: str
    new: str
    reason: str
    at: float


class BreakerListener(Protocol):
    """Called after every state change of every breaker, outside the breaker's lock.

    Its exceptions are logged, never raised into the guarded call.
    """

    def __call__(self, transition: BreakerTransition, /) -> object: ...


_listeners: list[BreakerListener] = []
_listeners_lock = threading.Lock()


def add_breaker_state_listener(listener: BreakerListener) -> None:
    """Call ``listener(transition)`` with a ``BreakerTransition`` on every state change."""
    if not callable(listener):
        from otelprod.errors import ConfigurationError

        raise ConfigurationError(f"add_breaker_state_listener: listener must be callable, got "
                                 f"{listener!r} ({type(listener).__name__})")
    with _listeners_lock:
        if listener not in _listeners:
            _listeners.append(listener)


def remove_breaker_state_listener(listener: BreakerListener) -> None:
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


calls = Tally((semconv.CIRCUITBREAKER_NAME, semconv.CIRCUITBREAKER_RESULT))
_transitions = meter.create_counter(
    semconv.METRIC_CIRCUITBREAKER_TRANSITIONS, unit="{transition}",
    description="Circuit breaker state changes, by the new state.")
meter.create_observable_counter(
    semconv.METRIC_CIRCUITBREAKER_CALLS, callbacks=[calls.observe], unit="{call}",
    description="Calls through circuit breakers, by result.")


def call_counters(name: str) -> dict[str, Callable[[], int]]:
    """The increment function per call result for the breaker ``name``."""
    return {result: calls.counter((name, result)) for result in Result.ALL}


def publish(change: BreakerTransition) -> None:
    """Telemetry and listeners for one transition (never raises)."""
    attrs = {semconv.CIRCUITBREAKER_NAME: change.name, semconv.CIRCUITBREAKER_STATE: change.new}
    safely("counting a breaker transition", _transitions.add, 1, attrs)
    add_event(semconv.EVENT_CIRCUITBREAKER_STATE_CHANGE, {
        **attrs, semconv.CIRCUITBREAKER_STATE_PREVIOUS: change.previous,
        semconv.CIRCUITBREAKER_TRANSITION_REASON: change.reason})
    _log.log(logging.WARNING if change.new == State.OPEN else logging.INFO,
             "circuit breaker %r: %s -> %s (%s)", change.name, change.previous, change.new,
             change.reason)
    for listener in list(_listeners):
        safely("a circuit breaker state listener", listener, change)


def publish_rejection(name: str, state: str) -> None:
    add_event(semconv.EVENT_CIRCUITBREAKER_REJECTED, {
        semconv.CIRCUITBREAKER_NAME: name, semconv.CIRCUITBREAKER_STATE: state})


# --- every live breaker: the state gauge ------------------------------------------------------
_breakers: weakref.WeakSet[Any] = weakref.WeakSet()
_breakers_lock = threading.Lock()


def track(breaker: Any) -> None:
    """Track a breaker engine (``observed_as``, ``state_name()``) while it lives."""
    with _breakers_lock:
        _breakers.add(breaker)


def tracked() -> list[Any]:
    with _breakers_lock:
        return list(_breakers)


def _renew_lock(_breakers: object) -> None:
    global _breakers_lock
    _breakers_lock = threading.Lock()  # a parent thread may have held it at fork()


_forks.register(_breakers, after_in_child=_renew_lock)


def _observe_states(_options: CallbackOptions) -> list[Observation]:
    out, seen = [], set()
    for breaker in tracked():
        name = breaker.observed_as
        if name is None or name in seen:
            continue
        try:
            current = breaker.state_name()
        except Exception:  # e.g. Redis unreachable: no point rather than a failed collection
            continue
        seen.add(name)
        for state in State.ALL:
            out.append(Observation(1 if state == current else 0, {
                semconv.CIRCUITBREAKER_NAME: name, semconv.CIRCUITBREAKER_STATE: state}))
    return out


meter.create_observable_gauge(
    semconv.METRIC_CIRCUITBREAKER_STATE, callbacks=[_observe_states], unit="{state}",
    description="1 for the breaker's current state, 0 for the others.")
