"""Deployment environments."""

from __future__ import annotations

from enum import Enum
from typing import Any

from otelprod.config_manager._schema import ConfigValueError, describe

_ALIASES = {"dev": "development", "develop": "development", "local": "development",
            "test": "testing", "stage": "staging", "prod": "production"}


class Environment(str, Enum):
    """Where the service runs. The value is ``deployment.environment.name``."""

    DEVELOPMENT = "development"
    TESTING = "testing"
    STAGING = "staging"
    PRODUCTION = "production"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Any) -> Environment:
        """An Environment from itself, its value or a common alias (``prod``).

        Raises :class:`ConfigValueError` naming the allowed values otherwise.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            text = _ALIASES.get(text, text)
            for member in cls:
                if member.value == text:
                    return member
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ConfigValueError(f"must be one of {allowed}, got {describe(value)}")


#: the values ``OTELPROD_ENVIRONMENT`` and ``Settings.environment`` accept
ENVIRONMENT_NAMES: tuple[str, ...] = tuple(m.value for m in Environment)


def normalize_environment(value: Any) -> Any:
    """For ``ConfigKey.normalize``: aliases to canonical names, unknowns unchanged."""
    try:
        return Environment.parse(value).value
    except ConfigValueError:
        return value
