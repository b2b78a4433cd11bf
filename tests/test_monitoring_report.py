"""The status report, the built-in checks, and the seed's monitoring examples."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from otelprod.monitoring import (
    HealthCheckResult,
    HealthStatus,
    MonitoringSystem,
    breakers_check,
    dead_letter_check,
    disk_space_check,
    exporter_check,
    memory_check,
)
from tests.conftest import python_env, run_python, seed_example


@pytest.fixture
def system() -> Iterator[MonitoringSystem]:
    system = MonitoringSystem()
    yield system
    system.stop()


def test_the_report_has_every_section_and_is_json(system: MonitoringSystem) -> None:
    system.health_checker.register_check("db", lambda: (HealthStatus.DEGRADED, "replica lag"))
    system.alert_manager.raise_alert("High Error Rate", "5%", "warning", "api_server")
    system.metrics.increment("report_requests")
    report = system.get_status_report()
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["overall_status"] == "degraded" and report["ready"] is True
    assert report["checks"]["db"]["status"] == "degraded"
    assert report["checks"]["db"]["critical"] is True
    assert report["alerts"]["active_count"] == 2  # ours, and the one for the degraded check
    assert {a["title"] for a in report["alerts"]["active"]} == {
        "High Error Rate", "Health check db is degraded"}
    assert report["metrics"]["instruments"] == {"report_requests": "counter"}
    for key in ("system", "circuit_breakers", "errors", "dead_letter_queue", "rate_limiters",
                "exporter"):
        assert key in report and "error" not in report[key], (key, report.get(key))
    assert report["exporter"]["enabled"] is False  # no init() in this process
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", report["timestamp"])


def test_the_report_is_scrubbed(system: MonitoringSystem) -> None:
    system.health_checker.register_check("db", lambda: HealthCheckResult(
        "db", HealthStatus.HEALTHY, "connected",
        metadata={"dsn_password": "hunter2hunter2", "api_key": "sk-live-abcdef", "pool": 5}))
    system.alert_manager.raise_alert("Auth", "token=abcdefgh12345678 leaked", "error", "auth",
                                     {"session": "s3cr3t-session"})
    text = json.dumps(system.get_status_report())
    for secret in ("hunter2hunter2", "sk-live-abcdef", "s3cr3t-session", "abcdefgh12345678"):
        assert secret not in text
    assert '"pool": 5' in text


def test_a_failing_section_leaves_a_hole_not_an_exception(
        system: MonitoringSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict:
        raise OSError("psutil lost /proc")

    monkeypatch.setattr(system.system_metrics, "snapshot", broken)
    report = system.get_status_report()
    assert report["system"] == {"error": "OSError: psutil lost /proc"}
    assert report["overall_status"] == "healthy"


def test_start_registers_the_built_in_checks(system: MonitoringSystem) -> None:
    system.health_checker.register_check("memory", lambda: (HealthStatus.HEALTHY, "mine"))
    system.start(system_metrics=False, background_checks=False)
    assert {"disk_space", "memory", "exporter", "dead_letter_queue",
            "circuit_breakers"} <= set(system.health_checker.check_names)
    results = system.health_checker.run_all()
    assert results["memory"].message == "mine"  # an application's own check is kept
    assert all(not system.health_checker.is_critical(n) for n in
               ("disk_space", "exporter", "dead_letter_queue", "circuit_breakers"))
    assert results["exporter"].status is HealthStatus.HEALTHY  # export is off here
    assert results["disk_space"].status in (HealthStatus.HEALTHY, HealthStatus.DEGRADED,
                                            HealthStatus.UNHEALTHY)


@pytest.mark.parametrize("state,status", [
    ({"enabled": False, "mode": "disabled"}, HealthStatus.HEALTHY),
    ({"enabled": True, "connected": True}, HealthStatus.HEALTHY),
    ({"enabled": True, "connected": None}, HealthStatus.UNKNOWN),
    ({"enabled": True, "connected": False}, HealthStatus.DEGRADED),
    ({"enabled": True, "connected": False, "spooling": True, "spool_bytes": 10},
     HealthStatus.DEGRADED),
    ({"enabled": True, "connected": False, "dropped": 3}, HealthStatus.UNHEALTHY),
])
def test_the_exporter_check(state: dict, status: HealthStatus) -> None:
    assert exporter_check(lambda: state)().status is status


def test_the_exporter_check_is_unhealthy_only_while_dropping() -> None:
    state = {"enabled": True, "connected": True, "dropped": 0}
    check = exporter_check(lambda: state)
    assert check().status is HealthStatus.HEALTHY
    state["dropped"] = 5
    result = check()
    assert result.status is HealthStatus.UNHEALTHY and "5 telemetry item(s)" in result.message
    assert check().status is HealthStatus.HEALTHY  # nothing new dropped since


def test_thresholds_of_disk_and_memory_checks() -> None:
    assert disk_space_check("/", degraded_at=0.0001, unhealthy_at=1.0)().status in (
        HealthStatus.DEGRADED, HealthStatus.UNHEALTHY)
    assert memory_check(degraded_at=1.0, unhealthy_at=1.0)().status is HealthStatus.HEALTHY
    with pytest.raises(ValueError, match="degraded_at: expected a fraction in \\(0, 1\\], got 90"):
        disk_space_check("/", degraded_at=90)


def test_breaker_and_dead_letter_checks(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from otelprod.error_handling import (
        CircuitBreakerConfig,
        circuit_breaker,
        configure_dead_letter_queue,
        dead_letter_queue,
        unregister_circuit_breaker,
    )

    name = "report-test-breaker"
    breaker = circuit_breaker(name, CircuitBreakerConfig(failure_threshold=1))
    try:
        assert breakers_check()().status is HealthStatus.HEALTHY
        breaker.force_open()
        result = breakers_check()()
        assert result.status is HealthStatus.DEGRADED and name in result.metadata["open"]
    finally:
        unregister_circuit_breaker(name)
    configure_dead_letter_queue(tmp_path / "dlq.db")
    try:
        check = dead_letter_check(degraded_at=2)
        assert check().status is HealthStatus.HEALTHY
        dead_letter_queue.add("op", {"n": 1}, "e1")
        dead_letter_queue.add("op", {"n": 2}, "e2")
        result = check()
        assert result.status is HealthStatus.DEGRADED and result.metadata["size"] == 2
    finally:
        configure_dead_letter_queue(None)


# --- the seed's examples, as written (src. -> otelprod.) ---------------------------------
def _seed_block(first_line: str) -> str:
    return seed_example(first_line)


def test_seed_monitoring_example() -> None:
    code = _seed_block("# Register custom health check")
    # the seed uses AlertSeverity without importing it
    prelude = "from otelprod.monitoring import AlertSeverity\n"
    epilogue = """
import json
json.dumps(status)
assert status["overall_status"] == "healthy", status["overall_status"]
assert status["checks"]["database"]["message"] == "Database operational"
assert status["alerts"]["active"][0]["title"] == "High Error Rate"
assert status["metrics"]["instruments"] == {"api_request_duration": "histogram",
    "api_requests_total": "counter", "active_connections": "gauge"}
print("OK")
"""
    result = run_python(prelude + code + epilogue, env=python_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")


def test_seed_health_check_failures_troubleshooting() -> None:
    code = _seed_block("# Run specific health check")
    prelude = """
from otelprod.monitoring import monitoring_system
def broken():
    raise ConnectionError("database at db:5432 refused the connection")
monitoring_system.health_checker.register_check("component_name", broken)
"""
    result = run_python(prelude + code, env=python_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == ("check raised ConnectionError: database at db:5432 refused the "
                        "connection")
    assert lines[1] == "{'error.type': 'ConnectionError'}"
