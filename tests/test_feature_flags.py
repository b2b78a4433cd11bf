"""Feature flags: stable rollouts, environments, span events, the OpenFeature provider."""

from __future__ import annotations

import json

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.config_manager import (
    ConfigFlagProvider,
    ConfigManager,
    Environment,
    FeatureFlag,
    FeatureFlagEventHook,
    bucket,
    use_openfeature,
)
from tests.conftest import Telemetry, run_python

KEYS = [f"user-{i}" for i in range(10_000)]


def _config(env: Environment = Environment.PRODUCTION, **flag: object) -> ConfigManager:
    config = ConfigManager(env)
    config.register_feature_flag(FeatureFlag("rollout", **flag))  # type: ignore[arg-type]
    return config


def test_half_rollout_is_half_of_ten_thousand_keys_within_two_percent() -> None:
    config = _config(rollout_percentage=50)
    on = sum(config.evaluate_flag("rollout", key, record=False).value for key in KEYS)
    assert 4800 <= on <= 5200, on


@pytest.mark.parametrize("percentage", [5, 25, 90])
def test_other_rollouts_are_proportional(percentage: int) -> None:
    config = _config(rollout_percentage=percentage)
    on = sum(config.evaluate_flag("rollout", key, record=False).value for key in KEYS)
    assert abs(on - percentage * 100) <= 200, on


def test_raising_the_percentage_only_adds_keys() -> None:
    low = {k for k in KEYS if bucket("rollout", k) < 20}
    high = {k for k in KEYS if bucket("rollout", k) < 40}
    assert low < high


def test_flags_split_independently() -> None:
    a = {k for k in KEYS if bucket("flag-a", k) < 50}
    b = {k for k in KEYS if bucket("flag-b", k) < 50}
    overlap = len(a & b)
    assert 2300 <= overlap <= 2700, overlap  # independent halves overlap by about a quarter


def test_a_keys_answer_is_the_same_in_another_process() -> None:
    config = _config(rollout_percentage=50)
    here = {k: config.is_feature_enabled("rollout", key=k) for k in KEYS[:500]}
    result = run_python("""
        import json
        from otelprod.config_manager import ConfigManager, Environment, FeatureFlag
        config = ConfigManager(Environment.PRODUCTION)
        config.register_feature_flag(FeatureFlag("rollout", rollout_percentage=50))
        keys = [f"user-{i}" for i in range(500)]
        print(json.dumps({k: config.is_feature_enabled("rollout", key=k) for k in keys}))
        print(json.dumps(config.is_feature_enabled("rollout")))
    """, env=None)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[0]) == here
    assert json.loads(lines[1]) == config.is_feature_enabled("rollout")
    assert 150 < sum(here.values()) < 350


def test_without_a_key_the_answer_is_the_empty_keys_answer() -> None:
    config = _config(rollout_percentage=50)
    expected = bucket("rollout", "") < 50
    assert all(config.is_feature_enabled("rollout") is expected for _ in range(20))


@pytest.mark.parametrize(("flag", "env", "value", "reason"), [
    ({"enabled": False}, Environment.PRODUCTION, False, "disabled"),
    ({"rollout_percentage": 100}, Environment.PRODUCTION, True, "static"),
    ({"rollout_percentage": 0}, Environment.PRODUCTION, False, "static"),
    ({"allowed_environments": [Environment.STAGING]}, Environment.PRODUCTION, False,
     "targeting_match"),
    ({"allowed_environments": ["staging", "prod"]}, Environment.PRODUCTION, True, "static"),
])
def test_enabled_environments_and_reasons(flag: dict[str, object], env: Environment,
                                          value: bool, reason: str) -> None:
    result = _config(env, **flag).evaluate_flag("rollout", "k", record=False)
    assert (result.value, result.reason) == (value, reason)


def test_unknown_flags_are_off() -> None:
    result = ConfigManager().evaluate_flag("nope", record=False)
    assert (result.value, result.reason, result.error_type) == (False, "error", "flag_not_found")


def test_each_evaluation_is_a_span_event_with_semconv_attributes(telemetry: Telemetry) -> None:
    config = _config(rollout_percentage=50)
    with tracer.start_as_current_span("request"):
        on = config.is_feature_enabled("rollout", key="user-7")
        config.is_feature_enabled("missing")
    events = telemetry.events(semconv.EVENT_FEATURE_FLAG_EVALUATION)
    assert len(events) == 2
    first = dict(events[0].attributes)
    assert first == {
        semconv.FEATURE_FLAG_KEY: "rollout",
        semconv.FEATURE_FLAG_PROVIDER_NAME: "otelprod",
        semconv.FEATURE_FLAG_RESULT_VARIANT: "on" if on else "off",
        semconv.FEATURE_FLAG_RESULT_VALUE: on,
        semconv.FEATURE_FLAG_RESULT_REASON: "split",
        semconv.FEATURE_FLAG_CONTEXT_ID: "user-7",
    }
    second = dict(events[1].attributes)
    assert second[semconv.ERROR_TYPE] == "flag_not_found"
    assert second[semconv.FEATURE_FLAG_RESULT_REASON] == "error"


def test_no_span_no_event_and_no_error(telemetry: Telemetry) -> None:
    assert _config().is_feature_enabled("rollout") is True
    assert telemetry.events(semconv.EVENT_FEATURE_FLAG_EVALUATION) == []


# --- OpenFeature -------------------------------------------------------------------------
@pytest.fixture
def openfeature_clean():
    yield
    api.clear_hooks()
    api.clear_providers()


def test_openfeature_provider_resolves_the_same_as_the_config(
        telemetry: Telemetry, openfeature_clean: None) -> None:
    config = _config(rollout_percentage=50)
    use_openfeature(config)
    client = api.get_client()
    with tracer.start_as_current_span("request"):
        for key in KEYS[:50]:  # a span keeps 128 events
            details = client.get_boolean_details("rollout", False,
                                                 EvaluationContext(targeting_key=key))
            assert details.value == config.is_feature_enabled("rollout", key=key)
            assert details.reason == Reason.SPLIT
            assert details.variant == ("on" if details.value else "off")
        missing = client.get_boolean_details("missing", True)
        assert missing.value is True and missing.error_code == ErrorCode.FLAG_NOT_FOUND
        assert client.get_string_value("rollout", "dflt") == "dflt"
    events = telemetry.events(semconv.EVENT_FEATURE_FLAG_EVALUATION)
    hook_events = [e for e in events if e.attributes[semconv.FEATURE_FLAG_PROVIDER_NAME]
                   == "otelprod" and semconv.FEATURE_FLAG_CONTEXT_ID in e.attributes
                   and e.attributes[semconv.FEATURE_FLAG_KEY] == "rollout"]
    # 50 from the config calls, 50 from the hook
    assert len(hook_events) == 100
    missing_events = [e for e in events if e.attributes[semconv.FEATURE_FLAG_KEY] == "missing"]
    assert missing_events[0].attributes[semconv.ERROR_TYPE] == "flag_not_found"
    assert missing_events[0].attributes[semconv.FEATURE_FLAG_RESULT_REASON] == "error"


def test_hook_is_installed_once(openfeature_clean: None) -> None:
    use_openfeature(ConfigManager())
    use_openfeature(ConfigManager())
    assert sum(isinstance(h, FeatureFlagEventHook) for h in api.get_hooks()) == 1
    assert isinstance(ConfigFlagProvider().config, ConfigManager)
