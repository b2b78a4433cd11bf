# Seed example 9: Integration and Usage / Quick Start
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.production_integration import initialize_production, Environment

# Initialize all production features
production_system = initialize_production(
    app_name="TGE_Monitor",
    environment=Environment.PRODUCTION,
    config_overrides={
        'log_level': 'INFO',
        'max_workers': 4
    }
)

# Your application code here

# Shutdown gracefully
from otelprod.production_integration import shutdown_production
shutdown_production()
