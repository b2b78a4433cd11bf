"""Feature flags with stable, cross-process percentage rollouts.

A flag is on for a key when ``sha256(flag name, key)`` falls below the
rollout percentage: the same key gets the same answer in every process and
after every restart, and raising the percentage only ever adds keys. Each
evaluation adds a ``feature_flag.evaluation`` event to the current span, with
the OpenTelemetry feature-flag semantic-convention attributes.

Without a key (``is_feature_enabled(name)``) the empty string is the key: a
partial rollout is then one deterministic answer per flag, the same in every
process. Pass a user or request id to split traffic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from otelprod import semconv
from otelprod._telemetry import add_event
from otelprod.config_manager._environment import Environment
from otelprod.config_manager._schema import ConfigValueError, describe
from otelprod.errors import ConfigurationError

PROVIDER_NAME = "otelprod"


class Reason:
    """``feature_flag.result.reason`` values (semantic conventions)."""

    STATIC = "static"
    SPLIT = "split"
    TARGETING_MATCH = "targeting_match"
    DISABLED = "disabled"
    ERROR = "error"


@dataclass(frozen=True)
class FeatureFlag:
    """A boolean flag: on/off, a rollout percentage and the environments it may run in.

    ``allowed_environments`` empty or None means every environment. Invalid
    fields raise one :class:`ConfigurationError` naming each of them.
    """

    name: str
    enabled: bool = True
    rollout_percentage: float = 100.0
    allowed_environments: tuple[Environment, ...] | list[Environment] | None = None
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        problems = flag_problems(self.name, self.enabled, self.rollout_percentage,
                                 self.allowed_environments)
        if problems:
            raise ConfigurationError(problems)
        object.__setattr__(self, "rollout_percentage", float(self.rollout_percentage))
        envs = self.allowed_environments
        object.__setattr__(self, "allowed_environments",
                           tuple(Environment.parse(e) for e in envs) if envs else None)

    @classmethod
    def from_mapping(cls, name: str, spec: Any) -> FeatureFlag:
        """A flag from a config file's table: ``{enabled, rollout_percentage, ...}``."""
        if isinstance(spec, bool):
            return cls(name, enabled=spec)
        if not isinstance(spec, dict):
            raise ConfigurationError(
                f"feature_flags.{name}: expected a table or a boolean, got {describe(spec)}")
        known = {"enabled", "rollout_percentage", "allowed_environments", "description"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigurationError([f"feature_flags.{name}.{k}: unknown field (known: "
                                      f"{', '.join(sorted(known))})" for k in unknown])
        envs = spec.get("allowed_environments")
        if isinstance(envs, str):
            envs = [e for e in envs.replace(",", " ").split() if e]
        return cls(name, enabled=spec.get("enabled", True),
                   rollout_percentage=spec.get("rollout_percentage", 100.0),
                   allowed_environments=envs, description=spec.get("description", ""))


def flag_problems(name: Any, enabled: Any, rollout: Any, envs: Any) -> list[str]:
    """Every problem with a flag's fields, each naming the field and the value."""
    if not isinstance(name, str) or not name.strip():
        return [f"feature flag name: expected a non-empty string, got {describe(name)}"]
    where = f"feature_flags.{name}"
    problems = []
    if not isinstance(enabled, bool):
        problems.append(f"{where}.enabled: expected a boolean, got {describe(enabled)}")
    if isinstance(rollout, bool) or not isinstance(rollout, (int, float)) \
            or not 0 <= rollout <= 100:
        problems.append(f"{where}.rollout_percentage: must be a number within 0..100, "
                        f"got {describe(rollout)}")
    if envs:
        if isinstance(envs, (str, Environment)) or not isinstance(envs, Iterable):
            problems.append(f"{where}.allowed_environments: expected a list of environments, "
                            f"got {describe(envs)}")
        else:
            for env in envs:
                try:
                    Environment.parse(env)
                except ConfigValueError as exc:
                    problems.append(f"{where}.allowed_environments: {exc}")
    return problems


def bucket(name: str, key: str) -> float:
    """Where ``key`` falls for flag ``name``, in [0, 100): stable across processes."""
    for label, value in (("name", name), ("key", key)):
        if not isinstance(value, str):
            raise TypeError(f"{label}: expected a str, got {describe(value)}")
    digest = hashlib.sha256(f"{name}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@dataclass(frozen=True)
class FlagEvaluation:
    """The outcome of one evaluation, as the semantic conventions describe it."""

    flag: str
    value: bool
    reason: str
    key: str | None = None
    error_type: str | None = None

    @property
    def variant(self) -> str:
        return "on" if self.value else "off"


def evaluate(flag: FeatureFlag | None, name: str, environment: Environment,
             key: str | None) -> FlagEvaluation:
    """Decide ``flag`` for ``key`` in ``environment`` (an unknown flag is off)."""
    if flag is None:
        return FlagEvaluation(name, False, Reason.ERROR, key, "flag_not_found")
    if not flag.enabled:
        return FlagEvaluation(name, False, Reason.DISABLED, key)
    if flag.allowed_environments and environment not in flag.allowed_environments:
        return FlagEvaluation(name, False, Reason.TARGETING_MATCH, key)
    rollout = flag.rollout_percentage
    if rollout >= 100 or rollout <= 0:
        return FlagEvaluation(name, rollout >= 100, Reason.STATIC, key)
    on = bucket(name, "" if key is None else str(key)) < rollout
    return FlagEvaluation(name, on, Reason.SPLIT, key)


def record_evaluation(result: FlagEvaluation, provider: str = PROVIDER_NAME) -> None:
    """Add the ``feature_flag.evaluation`` event to the current span (never raises)."""
    attributes: dict[str, Any] = {
        semconv.FEATURE_FLAG_KEY: result.flag,
        semconv.FEATURE_FLAG_PROVIDER_NAME: provider,
        semconv.FEATURE_FLAG_RESULT_VARIANT: result.variant,
        semconv.FEATURE_FLAG_RESULT_VALUE: result.value,
        semconv.FEATURE_FLAG_RESULT_REASON: result.reason,
    }
    if result.key is not None:
        attributes[semconv.FEATURE_FLAG_CONTEXT_ID] = str(result.key)
    if result.error_type is not None:
        attributes[semconv.ERROR_TYPE] = result.error_type
    add_event(semconv.EVENT_FEATURE_FLAG_EVALUATION, attributes)
