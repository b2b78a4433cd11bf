# Seed example 14: Troubleshooting / Health Check Failures
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.monitoring import monitoring_system

# Run specific health check
result = monitoring_system.health_checker.run_check("component_name")
print(result.message)
print(result.metadata)
