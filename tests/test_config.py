"""Configuration: the seed's example, typed getters, files, declared keys, settings."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from otelprod import config_manager
from otelprod._pipeline.settings import Settings, describe_settings, load_settings
from otelprod._scrub import REDACTED, scrubber
from otelprod.config_manager import (
    ConfigKey,
    ConfigManager,
    ConfigurationError,
    Environment,
    FeatureFlag,
    SecretInConfigWarning,
    get_config,
    initialize_config,
)
from tests.conftest import python_env, run_python

SEED_CONFIG = """
from otelprod.config_manager import initialize_config, Environment, FeatureFlag

# Initialize configuration
config = initialize_config(Environment.PRODUCTION)

# Load from environment
config.load_from_env(prefix="TGE_")

# Get configuration values
log_level = config.get_string("log_level", default="INFO")
max_workers = config.get_int("max_workers", default=4)
enable_twitter = config.get_bool("enable_twitter", default=True)

# Feature flags
config.register_feature_flag(
    FeatureFlag(
        name="new_feature",
        enabled=True,
        rollout_percentage=50,  # 50% rollout
        allowed_environments=[Environment.DEVELOPMENT, Environment.STAGING]
    )
)

if config.is_feature_enabled("new_feature"):
    # Use new feature
    pass

# Secrets management
from otelprod.config_manager import get_secrets

secrets = get_secrets()
secrets.load_from_env(prefix="SECRET_")
api_key = secrets.get_secret("api_key")
"""


def test_seed_configuration_example_runs_as_written(tmp_path: Path) -> None:
    check = """
import json
print(json.dumps({"log_level": log_level, "max_workers": max_workers,
                  "enable_twitter": enable_twitter,
                  "new_feature": config.is_feature_enabled("new_feature"),
                  "api_key_str": str(api_key), "api_key_repr": repr(api_key),
                  "api_key_value": api_key.get_secret_value()}))
"""
    env = python_env(TGE_LOG_LEVEL="DEBUG", TGE_MAX_WORKERS="8", TGE_ENABLE_TWITTER="true",
                     SECRET_API_KEY="your_api_key_here")
    result = run_python(SEED_CONFIG + check, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["log_level"] == "DEBUG"
    assert out["max_workers"] == 8
    assert out["enable_twitter"] is True
    # production is not among the flag's allowed environments
    assert out["new_feature"] is False
    assert "your_api_key_here" not in out["api_key_str"] + out["api_key_repr"]
    assert out["api_key_value"] == "your_api_key_here"


def test_seed_example_defaults_apply_without_variables(tmp_path: Path) -> None:
    check = "print(log_level, max_workers, enable_twitter, api_key)"
    result = run_python(SEED_CONFIG + check, env=python_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["INFO", "4", "True", "None"]


# --- typed getters -------------------------------------------------------------------------
def test_typed_getters_convert_and_report_bad_values() -> None:
    config = ConfigManager(Environment.STAGING)
    config.load_from_env(prefix="APP_", environ={
        "APP_WORKERS": "8", "APP_RATIO": "0.25", "APP_DEBUG": "off", "APP_NAME": "svc",
        "APP_BAD_INT": "eight", "APP_DB__HOST": "db.local", "OTHER": "x"})
    assert config.get_int("workers") == 8
    assert config.get_float("ratio") == 0.25
    assert config.get_bool("debug") is False
    assert config.get_string("name") == "svc"
    assert config.get_string("db.host") == "db.local"
    assert config.get("other") is None
    assert config.get_int("missing", default=3) == 3
    assert config.get_int("missing") is None
    assert config.source_of("workers") == "env:APP_WORKERS"
    with pytest.raises(ConfigurationError) as err:
        config.get_int("bad_int", default=1)
    message = str(err.value)
    assert "bad_int" in message and "APP_BAD_INT" in message
    assert "'eight'" in message and "integer" in message


@pytest.mark.parametrize("raw", ["maybe", "2", ""])
def test_bool_rejects_anything_but_a_boolean(raw: str) -> None:
    config = ConfigManager()
    config.set("flag", raw)
    with pytest.raises(ConfigurationError, match=r"flag \(from code\): expected a boolean"):
        config.get_bool("flag")


def test_unknown_environment_is_named() -> None:
    with pytest.raises(ConfigurationError) as err:
        ConfigManager("prod-eu")
    assert "environment" in str(err.value) and "'prod-eu'" in str(err.value)
    assert ConfigManager("prod").environment is Environment.PRODUCTION


# --- declared keys -------------------------------------------------------------------------
def test_declared_keys_are_validated_together() -> None:
    config = ConfigManager()
    config.declare("max_workers", int, default=4, min=1, max=64)
    config.declare("log_level", str, default="INFO", choices=["DEBUG", "INFO", "ERROR"])
    config.declare("database_url", str, required=True)
    config.declare("ratio", float, default=0.5, min=0, max=1)
    config.declare("enabled", bool, default=True)
    config.load_from_env(prefix="T_", environ={"T_MAX_WORKERS": "many", "T_LOG_LEVEL": "LOUD",
                                               "T_RATIO": "1.5"})
    with pytest.raises(ConfigurationError) as err:
        config.validate()
    problems = err.value.problems
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert "max_workers (from env:T_MAX_WORKERS): expected an integer, got str 'many'" in text
    assert "log_level (from env:T_LOG_LEVEL): must be one of 'DEBUG', 'INFO', 'ERROR', " \
           "got str 'LOUD'" in text
    assert "database_url: required, but not set" in text
    assert "ratio (from env:T_RATIO): must be within 0..1, got str '1.5'" in text

    config.load_from_env(prefix="T_", environ={"T_MAX_WORKERS": "8", "T_LOG_LEVEL": "ERROR",
                                               "T_RATIO": "1", "T_DATABASE_URL": "sqlite://"})
    assert config.validate() == {"max_workers": 8, "log_level": "ERROR", "database_url":
                                 "sqlite://", "ratio": 1.0, "enabled": True}
    assert config.get_int("max_workers") == 8


def test_declared_defaults_and_ranges_apply_to_getters() -> None:
    config = ConfigManager()
    config.declare("port", int, default=8080, min=1, max=65535)
    assert config.get_int("port") == 8080
    config.set("port", "70000")
    with pytest.raises(ConfigurationError, match=r"port \(from code\): must be within 1..65535"):
        config.get_int("port")


def test_several_bad_inputs_at_start_up_in_one_error(tmp_path: Path) -> None:
    """The issue's four: non-integer int, unknown environment, rollout 150, missing key."""
    path = tmp_path / "app.toml"
    path.write_text("""
max_workers = "eight"

[feature_flags.checkout_v2]
enabled = true
rollout_percentage = 150
""")
    with pytest.raises(ConfigurationError) as err:
        initialize_config("prod-eu", config_file=path, keys=[
            ConfigKey("max_workers", int, default=4),
            ConfigKey("database_url", str, required=True),
        ])
    problems = err.value.problems
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert "environment: must be one of" in text and "'prod-eu'" in text
    assert "feature_flags.checkout_v2.rollout_percentage" in text and "150" in text
    assert "max_workers" in text and "'eight'" in text
    assert "database_url: required" in text


