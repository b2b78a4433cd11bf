"""The config's flags as an OpenFeature provider, and the evaluation-event hook.

Code that evaluates flags through an OpenFeature client can later switch to
a flag service by swapping the provider; the ``feature_flag.evaluation`` span
events keep coming, since they are emitted by a hook, not by the provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagResolutionDetails, Reason
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.provider import AbstractProvider
from openfeature.provider.metadata import Metadata

from otelprod import semconv
from otelprod._telemetry import add_event
from otelprod.config_manager._flags import PROVIDER_NAME
from otelprod.config_manager._flags import Reason as FlagReason
from otelprod.config_manager._manager import ConfigManager, get_config

_REASONS = {
    FlagReason.STATIC: Reason.STATIC, FlagReason.SPLIT: Reason.SPLIT,
    FlagReason.TARGETING_MATCH: Reason.TARGETING_MATCH, FlagReason.DISABLED: Reason.DISABLED,
    FlagReason.ERROR: Reason.ERROR,
}


class ConfigFlagProvider(AbstractProvider):
    """Resolves boolean flags from a :class:`ConfigManager` (the global one by default).

    The evaluation context's ``targeting_key`` is the rollout key. Only
    boolean flags exist here: other types resolve to the default with
    ``TYPE_MISMATCH``.
    """

    def __init__(self, config: ConfigManager | None = None) -> None:
        if config is not None and not isinstance(config, ConfigManager):
            raise TypeError(f"config: expected a ConfigManager or None, got "
                            f"{type(config).__name__} {config!r}")
        super().__init__()
        self._config = config

    @property
    def config(self) -> ConfigManager:
        if self._config is not None:
            return self._config
        return get_config()

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: EvaluationContext | None = None
                                ) -> FlagResolutionDetails[bool]:
        key = evaluation_context.targeting_key if evaluation_context else None
        result = self.config.evaluate_flag(flag_key, key, record=False)
        if result.error_type is not None:
            return FlagResolutionDetails(default_value, ErrorCode.FLAG_NOT_FOUND,
                                         f"no feature flag named {flag_key!r}", Reason.ERROR)
        return FlagResolutionDetails(result.value, reason=_REASONS[result.reason],
                                     variant=result.variant)

    def _mismatch(self, flag_key: str, default: Any) -> FlagResolutionDetails[Any]:
        return FlagResolutionDetails(default, ErrorCode.TYPE_MISMATCH,
                                     f"feature flag {flag_key!r} is boolean", Reason.ERROR)

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: EvaluationContext | None = None
                               ) -> FlagResolutionDetails[str]:
        return self._mismatch(flag_key, default_value)

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: EvaluationContext | None = None
                                ) -> FlagResolutionDetails[int]:
        return self._mismatch(flag_key, default_value)

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: EvaluationContext | None = None
                              ) -> FlagResolutionDetails[float]:
        return self._mismatch(flag_key, default_value)

    def resolve_object_details(self, flag_key: str,
                               default_value: Sequence[Any] | Mapping[str, Any],
                               evaluation_context: EvaluationContext | None = None
                               ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        return self._mismatch(flag_key, default_value)


class FeatureFlagEventHook(Hook):
    """Adds a ``feature_flag.evaluation`` event to the current span after each evaluation.

    Works with any provider, so the events survive a switch to a flag service.
    """

    def finally_after(self, hook_context: HookContext, details: FlagEvaluationDetails[Any],
                      hints: HookHints) -> None:
        provider = hook_context.provider_metadata
        attributes: dict[str, Any] = {
            semconv.FEATURE_FLAG_KEY: details.flag_key,
            semconv.FEATURE_FLAG_PROVIDER_NAME: provider.name if provider else "unknown",
            semconv.FEATURE_FLAG_RESULT_REASON: str(details.reason or Reason.UNKNOWN).lower(),
        }
        if details.variant:
            attributes[semconv.FEATURE_FLAG_RESULT_VARIANT] = details.variant
        if isinstance(details.value, (bool, int, float, str)):
            attributes[semconv.FEATURE_FLAG_RESULT_VALUE] = details.value
        targeting_key = hook_context.evaluation_context.targeting_key
        if targeting_key:
            attributes[semconv.FEATURE_FLAG_CONTEXT_ID] = targeting_key
        if details.error_code:
            attributes[semconv.ERROR_TYPE] = str(details.error_code).lower()
        add_event(semconv.EVENT_FEATURE_FLAG_EVALUATION, attributes)


def use_openfeature(config: ConfigManager | None = None, *, domain: str | None = None,
                    events: bool = True) -> ConfigFlagProvider:
    """Install the config's flags as the OpenFeature provider (and the event hook)."""
    provider = ConfigFlagProvider(config)
    api.set_provider(provider, domain)
    if events and not any(isinstance(h, FeatureFlagEventHook) for h in api.get_hooks()):
        api.add_hooks([FeatureFlagEventHook()])
    return provider
