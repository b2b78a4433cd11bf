"""Test overrides: retries that do not wait, breakers forced open or closed.

The public hook behind ``otelprod.testing.set_testing`` (stamina's
``set_testing`` is the model). While overrides are set:

* retries make their attempts without waiting between them (``retry_wait=False``),
  and make at most ``retry_attempts`` of them;
* a breaker named in ``breakers`` (or every breaker, under ``"*"``) is forced:
  ``"open"`` rejects every call with ``CircuitBreakerOpenError`` (the fallback
  answers, when there is one), ``"closed"`` admits every call and no failure
  opens it. Its real state is left alone and comes back when the override goes.

Nothing is read on a call's fast path: a retry consults the overrides only
after a failure, and forcing a breaker takes it off its express lane.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from otelprod.error_handling._validate import Checker

OPEN, CLOSED = "open", "closed"
ALL_BREAKERS = "*"


@dataclass(frozen=True)
class TestingOverrides:
    """What tests change about retries and breakers; see the module docstring."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    retry_wait: bool = True
    retry_attempts: int | None = None
    breakers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check = Checker("TestingOverrides")
        check.boolean("retry_wait", self.retry_wait)
        if self.retry_attempts is not None:
            check.integer("retry_attempts", self.retry_attempts, 1)
        if not isinstance(self.breakers, Mapping):
            check._bad("breakers", self.breakers,
                       'a mapping of breaker name (or "*") to "open" or "closed"')
        else:
            for name, state in self.breakers.items():
                if not isinstance(name, str) or not name or state not in (OPEN, CLOSED):
                    check._bad(f"breakers[{name!r}]", state,
                               '"open" or "closed", under a non-empty breaker name or "*"')
        check.done()
        object.__setattr__(self, "breakers", MappingProxyType(dict(self.breakers)))

    def breaker_state(self, name: str) -> str | None:
        """The state the breaker ``name`` is forced into, or None."""
        return self.breakers.get(name) or self.breakers.get(ALL_BREAKERS)


#: the overrides in force (None: none); read by the retry and breaker code
current: TestingOverrides | None = None
_lock = threading.Lock()
_listeners: list[Callable[[TestingOverrides | None], Any]] = []


def set_testing_overrides(overrides: TestingOverrides | None) -> TestingOverrides | None:
    """Put ``overrides`` in force for the whole process (None: none); returns the ones before."""
    global current
    if overrides is not None and not isinstance(overrides, TestingOverrides):
        raise TypeError("set_testing_overrides: overrides must be a TestingOverrides or None, "
                        f"got {type(overrides).__name__}")
    with _lock:
        previous, current = current, overrides
        for listener in list(_listeners):
            listener(overrides)
    return previous


def testing_overrides() -> TestingOverrides | None:
    """The overrides in force, or None."""
    return current


def on_change(listener: Callable[[TestingOverrides | None], Any]) -> None:
    """Call ``listener(overrides)`` whenever the overrides change (the breakers use it)."""
    _listeners.append(listener)
