"""Retries with exponential backoff, on tenacity, reported as OTel telemetry.

The first attempt is a plain call: tenacity costs ~10 µs per call even when
that attempt succeeds, so it only comes in after a failure. It is then given
a fresh ``Retrying`` object per failing call (tenacity's objects keep
per-call state, which concurrent calls of one decorated function would
otherwise share), and its first "attempt" re-raises the failure already
seen, so tenacity's attempt numbers, waits and stop rule stay exact.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

import tenacity

from otelprod import semconv
from otelprod._telemetry import add_event, meter
from otelprod.error_handling import _testing
from otelprod.error_handling._common import (
    Tally,
    await_in_own_span,
    call_in_own_span,
    exception_attributes,
    mark_ours,
    no_active_span,
    qualname,
    record_exception,
    unwrap_ours,
)
from otelprod.error_handling._validate import Checker

if TYPE_CHECKING:
    from otelprod.error_handling._dlq import DeadLetterQueue

F = TypeVar("F", bound=Callable[..., Any])
_JITTER_HAS_MULTIPLIER = "multiplier" in inspect.signature(
    tenacity.wait_exponential_jitter.__init__).parameters
_log = logging.getLogger("otelprod.error_handling")

_attempts = Tally((semconv.RETRY_NAME, semconv.RETRY_RESULT))
meter.create_observable_counter(
    semconv.METRIC_RETRY_ATTEMPTS,
    callbacks=[_attempts.observe],
    unit="{attempt}",
    description="Attempts made by retrying calls, by result.",
)


@dataclass(frozen=True)
class RetryConfig:
    """How often and how patiently to retry.

    The delay before attempt *n + 1* is ``base_delay * exponential_base ** (n - 1)``,
    capped at ``max_delay``; ``jitter`` adds up to ``base_delay`` at random so
    that callers who failed together don't retry together.
    ``retry_on`` is an exception class, a tuple of them, or a predicate.
    ``dead_letter`` (True for the global queue, or a ``DeadLetterQueue``)
    keeps the call's arguments when the retries are exhausted.
    """

    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    exponential_base: float = 2.0
    jitter: bool = True
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | Callable[
        [BaseException], bool] = (Exception,)
    dead_letter: bool | DeadLetterQueue = False
    name: str | None = None
    _types: tuple[type[BaseException], ...] | None = field(
        default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check = Checker("RetryConfig")
        check.integer("max_attempts", self.max_attempts, 1)
        check.number("base_delay", self.base_delay, 0)
        check.number("max_delay", self.max_delay, 0)
        if not check.problems and self.max_delay < self.base_delay:
            check._bad("max_delay", self.max_delay,
                       f"a number >= base_delay ({self.base_delay!r}): no delay can be shorter "
                       "than the first")
        check.number("exponential_base", self.exponential_base, 1)
        check.boolean("jitter", self.jitter)
        types = check.exceptions("retry_on", self.retry_on)
        if not isinstance(self.dead_letter, bool) and not hasattr(self.dead_letter, "add"):
            check._bad("dead_letter", self.dead_letter, "True, False or a DeadLetterQueue")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            check._bad("name", self.name, "a non-empty str or None")
        check.done()
        object.__setattr__(self, "_types", types)

    def should_retry(self, exc: BaseException) -> bool:
        if self._types is not None:
            return isinstance(exc, self._types)
        return bool(self.retry_on(exc))  # type: ignore[operator,call-arg]

    def wait(self) -> tenacity.wait.wait_base:
        if self.jitter:
            start = "multiplier" if _JITTER_HAS_MULTIPLIER else "initial"  # renamed in 9.1
            return tenacity.wait_exponential_jitter(
                max=self.max_delay, exp_base=self.exponential_base, jitter=self.base_delay,
                **{start: self.base_delay})
        return tenacity.wait_exponential(
            multiplier=self.base_delay, max=self.max_delay, exp_base=self.exponential_base)


class _Policy:
    """One decorated function's retry policy and telemetry; holds no per-call state."""

    def __init__(self, config: RetryConfig, name: str,
                 sleep: Callable[[float], Any] | None) -> None:
        self.config = config
        self.name = name
        self.sleep = sleep
        self.wait = config.wait()
        self.stop = tenacity.stop_after_attempt(config.max_attempts)
        self.retry = tenacity.retry_if_exception(config.should_retry)
        self.count_success = _attempts.counter((name, semconv.RetryResult.SUCCESS))
        self.count_retry = _attempts.counter((name, semconv.RetryResult.RETRY))
        self.count_exhausted = _attempts.counter((name, semconv.RetryResult.EXHAUSTED))
        self.count_failure = _attempts.counter((name, semconv.RetryResult.FAILURE))

    # --- tenacity hooks and outcomes ---------------------------------------------------
    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        self.count_retry()
        exc = state.outcome.exception() if state.outcome else None
        attrs: dict[str, Any] = {
            semconv.RETRY_NAME: self.name,
            semconv.RETRY_ATTEMPT: state.attempt_number,
            semconv.RETRY_DELAY: float(state.next_action.sleep) if state.next_action else 0.0,
        }
        if exc is not None:
            attrs.update(exception_attributes(exc))
        add_event(semconv.EVENT_RETRY, attrs)

    def retrying(self, is_async: bool) -> Any:
        """A fresh tenacity object for one failing call: tenacity keeps per-call state on it.
        Test overrides (``set_testing_overrides``) take the waits and cap the attempts."""
        wait, stop = self.wait, self.stop
        overrides = _testing.current
        if overrides is not None:
            if not overrides.retry_wait:
                wait = tenacity.wait_none()
            if overrides.retry_attempts is not None:
                stop = tenacity.stop_after_attempt(self.max_attempts())
        kwargs: dict[str, Any] = dict(stop=stop, wait=wait, retry=self.retry,
                                      before_sleep=self.before_sleep, reraise=True)
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        return (tenacity.AsyncRetrying if is_async else tenacity.Retrying)(**kwargs)

    def max_attempts(self) -> int:
        overrides = _testing.current
        if overrides is None or overrides.retry_attempts is None:
            return self.config.max_attempts
        return min(self.config.max_attempts, overrides.retry_attempts)

    def gives_up_at_once(self, failure: BaseException) -> bool:
        return self.max_attempts() == 1 or not self.config.should_retry(failure)

    def gave_up(self, exc: BaseException, attempts: int) -> bool:
        """Account for the final failure; True when it was an exhaustion to dead-letter."""
        if not self.config.should_retry(exc):
            self.count_failure()
            return False
        self.count_exhausted()
        attrs: dict[str, Any] = {semconv.RETRY_NAME: self.name, semconv.RETRY_ATTEMPT: attempts}
        attrs.update(exception_attributes(exc))
        add_event(semconv.EVENT_RETRY_EXHAUSTED, attrs)
        record_exception(exc, attributes={semconv.RETRY_NAME: self.name,
                                          semconv.RETRY_ATTEMPT: attempts})
        return bool(self.config.dead_letter)

    def dead_letter(self, exc: BaseException, attempts: int, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> None:
        """Keep the call's arguments; a failure here is logged, never raised over ``exc``."""
        from otelprod.error_handling import _dlq

        dlq = self.config.dead_letter
        queue = _dlq.dead_letter_queue if dlq is True else dlq
        try:
            queue.add(self.name, {"args": list(args), "kwargs": kwargs},  # type: ignore[union-attr]
                      error=exc, metadata={semconv.RETRY_NAME: self.name, "attempts": attempts})
        except Exception as dlq_error:
            _log.warning("could not dead-letter the arguments of %s: %s", self.name, dlq_error)
            note = f"otelprod: not dead-lettered: {dlq_error}"
            if hasattr(exc, "add_note"):
                exc.add_note(note)
            else:  # Python 3.10: PEP 678's attribute, as the exceptiongroup backport sets it
                exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]

    # --- the calls -------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            failure = exc
        else:
            self.count_success()
            return result
        return self._recover(fn, args, kwargs, failure)

    def _recover(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 failure: BaseException) -> Any:
        if self.gives_up_at_once(failure):
            if self.gave_up(failure, 1):
                self.dead_letter(failure, 1, args, kwargs)
            raise failure
        pending = [failure]
        attempts = 1

        def attempt() -> Any:
            # tenacity's attempt 1 is the failure already seen: re-raise it, don't call again
            nonlocal attempts
            if pending:
                raise pending.pop()
            attempts += 1
            return fn(*args, **kwargs)

        try:
            result = self.retrying(False)(attempt)
        except BaseException as exc:
            if self.gave_up(exc, attempts):
                self.dead_letter(exc, attempts, args, kwargs)
            raise
        self.count_success()
        return result

    async def acall(self, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            failure = exc
        else:
            self.count_success()
            return result
        if self.gives_up_at_once(failure):
            if self.gave_up(failure, 1):
                await asyncio.to_thread(self.dead_letter, failure, 1, args, kwargs)
            raise failure
        pending = [failure]
        attempts = 1

        async def attempt() -> Any:
            nonlocal attempts
            if pending:
                raise pending.pop()
            attempts += 1
            return await fn(*args, **kwargs)

        try:
            result = await self.retrying(True)(attempt)
        except BaseException as exc:
            if self.gave_up(exc, attempts):
                await asyncio.to_thread(self.dead_letter, exc, attempts, args, kwargs)
            raise
        self.count_success()
        return result


@overload
def with_retry(config: F, /) -> F: ...


@overload
def with_retry(config: RetryConfig | None = None, /, *, name: str | None = None,
               sleep: Callable[[float], Any] | None = None) -> Callable[[F], F]: ...


def with_retry(config: Any = None, /, *, name: str | None = None,
               sleep: Callable[[float], Any] | None = None) -> Any:
    """Retry the decorated function (sync or ``async def``) per ``config``.

    ``@with_retry()`` and bare ``@with_retry`` use the defaults. Each failed
    attempt that will be retried is a ``retry`` event on the current span (the
    call gets its own span when none is active); giving up is
    ``retry.exhausted`` and records the exception. ``sleep`` replaces the
    sleeping function (for tests, or a scheduler of your own); for an
    ``async def`` it must be a coroutine function.
    """
    if callable(config) and not isinstance(config, RetryConfig):
        return with_retry()(config)
    if config is not None and not isinstance(config, RetryConfig):
        raise TypeError(f"with_retry() takes a RetryConfig, got {type(config).__name__}")
    check = Checker("with_retry")
    if name is not None and (not isinstance(name, str) or not name):
        check._bad("name", name, "a non-empty str or None")
    if sleep is not None and not callable(sleep):
        check._bad("sleep", sleep, "a callable(seconds) or None")
    check.done()
    cfg = config or RetryConfig()

    def decorate(fn: F) -> F:
        policy = _Policy(cfg, name or cfg.name or qualname(fn), sleep)
        span_name = policy.name
        target = unwrap_ours(fn)
        if inspect.iscoroutinefunction(fn):
            acore = functools.partial(policy.acall, target)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if no_active_span():
                    return await await_in_own_span(span_name, acore, *args, **kwargs)
                return await policy.acall(target, *args, **kwargs)

            async_wrapper.retry_policy = policy  # type: ignore[attr-defined]
            mark_ours(async_wrapper, acore)
            return async_wrapper  # type: ignore[return-value]

        core = functools.partial(policy.call, target)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if no_active_span():
                return call_in_own_span(span_name, core, *args, **kwargs)
            return policy.call(target, *args, **kwargs)

        wrapper.retry_policy = policy  # type: ignore[attr-defined]
        mark_ours(wrapper, core)
        return wrapper  # type: ignore[return-value]

    return decorate


def retry_attempts(name: str, result: str) -> int:
    """Attempts counted so far for ``retry.name`` ``name`` with ``result`` (for reports)."""
    return _attempts.get((name, result))
