"""Alerts: dedup, escalation, resolve, history, log records, metrics, and the automatic ones."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pytest

from otelprod import semconv
from otelprod.error_handling import (
    CircuitBreakerConfig,
    ErrorSeverity,
    circuit_breaker,
    error_handler,
    get_circuit_breaker,
    unregister_circuit_breaker,
)
from otelprod.monitoring import (
    Alert,
    AlertManager,
    AlertSeverity,
    AlertStatus,
    HealthStatus,
    MonitoringSystem,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2025, 1, 15, 10, 30, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> AlertManager:
    return AlertManager(clock=clock)


def test_raise_alert_returns_the_alert_and_logs_it(manager: AlertManager,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="otelprod.alerts"):
        alert = manager.raise_alert(title="High Error Rate",
                                    message="Error rate exceeded 5% threshold",
                                    severity=AlertSeverity.WARNING, component="api_server")
    assert isinstance(alert, Alert)
    assert (alert.title, alert.severity, alert.component, alert.status, alert.occurrences) == (
        "High Error Rate", AlertSeverity.WARNING, "api_server", AlertStatus.FIRING, 1)
    assert manager.get_active_alerts() == [alert]
    [record] = [r for r in caplog.records if r.name == "otelprod.alerts"]
    assert record.levelno == logging.WARNING
    assert "High Error Rate" in record.getMessage()
    assert getattr(record, "alert.severity") == "warning"
    assert getattr(record, "alert.component") == "api_server"
    assert getattr(record, "alert.id") == alert.id


@pytest.mark.parametrize("severity,level", [
    (AlertSeverity.INFO, logging.INFO), (AlertSeverity.WARNING, logging.WARNING),
    ("error", logging.ERROR), ("CRITICAL", logging.CRITICAL)])
def test_severity_maps_onto_the_log_level(manager: AlertManager, caplog: pytest.LogCaptureFixture,
                                          severity: AlertSeverity | str, level: int) -> None:
    with caplog.at_level(logging.DEBUG, logger="otelprod.alerts"):
        manager.raise_alert("disk", "full", severity, "host")
    assert [r.levelno for r in caplog.records if r.name == "otelprod.alerts"] == [level]


def test_repeats_while_active_are_one_alert_with_occurrences(
        manager: AlertManager, clock: FakeClock, telemetry,
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="otelprod.alerts"):
        first = manager.raise_alert("Queue backlog", "1000 items", "warning", "dedup-worker")
        clock.advance(30)
        again = manager.raise_alert("Queue backlog", "1500 items", "warning", "dedup-worker")
        clock.advance(30)
        third = manager.raise_alert("Queue backlog", "", "warning", "dedup-worker")
    assert first is again is third
    assert first.occurrences == 3
    assert first.first_seen == dt.datetime(2025, 1, 15, 10, 30, tzinfo=dt.timezone.utc)
    assert first.last_seen - first.first_seen == dt.timedelta(seconds=60)
    assert first.message == "1500 items"  # an empty message keeps the last one
    assert len(manager.get_active_alerts()) == 1
    # one log record and one count for the alert, not one per occurrence
    assert len([r for r in caplog.records if r.name == "otelprod.alerts"]) == 1
    raised = [p.value for a, p in telemetry.metrics()[semconv.METRIC_ALERTS_RAISED]
              if a[semconv.ALERT_COMPONENT] == "dedup-worker"]
    assert raised == [1]


def test_different_labels_or_components_are_different_alerts(manager: AlertManager) -> None:
    a = manager.raise_alert("Slow", "", "warning", "db", {"replica": "1"})
    b = manager.raise_alert("Slow", "", "warning", "db", {"replica": "2"})
    c = manager.raise_alert("Slow", "", "warning", "cache")
    assert len({a.id, b.id, c.id}) == 3
    assert manager.raise_alert("Slow", "", "warning", "db", {"replica": 1}) is a


def test_a_repeat_with_a_higher_severity_escalates(manager: AlertManager,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="otelprod.alerts"):
        alert = manager.raise_alert("Latency", "p99 2s", "warning", "api")
        manager.raise_alert("Latency", "p99 9s", "critical", "api")
        manager.raise_alert("Latency", "p99 3s", "warning", "api")  # never de-escalates
    assert alert.severity is AlertSeverity.CRITICAL
    levels = [r.levelno for r in caplog.records if r.name == "otelprod.alerts"]
    assert levels == [logging.WARNING, logging.CRITICAL]


def test_resolve_moves_the_alert_to_the_history(manager: AlertManager, clock: FakeClock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    alert = manager.raise_alert("Down", "", "error", "payments")
    clock.advance(5)
    with caplog.at_level(logging.INFO, logger="otelprod.alerts"):
        assert manager.resolve_alert(alert.id) is alert
    assert alert.status is AlertStatus.RESOLVED and alert.resolved
    assert alert.resolved_at == clock.now
    assert manager.get_active_alerts() == []
    assert manager.get_alert_history() == [alert]
    assert manager.get_alert(alert.id) is alert
    assert any("resolved" in r.getMessage() for r in caplog.records)
    assert manager.resolve_alert(alert.id) is None  # already resolved
    assert manager.resolve_alert("no-such-id") is None
    again = manager.raise_alert("Down", "", "error", "payments")
    assert again.id != alert.id and again.occurrences == 1


def test_history_is_bounded_newest_first(clock: FakeClock) -> None:
    manager = AlertManager(history_size=3, clock=clock)
    for n in range(5):
        manager.resolve_alert(manager.raise_alert(f"alert {n}", "", "info", "c").id)
    assert [a.title for a in manager.get_alert_history()] == ["alert 4", "alert 3", "alert 2"]
    assert [a.title for a in manager.get_alert_history(limit=1)] == ["alert 4"]


def test_active_alerts_are_bounded_too(clock: FakeClock) -> None:
    manager = AlertManager(max_active=2, clock=clock)
    first = manager.raise_alert("a", "", "info", "c")
    clock.advance(1)
    manager.raise_alert("b", "", "info", "c")
    clock.advance(1)
    manager.raise_alert("c", "", "info", "c")
    assert [a.title for a in manager.get_active_alerts()] == ["b", "c"]
    assert first.resolved and manager.get_alert_history() == [first]


def test_active_gauge_counts_and_drops_to_zero(manager: AlertManager, telemetry) -> None:
    a = manager.raise_alert("x", "", "warning", "gauge-comp")
    manager.raise_alert("y", "", "warning", "gauge-comp")
    manager.raise_alert("z", "", "critical", "gauge-comp")

    def active() -> dict[str, int]:
        return {attrs[semconv.ALERT_SEVERITY]: p.value
                for attrs, p in telemetry.metrics()[semconv.METRIC_ALERTS_ACTIVE]
                if attrs[semconv.ALERT_COMPONENT] == "gauge-comp"}

    assert active() == {"warning": 2, "critical": 1}
    manager.resolve_alert(a.id)
    for alert in manager.get_active_alerts(severity="critical"):
        manager.resolve_alert(alert.id)
    assert active() == {"warning": 1, "critical": 0}


def test_filters_and_summary(manager: AlertManager) -> None:
    manager.raise_alert("a", "", "warning", "api")
    manager.raise_alert("b", "", "critical", "db")
    assert [a.title for a in manager.get_active_alerts(component="db")] == ["b"]
    assert [a.title for a in manager.get_active_alerts(severity=AlertSeverity.WARNING)] == ["a"]
    summary = manager.summary()
    assert summary["active_count"] == 2
    assert summary["by_severity"] == {"info": 0, "warning": 1, "error": 0, "critical": 1}


def test_bad_input_is_refused_clearly(manager: AlertManager) -> None:
    with pytest.raises(ValueError, match=r"severity: expected .*info, warning, error, critical"
                                         r".*got str 'urgent'"):
        manager.raise_alert("t", "m", "urgent", "c")
    with pytest.raises(TypeError, match="title: expected a non-empty str, got str ''"):
        manager.raise_alert("", "m")
    with pytest.raises(TypeError, match="labels: expected a mapping"):
        manager.raise_alert("t", "m", labels=["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="component"):
        manager.raise_alert("t", "m", component=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history_size"):
        AlertManager(history_size=0)


def test_a_failing_notifier_never_reaches_the_caller(manager: AlertManager) -> None:
    heard: list[tuple[str, str]] = []

    class Broken:
        def notify(self, alert: Alert) -> None:
            raise RuntimeError("notifier down")

    class Recording:
        def notify(self, alert: Alert) -> None:
            heard.append((alert.title, alert.status.value))

    manager.add_notifier(Broken())
    manager.add_notifier(Recording())
    alert = manager.raise_alert("n", "", "error", "c")
    manager.raise_alert("n", "", "error", "c")  # a repeat is not news
    manager.resolve_alert(alert.id)
    assert heard == [("n", "firing"), ("n", "resolved")]
    with pytest.raises(TypeError, match="notify"):
        manager.add_notifier(object())  # type: ignore[arg-type]


# --- automatic alerts ------------------------------------------------------------------------
@pytest.fixture
def system() -> Iterator[MonitoringSystem]:
    system = MonitoringSystem()
    system.start(system_metrics=False, builtin_checks=False, background_checks=False)
    yield system
    system.stop()


def test_a_check_turning_unhealthy_or_degraded_raises_and_recovery_resolves(
        system: MonitoringSystem) -> None:
    state = {"db": HealthStatus.HEALTHY, "cache": HealthStatus.HEALTHY}
    system.health_checker.register_check("db", lambda: (state["db"], "db says so"))
    system.health_checker.register_check("cache", lambda: state["cache"], critical=False)
    system.health_checker.run_all()
    assert system.alert_manager.get_active_alerts() == []

    state.update(db=HealthStatus.UNHEALTHY, cache=HealthStatus.DEGRADED)
    system.health_checker.run_all()
    alerts = {a.component: a for a in system.alert_manager.get_active_alerts()}
    assert alerts["db"].severity is AlertSeverity.CRITICAL  # a critical check
    assert alerts["db"].message == "db says so"
    assert alerts["db"].labels == {semconv.HEALTH_CHECK_NAME: "db"}
    assert alerts["cache"].severity is AlertSeverity.WARNING

    state["cache"] = HealthStatus.UNHEALTHY  # same alert, escalated
    system.health_checker.run_all()
    assert alerts["cache"].severity is AlertSeverity.ERROR
    assert len(system.alert_manager.get_active_alerts()) == 2

    state.update(db=HealthStatus.HEALTHY, cache=HealthStatus.HEALTHY)
    system.health_checker.run_all()
    assert system.alert_manager.get_active_alerts() == []
    assert {a.component for a in system.alert_manager.get_alert_history()} == {"db", "cache"}


def test_a_breaker_opening_raises_and_closing_resolves(system: MonitoringSystem) -> None:
    name = "alerts-test-breaker"
    breaker = circuit_breaker(name, CircuitBreakerConfig(failure_threshold=2, timeout=60))
    try:
        def fail() -> None:
            raise ConnectionError("down")

        for _ in range(2):
            with pytest.raises(ConnectionError):
                breaker.call(fail)
        assert breaker.state == semconv.CircuitBreakerState.OPEN
        [alert] = system.alert_manager.get_active_alerts(component=name)
        assert alert.severity is AlertSeverity.ERROR
        assert alert.labels == {semconv.CIRCUITBREAKER_NAME: name}
        error_handler.reset_circuit_breaker(name)
        assert system.alert_manager.get_active_alerts(component=name) == []
        assert system.alert_manager.get_alert_history()[0] is alert
    finally:
        unregister_circuit_breaker(name)


def test_a_critical_error_raises_an_alert_and_repeats_dedup(system: MonitoringSystem) -> None:
    for _ in range(2):
        error_handler.handle_error(ValueError("ledger out of balance"), context="payments",
                                   severity=ErrorSeverity.CRITICAL)
    error_handler.handle_error(ValueError("minor"), context="payments",
                               severity=ErrorSeverity.HIGH)
    [alert] = system.alert_manager.get_active_alerts()
    assert (alert.severity, alert.component, alert.occurrences) == (
        AlertSeverity.CRITICAL, "payments", 2)
    assert "ledger out of balance" in alert.message
    assert alert.labels == {semconv.ERROR_TYPE: "ValueError"}


def test_stop_unwires_the_listeners() -> None:
    system = MonitoringSystem()
    system.start(system_metrics=False, builtin_checks=False, background_checks=False)
    system.start()  # idempotent
    system.stop()
    error_handler.handle_error(ValueError("after stop"), context="x",
                               severity=ErrorSeverity.CRITICAL)
    assert system.alert_manager.get_active_alerts() == []
    with pytest.raises(KeyError):
        get_circuit_breaker("never-registered")
