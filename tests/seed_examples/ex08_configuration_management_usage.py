# Seed example 8: Configuration Management / Usage
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

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
