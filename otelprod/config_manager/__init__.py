"""Configuration: environments, typed values, feature flags and secrets.

    from otelprod.config_manager import initialize_config, Environment, FeatureFlag

    config = initialize_config(Environment.PRODUCTION)
    config.load_from_env(prefix="TGE_")
    max_workers = config.get_int("max_workers", default=4)

Values come from the environment, TOML/YAML files and code; typed getters
convert on read; declared keys are validated together, every problem
reported at once with the key and the bad value. Feature flags roll out by
a stable hash and are also offered as an OpenFeature provider. Secrets are
loaded separately, never printed, and registered with the scrubber.

There is one process-global :data:`config`; :func:`initialize_config`
re-initialises it in place, so references taken earlier stay valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from otelprod.config_manager._environment import ENVIRONMENT_NAMES, Environment
from otelprod.config_manager._flags import FeatureFlag, FlagEvaluation, bucket
from otelprod.config_manager._manager import (
    ConfigManager,
    SecretInConfigWarning,
    config,
    get_config,
)
from otelprod.config_manager._schema import ConfigKey, ConfigSchema, ConfigValueError
from otelprod.config_manager._secrets import (
    Secret,
    SecretsManager,
    get_secrets,
    load_secret_sources,
)
from otelprod.errors import ConfigurationError

if TYPE_CHECKING:
    from otelprod.config_manager._openfeature import (
        ConfigFlagProvider,
        FeatureFlagEventHook,
        use_openfeature,
    )

def initialize_config(
    environment: Environment | str | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env_prefix: str | None = None,
    keys: Iterable[ConfigKey] = (),
    secrets_prefix: str | None = None,
    secrets_dir: str | os.PathLike[str] | None = None,
) -> ConfigManager:
    """(Re)initialise the global configuration and validate it all at once.

    ``environment`` defaults to ``OTELPROD_ENVIRONMENT``, else development.
    Loads ``config_file``, then ``<env_prefix>*`` variables, declares
    ``keys`` and validates them; every problem found on the way (an unknown
    environment, a bad flag in the file, a bad or missing key) is reported
    in one :class:`ConfigurationError`.
    """
    problems: list[str] = []
    if environment is None:
        environment = os.environ.get("OTELPROD_ENVIRONMENT") or Environment.DEVELOPMENT
    try:
        env = Environment.parse(environment)
    except ConfigValueError as exc:
        problems.append(f"environment: {exc}")
        env = Environment.DEVELOPMENT
    config.reset(env)  # in place: earlier references stay valid
    if config_file is not None:
        problems.extend(config.load_file_collecting(config_file)[1])
    if env_prefix is not None:
        config.load_from_env(prefix=env_prefix)
    for key in keys:
        config.declare_key(key)
    problems.extend(config.problems()[1])
    if secrets_prefix is not None:
        get_secrets().load_from_env(prefix=secrets_prefix)
    if secrets_dir is not None:
        get_secrets().load_from_directory(secrets_dir)
    if problems:
        raise ConfigurationError(problems)
    return config


def status_report() -> dict[str, Any]:
    """Environment, flags and the number of secrets, for the status report."""
    return config.status_report()


_LAZY = {"ConfigFlagProvider", "FeatureFlagEventHook", "use_openfeature"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # OpenFeature loads only when asked for
        from otelprod.config_manager import _openfeature

        return getattr(_openfeature, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENVIRONMENT_NAMES",
    "ConfigFlagProvider",
    "ConfigKey",
    "ConfigManager",
    "ConfigSchema",
    "ConfigurationError",
    "Environment",
    "FeatureFlag",
    "FeatureFlagEventHook",
    "FlagEvaluation",
    "Secret",
    "SecretInConfigWarning",
    "SecretsManager",
    "bucket",
    "config",
    "get_config",
    "get_secrets",
    "initialize_config",
    "load_secret_sources",
    "status_report",
    "use_openfeature",
]
