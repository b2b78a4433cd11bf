"""Exceptions shared across otelprod's modules."""

from __future__ import annotations

from collections.abc import Iterable


class OtelprodError(Exception):
    """Base class of every exception otelprod raises on purpose."""


class ConfigurationError(OtelprodError, ValueError):
    """One or more configuration problems, all reported together.

    ``problems`` lists each one, naming the key and the bad value.
    """

    def __init__(self, problems: Iterable[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(
            "invalid configuration:\n  - " + "\n  - ".join(self.problems)
            if len(self.problems) != 1
            else f"invalid configuration: {self.problems[0]}"
        )
