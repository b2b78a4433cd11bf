"""Graceful degradation: answer with a fallback instead of failing, and say so.

Every use of a fallback is a ``fallback`` span event and counts in
``fallback.invocations``: a service quietly living on fallbacks looks healthy
from outside, so the telemetry is what tells the two apart.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from otelprod import semconv
from otelprod._telemetry import add_event, meter, safely
from otelprod.error_handling._common import (
    await_in_own_span,
    call_in_own_span,
    exception_attributes,
    mark_ours,
    no_active_span,
    qualname,
    unwrap_ours,
)
from otelprod.error_handling._validate import Checker

F = TypeVar("F", bound=Callable[..., Any])

#: "no fallback given" (None is a legitimate fallback value for with_fallback)
MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "MISSING"})()

_invocations = meter.create_counter(
    semconv.METRIC_FALLBACK_INVOCATIONS, unit="{invocation}",
    description="Calls answered by a fallback instead of the primary, by error type.")


def _note(name: str, exc: BaseException) -> None:
    error_type = type(exc).__qualname__
    safely("counting a fallback", _invocations.add, 1,
           {semconv.FALLBACK_NAME: name, semconv.ERROR_TYPE: error_type})
    attrs: dict[str, Any] = {semconv.FALLBACK_NAME: name, semconv.ERROR_TYPE: error_type}
    attrs.update(exception_attributes(exc))
    add_event(semconv.EVENT_FALLBACK, attrs)


def invoke_fallback(name: str, fallback: Any, exc: BaseException, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
    """The fallback's answer: its value, or what it returns for the call's arguments."""
    _note(name, exc)
    return fallback(*args, **kwargs) if callable(fallback) else fallback


async def ainvoke_fallback(name: str, fallback: Any, exc: BaseException,
                           args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _note(name, exc)
    if not callable(fallback):
        return fallback
    result = fallback(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def with_fallback(fallback: Any, *, on: Any = Exception, name: str | None = None
                  ) -> Callable[[F], F]:
    """Answer with ``fallback`` when the decorated function raises one of ``on``.

    ``fallback`` is a value, or a callable that gets the call's arguments (an
    ``async`` fallback is awaited for an ``async def``). ``on`` is an exception
    class, a tuple of them, or a predicate ``callable(exception) -> bool``.
    """
    check = Checker("with_fallback")
    types = check.exceptions("on", on)
    if name is not None and (not isinstance(name, str) or not name):
        check._bad("name", name, "a non-empty str or None")
    check.done()

    def matches(exc: BaseException) -> bool:
        return isinstance(exc, types) if types is not None else bool(on(exc))

    def decorate(fn: F) -> F:
        fb_name = name or qualname(fn)
        target = unwrap_ours(fn)
        if inspect.iscoroutinefunction(fn):
            async def acore(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await target(*args, **kwargs)
                except Exception as exc:
                    if not matches(exc):
                        raise
                    return await ainvoke_fallback(fb_name, fallback, exc, args, kwargs)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if no_active_span():
                    return await await_in_own_span(fb_name, acore, *args, **kwargs)
                return await acore(*args, **kwargs)

            mark_ours(async_wrapper, acore)
            return async_wrapper  # type: ignore[return-value]

        def core(*args: Any, **kwargs: Any) -> Any:
            try:
                return target(*args, **kwargs)
            except Exception as exc:
                if not matches(exc):
                    raise
                return invoke_fallback(fb_name, fallback, exc, args, kwargs)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if no_active_span():
                return call_in_own_span(fb_name, core, *args, **kwargs)
            return core(*args, **kwargs)

        mark_ours(wrapper, core)
        return wrapper  # type: ignore[return-value]

    return decorate
