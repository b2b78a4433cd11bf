"""The configuration manager: values from env, files and code; typed reads; flags."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from otelprod._scrub import scrubber
from otelprod.config_manager._environment import Environment
from otelprod.config_manager._files import ENVIRONMENTS_TABLE, FLAGS_TABLE, flatten, read_file
from otelprod.config_manager._flags import FeatureFlag, FlagEvaluation, evaluate, record_evaluation
from otelprod.config_manager._schema import (
    MISSING,
    ConfigKey,
    ConfigSchema,
    ConfigValueError,
    convert,
    describe,
)
from otelprod.errors import ConfigurationError

T = TypeVar("T")


class SecretInConfigWarning(UserWarning):
    """A key that looks like a secret was loaded as plain configuration."""


def normalize_key(key: str) -> str:
    """Keys are case-insensitive; ``-`` is ``_``; ``__`` in a variable name is ``.``."""
    if not isinstance(key, str) or not key.strip():
        raise (TypeError if not isinstance(key, str) else ValueError)(
            f"key: expected a non-empty str, got {describe(key)}")
    return key.strip().lower().replace("__", ".").replace("-", "_")


class ConfigManager:
    """Typed configuration for one environment, with feature flags.

    Later loads override earlier ones. Typed getters convert on read and
    raise :class:`ConfigurationError` naming the key, its source and the bad
    value, rather than silently falling back to the default.
    """

    def __init__(self, environment: Environment | str = Environment.DEVELOPMENT) -> None:
        self._lock = threading.RLock()
        self.reset(environment)

    def reset(self, environment: Environment | str = Environment.DEVELOPMENT) -> None:
        """Forget every value, declared key and flag, and switch to ``environment``."""
        try:
            env = Environment.parse(environment)
        except ConfigValueError as exc:
            raise ConfigurationError(f"environment: {exc}") from None
        with self._lock:
            self.environment = env
            self._values: dict[str, Any] = {}
            self._sources: dict[str, str] = {}
            self._schema = ConfigSchema()
            self._flags: dict[str, FeatureFlag] = {}

    # --- loading ---------------------------------------------------------------------
    def set(self, key: str, value: Any, *, source: str = "code") -> None:
        name = normalize_key(key)
        if scrubber.is_sensitive_key(name):
            if isinstance(value, str):
                scrubber.register_secret(value)
            warnings.warn(SecretInConfigWarning(
                f"configuration key {name!r} (from {source}) looks like a secret: load it "
                "with otelprod.config_manager.get_secrets() so it stays hidden"), stacklevel=3)
        with self._lock:
            self._values[name] = value
            self._sources[name] = source

    def update(self, values: Mapping[str, Any], *, source: str = "code") -> list[str]:
        """Set every key of ``values`` (nested mappings become dotted keys)."""
        if not isinstance(values, Mapping):
            raise TypeError(f"values: expected a mapping, got {describe(values)}")
        flat = flatten(values)
        for key, value in flat.items():
            self.set(key, value, source=source)
        return sorted(normalize_key(k) for k in flat)

    def load_from_env(self, prefix: str = "",
                      environ: Mapping[str, str] | None = None) -> list[str]:
        """Load ``<prefix>KEY`` variables as ``key``; returns the keys loaded.

        ``TGE_MAX_WORKERS=8`` with prefix ``TGE_`` becomes ``max_workers``;
        ``TGE_DB__HOST`` becomes ``db.host``. Values stay strings until a
        typed getter or :meth:`validate` converts them.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix: expected a str, got {describe(prefix)}")
        env = os.environ if environ is None else environ
        loaded = []
        for var, value in env.items():
            if var.startswith(prefix) and len(var) > len(prefix):
                key = normalize_key(var[len(prefix):])
                self.set(key, value, source=f"env:{var}")
                loaded.append(key)
        return sorted(loaded)

    def load_from_file(self, path: str | os.PathLike[str]) -> list[str]:
        """Load a TOML or YAML file; returns the keys loaded.

        The current environment's table under ``environments`` is applied
        over the rest, and ``feature_flags`` entries are registered. Every
        problem in the file is reported in one :class:`ConfigurationError`
        (the file's valid values and flags are loaded nonetheless).
        """
        keys, problems = self.load_file_collecting(path)
        if problems:
            raise ConfigurationError(problems)
        return keys

    def load_file_collecting(self, path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
        """Like :meth:`load_from_file`, but returns the problems instead of raising."""
        try:
            data = read_file(path)
        except ConfigurationError as exc:
            return [], list(exc.problems)
        values, flags, problems = self._parse(data, str(path))
        for flag in flags:
            self.register_feature_flag(flag)
        return self.update(values, source=f"file:{path}"), problems

    def _parse(self, data: dict[str, Any], origin: str
               ) -> tuple[dict[str, Any], list[FeatureFlag], list[str]]:
        problems: list[str] = []
        data = dict(data)
        envs = data.pop(ENVIRONMENTS_TABLE, {}) or {}
        flag_specs = dict(data.pop(FLAGS_TABLE, {}) or {})
        if not isinstance(envs, Mapping):
            problems.append(f"{origin}: {ENVIRONMENTS_TABLE}: expected a table, "
                            f"got {type(envs).__name__}")
            envs = {}
        for name in envs:
            try:
                Environment.parse(name)
            except ConfigValueError as exc:
                problems.append(f"{origin}: {ENVIRONMENTS_TABLE}.{name}: {exc}")
        overlay: dict[str, Any] = {}
        for name, table in envs.items():
            try:
                if Environment.parse(name) == self.environment and isinstance(table, Mapping):
                    overlay = dict(table)
            except ConfigValueError:
                continue
        flag_specs.update(overlay.pop(FLAGS_TABLE, {}) or {})
        values = flatten(data)
        values.update(flatten(overlay))
        flags = []
        for name, spec in flag_specs.items():
            try:
                flags.append(FeatureFlag.from_mapping(str(name), spec))
            except ConfigurationError as exc:
                problems.extend(f"{origin}: {p}" for p in exc.problems)
        return values, flags, problems

    # --- reading ---------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return normalize_key(key) in self._values

    def source_of(self, key: str) -> str | None:
        """Where ``key``'s value came from: ``env:VAR``, ``file:PATH`` or ``code``."""
        return self._sources.get(normalize_key(key))

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value (strings from the environment stay strings)."""
        name = normalize_key(key)
        value = self._values.get(name, MISSING)
        if value is MISSING:
            declared = self._schema.get(name)
            return declared.default if declared is not None and default is None else default
        return value

    def _typed(self, key: str, kind: type, default: Any) -> Any:
        name = normalize_key(key)
        declared = self._schema.get(name)
        value = self._values.get(name, MISSING)
        if value is MISSING or value is None:
            if default is None and declared is not None:
                return declared.default
            return default
        try:
            if declared is not None:
                checked = declared.check(value)
                return convert(checked, kind) if declared.type is not kind else checked
            return convert(value, kind)
        except ConfigValueError as exc:
            raise ConfigurationError(f"{self._label(name)}: {exc}") from None

    def get_string(self, key: str, default: T = None) -> str | T:  # type: ignore[assignment]
        return self._typed(key, str, default)  # type: ignore[no-any-return]

    def get_int(self, key: str, default: T = None) -> int | T:  # type: ignore[assignment]
        return self._typed(key, int, default)  # type: ignore[no-any-return]

    def get_float(self, key: str, default: T = None) -> float | T:  # type: ignore[assignment]
        return self._typed(key, float, default)  # type: ignore[no-any-return]

    def get_bool(self, key: str, default: T = None) -> bool | T:  # type: ignore[assignment]
        return self._typed(key, bool, default)  # type: ignore[no-any-return]

    def get_list(self, key: str, default: list[str] | None = None,
                 separator: str = ",") -> list[str] | None:
        """A list from a file's array or a ``a,b,c`` string."""
        if not isinstance(separator, str) or not separator:
            raise ValueError(f"separator: expected a non-empty str, got {describe(separator)}")
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [part.strip() for part in str(value).split(separator) if part.strip()]

    def _label(self, name: str) -> str:
        source = self._sources.get(name)
        return f"{name} (from {source})" if source else name

    # --- declared keys -------------------------------------------------------------------
    def declare(self, name: str, type: type = str, *, default: Any = None,
                required: bool = False, min: float | None = None,
                max: float | None = None, choices: Iterable[Any] | None = None,
                description: str = "", secret: bool = False) -> ConfigKey:
        """Declare a key's type, default, range or choices, and whether it is required."""
        key = ConfigKey(normalize_key(name), type, default, required, min, max,
                        choices=tuple(choices) if choices is not None else None,
                        description=description, secret=secret)
        return self.declare_key(key)

    def declare_key(self, key: ConfigKey) -> ConfigKey:
        if key.name != normalize_key(key.name):
            key = ConfigKey(**{**key.__dict__, "name": normalize_key(key.name)})
        with self._lock:
            return self._schema.add(key)

    def validate(self) -> dict[str, Any]:
        """Check every declared key; one :class:`ConfigurationError` lists all problems.

        Returns the declared keys' checked values (defaults filled in).
        """
        values, problems = self.problems()
        if problems:
            raise ConfigurationError(problems)
        return values

    validate_all = validate

    def problems(self) -> tuple[dict[str, Any], list[str]]:
        with self._lock:
            values = dict(self._values)
        for key in self._schema:
            if key.secret and isinstance(values.get(key.name), str):
                scrubber.register_secret(values[key.name])
        return self._schema.problems(values, where=self._label)

    # --- feature flags -------------------------------------------------------------------
    def register_feature_flag(self, flag: FeatureFlag) -> FeatureFlag:
        if not isinstance(flag, FeatureFlag):
            raise TypeError(f"register_feature_flag: expected a FeatureFlag, "
                            f"got {type(flag).__name__}")
        with self._lock:
            self._flags[flag.name] = flag
        return flag

    def get_feature_flag(self, name: str) -> FeatureFlag | None:
        return self._flags.get(name)

    def get_feature_flags(self) -> dict[str, FeatureFlag]:
        return dict(self._flags)

    def evaluate_flag(self, name: str, key: Any = None, *, record: bool = True
                      ) -> FlagEvaluation:
        """Decide flag ``name`` for ``key``; records the span event unless told not to."""
        if not isinstance(name, str) or not name.strip():
            raise (TypeError if not isinstance(name, str) else ValueError)(
                f"feature flag name: expected a non-empty str, got {describe(name)}")
        result = evaluate(self._flags.get(name), name, self.environment,
                          None if key is None else str(key))
        if record:
            record_evaluation(result)
        return result

    def is_feature_enabled(self, name: str, key: Any = None) -> bool:
        """Whether flag ``name`` is on (for ``key``, e.g. a user id). Unknown flags are off.

        Without ``key`` a partial rollout gives one stable answer per flag,
        the same in every process (the key is then the empty string).
        """
        return self.evaluate_flag(name, key).value

    # --- reports -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every value, scrubbed: sensitive keys and registered secrets redacted."""
        with self._lock:
            values = dict(self._values)
        return scrubber.scrub_mapping(values)

    def status_report(self) -> dict[str, Any]:
        """Environment, flags and key counts for the status report; never a secret."""
        from otelprod.config_manager._secrets import get_secrets

        flags = {
            name: {"enabled": f.enabled, "rollout_percentage": f.rollout_percentage,
                   "allowed_environments": [e.value for e in f.allowed_environments or ()],
                   "active_here": f.enabled and (not f.allowed_environments
                                                 or self.environment in f.allowed_environments)}
            for name, f in sorted(self._flags.items())
        }
        return {
            "environment": self.environment.value,
            "keys": len(self._values),
            "declared_keys": len(self._schema),
            "feature_flags": flags,
            "secret_count": len(get_secrets()),
        }

    def __repr__(self) -> str:
        return (f"<ConfigManager environment={self.environment.value} keys={len(self._values)} "
                f"flags={len(self._flags)}>")


#: The process-global configuration.
config = ConfigManager()


def get_config() -> ConfigManager:
    """The process-global configuration manager."""
    return config
