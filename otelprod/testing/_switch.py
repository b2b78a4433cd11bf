"""``set_testing``: retries that do not wait, breakers forced open or closed.

Modelled on stamina's ``set_testing``: one process-wide switch, usable as a
call or as a context manager that puts back what was in force before. It goes
through ``otelprod.error_handling``'s public hook (``set_testing_overrides``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from otelprod.error_handling import TestingOverrides, set_testing_overrides, testing_overrides


class _Restore:
    """What ``set_testing`` returns: ``with`` it to restore the previous state on exit."""

    def __init__(self, previous: TestingOverrides | None) -> None:
        self._previous = previous

    def __enter__(self) -> _Restore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        set_testing_overrides(self._previous)


def set_testing(testing: bool = True, *, attempts: int | None = None,
                breakers: Mapping[str, str] | None = None) -> _Restore:
    """Switch testing mode on (``testing=True``) or off, for the whole process.

    On: ``with_retry`` makes its attempts without waiting between them, at most
    ``attempts`` of them (None: as configured; 1: no retries); ``breakers`` forces
    breakers by name (``"*"``: every breaker) to ``"open"`` (every call rejected with
    ``CircuitBreakerOpenError``, or answered by the fallback) or ``"closed"`` (every
    call admitted, no failure opens it). Off: everything as configured again.

    Usable as a context manager, which restores what was in force before::

        with set_testing(True, breakers={"payments": "open"}):
            assert checkout(order).status == "payment deferred"
    """
    if not isinstance(testing, bool):
        raise TypeError(f"set_testing: testing must be True or False, got {testing!r}")
    if not testing:
        if attempts is not None or breakers:
            raise ValueError("set_testing(False) takes no attempts or breakers: "
                             "they apply only while testing")
        return _Restore(set_testing_overrides(None))
    overrides = TestingOverrides(retry_wait=False, retry_attempts=attempts,
                                 breakers={} if breakers is None else breakers)
    return _Restore(set_testing_overrides(overrides))


def is_testing() -> bool:
    """Whether ``set_testing(True)`` is in force."""
    return testing_overrides() is not None
