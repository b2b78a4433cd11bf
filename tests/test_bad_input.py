"""Every public entry point refuses a bad value, naming the parameter, the value and what
is allowed; string forms of enums are taken where the seed passes them.

One table, one row per wrong call: the call, then three pieces its error must
contain (the parameter, the value as ``repr`` shows it, and what is allowed).
The first rows are the calls issue 16 found silently accepted or confusing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from otelprod._pipeline.settings import load_settings
from otelprod.config_manager import (
    ConfigKey,
    ConfigManager,
    ConfigSchema,
    FeatureFlag,
    Secret,
    SecretsManager,
    bucket,
    use_openfeature,
)
from otelprod.error_handling import (
    CircuitBreakerConfig,
    DeadLetterQueue,
    ErrorHandler,
    RetryConfig,
    configure_dead_letter_queue,
    unregister_circuit_breaker,
    with_circuit_breaker,
    with_fallback,
    with_retry,
)
from otelprod.monitoring import (
    AlertManager,
    HealthChecker,
    HealthCheckResult,
    HealthStatus,
    MetricsCollector,
    MonitoringSystem,
    disk_space_check,
    health_asgi_app,
    health_wsgi_app,
    memory_check,
    serve_health,
)
from otelprod.rate_limiter import (
    Backpressure,
    RateLimitConfig,
    RateLimiter,
    RateLimitManager,
    RateLimitStrategy,
    rate_limited,
)
from otelprod.structured_logging import (
    JsonFormatter,
    ObservabilitySystem,
    PerformanceTracker,
    StructuredLogger,
    flush_logging,
    initialize_observability,
    setup_json_logging,
    shutdown_logging,
)
from otelprod.validation import validate_user_input
from tests.conftest import python_env

manager = RateLimitManager()
config = ConfigManager()
secrets = SecretsManager()
alerts = AlertManager()
checker = HealthChecker()
metrics = MetricsCollector()
system = ObservabilitySystem("bad-input")
dlq_path = Path("/nonexistent-dir-for-bad-input/dl.db")  # never opened: every call fails first

Row = tuple[str, Callable[[], Any], str, str, str]
ROWS: list[Row] = [
    # --- what issue 16 found silently accepted -------------------------------------------------
    ("register_limiter failure_mode without redis",
     lambda: manager.register_limiter("x", failure_mode="sideways"),
     "failure_mode", "'sideways'", "open, closed"),
    ("RetryConfig max_delay < base_delay", lambda: RetryConfig(base_delay=10, max_delay=1),
     "max_delay", "1", "base_delay (10)"),
    ("config.set empty key", lambda: config.set("", 1), "key", "''", "non-empty str"),
    ("init spool_dir=123", lambda: load_settings(spool_dir=123),
     "spool_dir (from keyword argument)", "123", "expected a string"),
    ("HealthCheckResult unknown status", lambda: HealthCheckResult("db", status="bogus"),
     "status", "'bogus'", "healthy, degraded, unhealthy, unknown"),
    # --- what it found confusing ----------------------------------------------------------------
    ("validate_user_input unknown option",
     lambda: validate_user_input("a@b.c", "email", bogus=1),
     "validate_user_input", "'bogus'", "check_deliverability, allow_smtputf8"),
    ("protocol http/json", lambda: load_settings(protocol="http/json"),
     "protocol", "'http/json'", "'grpc', 'http/protobuf'"),
    ("register_limiter redis without a scheme",
     lambda: manager.register_limiter("x", redis="localhost:6379"),
     "redis", "'localhost:6379'", "redis://, rediss://, unix://"),
    # --- otelprod and the settings ------------------------------------------------------------
    ("settings health_port text", lambda: load_settings(health_port="eighty"),
     "health_port", "'eighty'", "expected an integer"),
    ("settings health_token of another type", lambda: load_settings(health_token=12345),
     "health_token", "(hidden)", "expected a string"),
    ("settings health_worker_timeout 0", lambda: load_settings(health_worker_timeout=0),
     "health_worker_timeout", "0", "> 0"),
    ("settings health_report_open text", lambda: load_settings(health_report_open="maybe"),
     "health_report_open", "'maybe'", "expected a boolean"),
    ("settings unknown keyword", lambda: load_settings(spool_size=1),
     "spool_size", "unknown setting", "spool_max_bytes"),
    ("shutdown timeout", lambda: __import__("otelprod").shutdown(-1),
     "timeout", "-1", "seconds >= 0"),
    # --- error_handling -------------------------------------------------------------------------
    ("RetryConfig max_attempts 0", lambda: RetryConfig(max_attempts=0),
     "max_attempts", "0", "an int >= 1"),
    ("RetryConfig retry_on", lambda: RetryConfig(retry_on=5), "retry_on", "5",
     "an exception class"),
    ("with_retry config", lambda: with_retry("cfg"), "RetryConfig", "str", "takes a"),
    ("with_retry name", lambda: with_retry(name=""), "name", "''", "non-empty str"),
    ("with_retry sleep", lambda: with_retry(sleep=5), "sleep", "5", "a callable"),
    ("CircuitBreakerConfig failure_threshold", lambda: CircuitBreakerConfig(failure_threshold=0),
     "failure_threshold", "0", "an int >= 1"),
    ("CircuitBreakerConfig redis_url", lambda: CircuitBreakerConfig(redis_url="localhost"),
     "redis_url", "'localhost'", "redis:// URL"),
    ("with_circuit_breaker name", lambda: with_circuit_breaker(""), "name", "''",
     "non-empty str"),
    ("with_circuit_breaker exclude", lambda: with_circuit_breaker("x", exclude=5), "exclude",
     "5", "an exception class"),
    ("unregister_circuit_breaker", lambda: unregister_circuit_breaker(5), "name", "5", "str"),
    ("with_fallback on", lambda: with_fallback(1, on=5), "on", "5", "an exception class"),
    ("handle_error error", lambda: ErrorHandler().handle_error("boom"), "error", "str",
     "an exception"),
    ("handle_error severity", lambda: ErrorHandler().handle_error(ValueError(), severity="meh"),
     "severity", "'meh'", "low, medium, high, critical"),
    ("DeadLetterQueue name", lambda: DeadLetterQueue(dlq_path, name=""), "name", "''",
     "non-empty str"),
    ("DeadLetterQueue busy_timeout", lambda: DeadLetterQueue(dlq_path, busy_timeout=-1),
     "busy_timeout", "-1", "> 0"),
    ("DeadLetterQueue path", lambda: DeadLetterQueue(5), "path", "5", "a file path"),
    ("configure_dead_letter_queue", lambda: configure_dead_letter_queue(5), "path", "5",
     "a file path"),
    ("dead letter get", lambda: DeadLetterQueue(dlq_path).get("3"), "item_id", "'3'", "an int"),
    ("dead letter get_all limit", lambda: DeadLetterQueue(dlq_path).get_all(limit=-1), "limit",
     "-1", "an int >= 0"),
    ("dead letter clear operation", lambda: DeadLetterQueue(dlq_path).clear(5), "operation",
     "5", "a str or None"),
    ("dead letter add operation", lambda: DeadLetterQueue(dlq_path).add("", {}), "operation",
     "''", "non-empty str"),
    # --- rate_limiter ----------------------------------------------------------------------------
    ("RateLimitConfig requests_per_second", lambda: RateLimitConfig(requests_per_second=0),
     "requests_per_second", "0", "> 0"),
    ("RateLimitConfig strategy", lambda: RateLimitConfig(strategy="bogus"), "strategy",
     "'bogus'", "token_bucket, leaky_bucket"),
    ("RateLimiter config", lambda: RateLimiter("cfg"), "config", "'cfg'", "RateLimitConfig"),
    ("RateLimitManager default_config", lambda: RateLimitManager("x"), "default_config", "'x'",
     "a RateLimitConfig"),
    ("register_limiter config", lambda: manager.register_limiter("x", "cfg"), "config", "'cfg'",
     "a RateLimitConfig"),
    ("register_limiter name", lambda: manager.register_limiter(""), "name", "''",
     "non-empty str"),
    ("acquire tokens", lambda: RateLimiter(RateLimitConfig()).acquire(0), "tokens", "0",
     "from 1 to burst_size=20"),
    ("acquire wait", lambda: RateLimiter(RateLimitConfig()).acquire(1, "x"), "wait", "'x'",
     "a number of seconds >= 0"),
    ("rate_limited tokens", lambda: rate_limited("x", tokens=0), "tokens", "0", "an int >= 1"),
    ("rate_limited limiter", lambda: rate_limited(5), "limiter", "5", "a RateLimiter"),
    ("rate_limited key", lambda: rate_limited("x", key=5), "key", "5", "a callable"),
    ("rate_limited wait", lambda: rate_limited("x", wait=-1), "wait", "-1", "seconds >= 0"),
    ("Backpressure max_queue_size", lambda: Backpressure("b", 0), "max_queue_size", "0",
     "an int >= 1"),
    ("Backpressure low_watermark", lambda: Backpressure("b", 10, high_watermark=0.5,
                                                        low_watermark=0.9),
     "low_watermark", "0.9", "<= high_watermark (0.5)"),
    # --- monitoring ---------------------------------------------------------------------------
    ("HealthCheckResult component", lambda: HealthCheckResult(5, HealthStatus.HEALTHY),
     "component", "5", "a str"),
    ("HealthCheckResult response_time_ms", lambda: HealthCheckResult(
        "db", "healthy", response_time_ms=-1), "response_time_ms", "-1", ">= 0"),
    ("register_check timeout", lambda: checker.register_check("c", lambda: True, timeout=0),
     "timeout", "0", "(0, 3600]"),
    ("register_check check", lambda: checker.register_check("c", 5), "check", "int",
     "callable"),
    ("HealthChecker max_workers", lambda: HealthChecker(max_workers=0), "max_workers", "0",
     "an int >= 1"),
    ("MonitoringSystem.start system_metrics", lambda: MonitoringSystem().start(
        system_metrics="x"), "system_metrics", "'x'", "True or False"),
    ("MonitoringSystem.stop timeout", lambda: MonitoringSystem().stop(-1), "timeout", "-1",
     "seconds >= 0"),
    ("metrics.increment value", lambda: metrics.increment("c", "x"), "value", "'x'",
     "an int or float"),
    ("metrics.increment attributes", lambda: metrics.increment("c", 1, 5), "attributes", "5",
     "a mapping"),
    ("metrics.record unit", lambda: metrics.record("r2", 1, unit=5), "unit", "5", "a str"),
    ("MetricsCollector meter", lambda: MetricsCollector(5), "meter", "5", "Meter"),
    ("raise_alert severity", lambda: alerts.raise_alert("t", "m", "bogus", "c"), "severity",
     "'bogus'", "info, warning, error, critical"),
    ("raise_alert title", lambda: alerts.raise_alert("", "m", "info", "c"), "title", "''",
     "non-empty str"),
    ("AlertManager history_size", lambda: AlertManager(history_size=0), "history_size", "0",
     "an int >= 1"),
    ("get_alert_history limit", lambda: alerts.get_alert_history(-1), "limit", "-1",
     "an int >= 0"),
    ("resolve_alert id", lambda: alerts.resolve_alert(5), "alert_id", "5", "a str"),
    ("memory_check thresholds", lambda: memory_check(degraded_at=0.99, unhealthy_at=0.5),
     "degraded_at", "0.99", "<= unhealthy_at (0.5)"),
    ("disk_space_check path", lambda: disk_space_check(path=5), "path", "5",
     "a directory path"),
    ("serve_health port", lambda: serve_health(70000), "port", "70000", "[0, 65535]"),
    ("serve_health open_report with a token", lambda: serve_health(
        0, "127.0.0.1", "tok-1234", open_report=True), "open_report", "True",
     "one or the other"),
    ("health_asgi_app token", lambda: health_asgi_app(token=""), "token", "''",
     "a non-empty str"),
    ("health_wsgi_app open_report", lambda: health_wsgi_app(open_report="yes"), "open_report",
     "'yes'", "True or False"),
    # --- structured_logging -----------------------------------------------------------------------
    ("get_logger name", lambda: system.get_logger(5), "name", "5", "non-empty str"),
    ("trace_request name", lambda: system.trace_request(""), "name", "''", "non-empty str"),
    ("initialize_observability name", lambda: initialize_observability(5), "name", "5",
     "non-empty string"),
    ("StructuredLogger name", lambda: StructuredLogger(5), "name", "5", "non-empty str"),
    ("PerformanceTracker window", lambda: PerformanceTracker("x"), "window", "'x'",
     "an int >= 1"),
    ("JsonFormatter scrub", lambda: JsonFormatter(scrub="x"), "scrub", "'x'", "True or False"),
    ("setup_json_logging level", lambda: setup_json_logging("LOUD"), "level", "'LOUD'",
     "DEBUG, INFO, WARNING"),
    ("setup_json_logging log_file", lambda: setup_json_logging("INFO", 5, console=False),
     "log_file", "5", "a file path"),
    ("setup_json_logging queue_size", lambda: setup_json_logging(queue_size=0), "queue_size",
     "0", "an int >= 1"),
    ("flush_logging timeout", lambda: flush_logging("x"), "timeout", "'x'", "seconds >= 0"),
    ("shutdown_logging timeout", lambda: shutdown_logging(-1), "timeout", "-1",
     "seconds >= 0"),
    # --- config_manager ---------------------------------------------------------------------------
    ("config.set key type", lambda: config.set(5, 1), "key", "5", "non-empty str"),
    ("config.get empty key", lambda: config.get(" "), "key", "' '", "non-empty str"),
    ("config.update values", lambda: config.update(5), "values", "5", "a mapping"),
    ("config.load_from_env prefix", lambda: config.load_from_env(5), "prefix", "5", "a str"),
    ("config.load_from_file path", lambda: config.load_from_file(5), "path", "5",
     "a file path"),
    ("config.get_list separator", lambda: config.get_list("k", separator=""), "separator",
     "''", "non-empty str"),
    ("config.declare type", lambda: config.declare("k", list), "type", "list",
     "str, int, float or bool"),
    ("is_feature_enabled name", lambda: config.is_feature_enabled(""), "feature flag name",
     "''", "non-empty str"),
    ("ConfigManager environment", lambda: ConfigManager("bogus"), "environment",
     "'bogus'", "'development', 'testing', 'staging', 'production'"),
    ("FeatureFlag rollout_percentage", lambda: FeatureFlag("f", rollout_percentage=150),
     "rollout_percentage", "150", "within 0..100"),
    ("FeatureFlag enabled", lambda: FeatureFlag("f", enabled="x"), "enabled", "'x'",
     "a boolean"),
    ("ConfigKey name", lambda: ConfigKey(""), "config key name", "''", "non-empty str"),
    ("ConfigSchema keys", lambda: ConfigSchema([5]), "key", "5", "a ConfigKey"),
    ("bucket name", lambda: bucket(5, "k"), "name", "5", "a str"),
    ("set_secret name", lambda: secrets.set_secret("", "x"), "secret name", "''",
     "non-empty name"),
    ("get_secret name", lambda: secrets.get_secret(5), "secret name", "5", "a str"),
    ("load_from_directory path", lambda: secrets.load_from_directory(5), "path", "5",
     "a directory path"),
    ("secrets load_from_env prefix", lambda: secrets.load_from_env(""), "prefix", "''",
     "non-empty str"),
    ("Secret value", lambda: Secret(5), "secret", "int", "a str value"),
    ("use_openfeature config", lambda: use_openfeature(5), "config", "5", "a ConfigManager"),
    # --- validation (its entry point's arguments) ---------------------------------------------
    ("validate_user_input input_type", lambda: validate_user_input("x", "emailx"),
     "input_type", "'emailx'", "string, email, url"),
]


@pytest.mark.parametrize(("call", "parameter", "value", "allowed"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_a_bad_value_is_refused_naming_parameter_value_and_what_is_allowed(
        call: Callable[[], Any], parameter: str, value: str, allowed: str) -> None:
    with pytest.raises((TypeError, ValueError)) as refused:
        call()
    message = str(refused.value)
    for part in (parameter, value, allowed):
        assert part in message, f"{part!r} not in {message!r}"


def test_string_forms_of_enums_are_taken_where_the_seed_passes_them() -> None:
    assert HealthCheckResult("db", status="healthy").is_healthy
    assert HealthCheckResult("db", status=" Degraded ").status is HealthStatus.DEGRADED
    assert RateLimitConfig(strategy="LEAKY_BUCKET").strategy is RateLimitStrategy.LEAKY_BUCKET
    limiter = RateLimitManager().register_limiter("closed", failure_mode="Closed")
    assert limiter.name == "closed"
    assert ErrorHandler().handle_error(ValueError("x"), severity="high")["severity"] == "high"
    alert = AlertManager().raise_alert("t", "m", "warning", "c")
    assert alert.severity.value == "warning"
    assert load_settings(protocol="GRPC", environment="prod").protocol == "grpc"


def test_a_check_returning_a_bad_status_is_unhealthy_not_a_500() -> None:
    monitoring = MonitoringSystem()
    monitoring.health_checker.register_check("db", lambda: HealthCheckResult("db", "bogus"))
    report = monitoring.get_status_report()  # no KeyError
    assert report["checks"]["db"]["status"] == "unhealthy"
    assert "'bogus'" in report["checks"]["db"]["message"]
    app = health_wsgi_app(system=monitoring)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://pod") as client:
        assert client.get("/health/ready").status_code == 503


def test_init_with_a_spool_dir_of_the_wrong_type_creates_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import otelprod; otelprod.init('svc', spool_dir=123)"],
        env=python_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert ("spool_dir (from keyword argument): expected a string, got int 123"
            in result.stderr)
    assert list(tmp_path.iterdir()) == []
