# Seed example 3: Monitoring and Alerting / Usage
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.monitoring import monitoring_system, HealthCheckResult, HealthStatus

# Register custom health check
def check_database():
    return HealthCheckResult(
        component="database",
        status=HealthStatus.HEALTHY,
        message="Database operational",
        response_time_ms=5.2
    )

monitoring_system.health_checker.register_check("database", check_database)

# Record metrics
monitoring_system.metrics.record("api_request_duration", 125.5)
monitoring_system.metrics.increment("api_requests_total")
monitoring_system.metrics.set_gauge("active_connections", 42)

# Raise alerts
monitoring_system.alert_manager.raise_alert(
    title="High Error Rate",
    message="Error rate exceeded 5% threshold",
    severity=AlertSeverity.WARNING,
    component="api_server"
)

# Get system status
status = monitoring_system.get_status_report()
