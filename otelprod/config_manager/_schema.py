"""Declared configuration keys: type, default, range, choices, required.

Validation collects every problem before raising, so a bad deployment is
fixed in one round trip instead of one error per restart. Each problem names
the key, where it came from, the bad value and its type, and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otelprod.errors import ConfigurationError

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


class Missing:
    """The type of :data:`MISSING`: no value was given (``None`` may be a value)."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = Missing()


class ConfigValueError(ValueError):
    """One bad value; :class:`ConfigurationError` carries several of them."""


def describe(value: Any) -> str:
    """``str '8x'``: the type and the value, as problems report them."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


def convert(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` (str, int, float or bool), parsing strings.

    Raises :class:`ConfigValueError` with the expectation and the value.
    """
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        raise ConfigValueError(f"expected a boolean (true/false, yes/no, on/off, 1/0), "
                               f"got {describe(value)}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip(), 10)
            except ValueError:
                pass
        raise ConfigValueError(f"expected an integer, got {describe(value)}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                raise ConfigValueError(f"expected a number, got {describe(value)}") from None
        else:
            raise ConfigValueError(f"expected a number, got {describe(value)}")
        if math.isnan(result):
            raise ConfigValueError(f"expected a number, got {describe(value)}")
        return result
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigValueError(f"expected a string, got {describe(value)}")
    raise TypeError(f"unsupported configuration type {kind!r}")


@dataclass(frozen=True)
class ConfigKey:
    """One declared configuration key.

    ``min``/``max`` are inclusive (``exclusive_min`` makes the lower bound
    strict, for timeouts that must be positive); ``choices`` is checked after
    ``normalize`` (e.g. ``str.upper`` for log levels), ``pattern`` (a regex
    the whole text must match) too. A ``secret`` key's
    value is registered with the scrubber and never echoed in problems.
    """

    name: str
    type: type = str
    default: Any = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None
    normalize: Callable[[Any], Any] | None = None
    description: str = ""
    secret: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"config key name: expected a non-empty str, got "
                             f"{describe(self.name)}")
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"config key {self.name!r}: type must be str, int, float or bool, "
                            f"got {self.type!r}")
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))

    def check(self, value: Any) -> Any:
        """``value`` converted and checked; raises :class:`ConfigValueError`."""
        result = convert(value, self.type)
        if self.normalize is not None:
            result = self.normalize(result)
        if self.choices is not None and result not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ConfigValueError(f"must be one of {allowed}, got {self._show(value)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, str(result)):
            raise ConfigValueError(f"must match {self.pattern}, got {self._show(value)}")
        if self.type in (int, float):
            low_ok = self.min is None or (result > self.min if self.exclusive_min
                                          else result >= self.min)
            high_ok = self.max is None or result <= self.max
            if not (low_ok and high_ok):
                raise ConfigValueError(f"must be {self._range()}, got {self._show(value)}")
        return result

    def _show(self, value: Any) -> str:
        return f"{type(value).__name__} (hidden)" if self.secret else describe(value)

    def _range(self) -> str:
        low = None if self.min is None else f"{'>' if self.exclusive_min else '>='} {self.min}"
        high = None if self.max is None else f"<= {self.max}"
        if low and high and not self.exclusive_min:
            return f"within {self.min}..{self.max}"
        return " and ".join(p for p in (low, high) if p)


class ConfigSchema:
    """A set of declared keys, validated together."""

    def __init__(self, keys: Iterable[ConfigKey] = ()) -> None:
        self._keys: dict[str, ConfigKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: ConfigKey) -> ConfigKey:
        if not isinstance(key, ConfigKey):
            raise TypeError(f"key: expected a ConfigKey, got {describe(key)}")
        self._keys[key.name] = key
        return key

    def get(self, name: str) -> ConfigKey | None:
        return self._keys.get(name)

    def __iter__(self) -> Any:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def problems(self, values: Mapping[str, Any], *,
                 where: Callable[[str], str] | None = None) -> tuple[dict[str, Any], list[str]]:
        """Checked values for every key, and every problem found (never raises)."""
        out: dict[str, Any] = {}
        problems: list[str] = []
        for key in self._keys.values():
            label = key.name if where is None else where(key.name)
            raw = values.get(key.name, MISSING)
            if raw is MISSING or raw is None:
                if key.required:
                    problems.append(f"{label}: required, but not set")
                out[key.name] = key.default
                continue
            try:
                out[key.name] = key.check(raw)
            except ConfigValueError as exc:
                problems.append(f"{label}: {exc}")
        return out, problems

    def validate(self, values: Mapping[str, Any], *,
                 where: Callable[[str], str] | None = None) -> dict[str, Any]:
        """Checked values for every key; one :class:`ConfigurationError` lists all problems."""
        out, problems = self.problems(values, where=where)
        if problems:
            raise ConfigurationError(problems)
        return out
