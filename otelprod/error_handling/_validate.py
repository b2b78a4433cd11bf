"""Config checks that name the key, the value's type and the allowed range."""

from __future__ import annotations

import math
from typing import Any

from otelprod.errors import ConfigurationError


class Checker:
    """Collects every problem of one config object, then raises them together."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.problems: list[str] = []

    def _bad(self, key: str, value: Any, allowed: str) -> None:
        self.problems.append(
            f"{self.owner}.{key} must be {allowed}, got {value!r} ({type(value).__name__})"
        )

    def integer(self, key: str, value: Any, minimum: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self._bad(key, value, f"an int >= {minimum}")

    def number(self, key: str, value: Any, minimum: float, *, exclusive: bool = False) -> None:
        ok = (not isinstance(value, bool) and isinstance(value, (int, float))
              and math.isfinite(value) and (value > minimum if exclusive else value >= minimum))
        if not ok:
            self._bad(key, value, f"a finite number {'>' if exclusive else '>='} {minimum}")

    def boolean(self, key: str, value: Any) -> None:
        if not isinstance(value, bool):
            self._bad(key, value, "True or False")

    def exceptions(self, key: str, value: Any) -> tuple[type[BaseException], ...] | None:
        """An exception class, a tuple of them, or a predicate; normalised to a tuple."""
        if isinstance(value, type) and issubclass(value, BaseException):
            return (value,)
        if isinstance(value, tuple) and value and all(
                isinstance(v, type) and issubclass(v, BaseException) for v in value):
            return value
        if callable(value) and not isinstance(value, type):
            return None
        self._bad(key, value, "an exception class, a non-empty tuple of them, "
                              "or a predicate callable(exception) -> bool")
        return None

    def done(self) -> None:
        if self.problems:
            raise ConfigurationError(self.problems)