def test_feature_flag_rejects_bad_fields_together() -> None:
    with pytest.raises(ConfigurationError) as err:
        FeatureFlag("f", enabled="yes", rollout_percentage=150,  # type: ignore[arg-type]
                    allowed_environments=["moon"])
    problems = err.value.problems
    assert len(problems) == 3
    assert any("feature_flags.f.rollout_percentage" in p and "150" in p for p in problems)
    assert any("feature_flags.f.enabled" in p and "'yes'" in p for p in problems)
    assert any("allowed_environments" in p and "'moon'" in p for p in problems)


# --- files ---------------------------------------------------------------------------------
TOML = """
log_level = "INFO"
max_workers = 4
[database]
host = "localhost"
port = 5432
[feature_flags.new_checkout]
rollout_percentage = 25
allowed_environments = ["staging", "production"]
[environments.production]
log_level = "WARNING"
[environments.production.database]
host = "db.prod"
"""

YAML = """
log_level: INFO
max_workers: 4
database:
  host: localhost
  port: 5432
feature_flags:
  new_checkout:
    rollout_percentage: 25
    allowed_environments: [staging, production]
environments:
  production:
    log_level: WARNING
    database:
      host: db.prod
"""


@pytest.mark.parametrize(("suffix", "text"), [(".toml", TOML), (".yaml", YAML), (".yml", YAML)])
def test_files_load_with_the_environment_overlay(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"app{suffix}"
    path.write_text(text)
    prod = ConfigManager(Environment.PRODUCTION)
    prod.load_from_file(path)
    assert prod.get_string("log_level") == "WARNING"
    assert prod.get_string("database.host") == "db.prod"
    assert prod.get_int("database.port") == 5432
    assert prod.get_int("max_workers") == 4
    flag = prod.get_feature_flag("new_checkout")
    assert flag is not None and flag.rollout_percentage == 25
    assert flag.allowed_environments == (Environment.STAGING, Environment.PRODUCTION)

    dev = ConfigManager(Environment.DEVELOPMENT)
    dev.load_from_file(path)
    assert dev.get_string("log_level") == "INFO"
    assert dev.get_string("database.host") == "localhost"
    assert dev.is_feature_enabled("new_checkout", key="u1") is False  # not allowed in dev


def test_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text('max_workers = 4\n')
    config = ConfigManager()
    config.load_from_file(path)
    config.load_from_env(prefix="APP_", environ={"APP_MAX_WORKERS": "9"})
    assert config.get_int("max_workers") == 9
    assert config.source_of("max_workers") == "env:APP_MAX_WORKERS"


@pytest.mark.parametrize(("name", "text", "match"), [
    ("bad.toml", "x = [", "invalid TOML"),
    ("bad.yaml", "a: [1, 2", "invalid YAML"),
    ("list.yaml", "- 1\n- 2\n", "expected a mapping"),
    ("app.ini", "x=1", "unknown configuration file type '.ini'"),
    ("flags.toml", "[feature_flags.a]\nenabled = 1\n[environments.moon]\nx = 1\n",
     "feature_flags.a.enabled"),
])
def test_bad_files_are_reported_with_their_path(tmp_path: Path, name: str, text: str,
                                                match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=match) as err:
        ConfigManager().load_from_file(path)
    assert str(path) in str(err.value)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        ConfigManager().load_from_file(tmp_path / "nope.toml")


# --- secrets in plain configuration --------------------------------------------------------
def test_secret_looking_key_warns_and_is_scrubbed() -> None:
    config = ConfigManager()
    with pytest.warns(SecretInConfigWarning, match="db_password") as caught:
        config.load_from_env(prefix="APP_", environ={"APP_DB_PASSWORD": "pw-in-config-1"})
    assert "pw-in-config-1" not in str(caught[0].message)
    assert config.get_string("db_password") == "pw-in-config-1"  # still usable
    assert scrubber.scrub("dsn uses pw-in-config-1") == f"dsn uses {REDACTED}"
    assert config.to_dict() == {"db_password": REDACTED}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config.set("token_count", 5)  # allowlisted: no warning


# --- the global config and its report ------------------------------------------------------
def test_initialize_config_reinitialises_the_global_in_place(tmp_path: Path) -> None:
    before = get_config()
    path = tmp_path / "app.toml"
    path.write_text("[feature_flags.beta]\nrollout_percentage = 10\n")
    config = initialize_config("staging", config_file=path, env_prefix="NOPE_PREFIX_")
    assert config is before is config_manager.config
    assert config.environment is Environment.STAGING
    report = config_manager.status_report()
    assert report["environment"] == "staging"
    assert report["feature_flags"]["beta"]["rollout_percentage"] == 10
    assert isinstance(report["secret_count"], int)
    # the report survives the scrubber whole (the status report scrubs everything)
    assert scrubber.scrub_mapping(report) == report
    initialize_config(Environment.DEVELOPMENT)


# --- otelprod's own settings ----------------------------------------------------------------
def test_settings_defaults() -> None:
    assert load_settings(environ={}) == Settings()


def test_settings_from_env_with_overrides_winning() -> None:
    env = {"OTELPROD_SERVICE_NAME": "from-env", "OTELPROD_HEALTH_PORT": "8080",
           "OTELPROD_JSON_LOGS": "yes", "OTELPROD_LOG_LEVEL": "warn",
           "OTELPROD_ENVIRONMENT": "prod", "OTELPROD_SHUTDOWN_TIMEOUT": "2.5",
           "OTELPROD_CONSOLE": ""}
    settings = load_settings(environ=env, service_name="from-code", endpoint=None)
    assert settings.service_name == "from-code"
    assert settings.health_port == 8080
    assert settings.json_logs is True
    assert settings.log_level == "WARNING"
    assert settings.environment == "production"
    assert settings.shutdown_timeout == 2.5
    assert settings.console is None
    assert load_settings(environ={}, environment="demo").environment == "demo"


def test_settings_report_every_problem_at_once() -> None:
    env = {"OTELPROD_HEALTH_PORT": "http", "OTELPROD_SHUTDOWN_TIMEOUT": "0",
           "OTELPROD_PROTOCOL": "carrier-pigeon", "OTELPROD_JSON_LOGS": "sometimes",
           "OTELPROD_ENVIRONMENT": "prod eu"}
    with pytest.raises(ConfigurationError) as err:
        load_settings(environ=env, spool_max_bytes=-1, colour=True)
    problems = err.value.problems
    assert len(problems) == 7, problems
    text = "\n".join(problems)
    assert "colour: unknown setting" in text
    assert "health_port (from OTELPROD_HEALTH_PORT): expected an integer, got str 'http'" in text
    assert "shutdown_timeout (from OTELPROD_SHUTDOWN_TIMEOUT): must be > 0" in text
    assert "protocol (from OTELPROD_PROTOCOL): must be one of" in text
    assert "'carrier-pigeon'" in text
    assert "json_logs (from OTELPROD_JSON_LOGS): expected a boolean" in text
    assert "spool_max_bytes (from keyword argument): must be >= 0, got int -1" in text
    assert "environment (from OTELPROD_ENVIRONMENT)" in text and "'prod eu'" in text


def test_health_token_is_registered_and_never_echoed() -> None:
    token = "health-tok-98765"
    settings = load_settings(environ={"OTELPROD_HEALTH_TOKEN": token})
    assert settings.health_token == token
    assert scrubber.scrub(f"Bearer x {token}") .count(token) == 0


def test_describe_settings_lists_every_field() -> None:
    rows = describe_settings()
    assert [r["name"] for r in rows] == list(Settings.__dataclass_fields__)
    assert all(r["env"] == "OTELPROD_" + r["name"].upper() for r in rows)
