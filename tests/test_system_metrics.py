"""System and process metrics, in process and end to end over OTLP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otelprod import semconv
from otelprod.monitoring import monitoring_system
from otelprod.monitoring._system_metrics import FROM_INSTRUMENTATION, FROM_PSUTIL
from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver

#: name -> (unit, attribute keys every point carries)
CONTRACT: dict[str, tuple[str, set[str]]] = {
    semconv.METRIC_SYSTEM_CPU_UTILIZATION: ("1", {"cpu.mode", "cpu.logical_number"}),
    semconv.METRIC_SYSTEM_MEMORY_USAGE: ("By", {"system.memory.state"}),
    semconv.METRIC_SYSTEM_MEMORY_UTILIZATION: ("1", {"system.memory.state"}),
    semconv.METRIC_SYSTEM_DISK_IO: ("By", {"system.device", "disk.io.direction"}),
    semconv.METRIC_SYSTEM_NETWORK_IO: ("By", {"network.interface.name", "network.io.direction"}),
    semconv.METRIC_SYSTEM_FILESYSTEM_UTILIZATION: (
        "1", {"system.device", "system.filesystem.mountpoint", "system.filesystem.type",
              "system.filesystem.mode"}),
    semconv.METRIC_PROCESS_CPU_UTILIZATION: ("1", set()),
    semconv.METRIC_PROCESS_MEMORY_USAGE: ("By", set()),
    semconv.METRIC_PROCESS_THREAD_COUNT: ("{thread}", set()),
    semconv.METRIC_PROCESS_OPEN_FILE_DESCRIPTOR_COUNT: ("{file_descriptor}", set()),
}


@pytest.fixture
def system_metrics(telemetry) -> Iterator[Any]:
    monitoring_system.system_metrics.start()
    yield monitoring_system.system_metrics
    monitoring_system.system_metrics.stop()


def _collect_until(telemetry, names: set[str]) -> dict[str, list]:
    """Collect until every name has points (CPU utilization needs some elapsed ticks)."""
    deadline = time.monotonic() + 30
    while True:
        metrics = telemetry.metrics()
        if names <= set(metrics) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)


def test_every_contracted_metric_is_reported(system_metrics, telemetry) -> None:
    assert set(CONTRACT) == set(FROM_PSUTIL) | set(FROM_INSTRUMENTATION)
    metrics = _collect_until(telemetry, set(CONTRACT))
    for name, (_unit, keys) in CONTRACT.items():
        assert metrics.get(name), f"{name} was not reported"
        for attrs, _point in metrics[name]:
            assert set(attrs) == keys, (name, attrs)

    def values(name: str, **match: Any) -> list[float]:
        return [p.value for a, p in metrics[name] if all(a.get(k) == v for k, v in match.items())]

    for name in (semconv.METRIC_SYSTEM_CPU_UTILIZATION, semconv.METRIC_SYSTEM_MEMORY_UTILIZATION,
                 semconv.METRIC_SYSTEM_FILESYSTEM_UTILIZATION,
                 semconv.METRIC_PROCESS_CPU_UTILIZATION):
        assert all(0 <= v <= 1 for v in values(name)), name
    modes = {a["cpu.mode"] for a, _ in metrics[semconv.METRIC_SYSTEM_CPU_UTILIZATION]}
    assert {"user", "system", "idle"} <= modes
    # per logical CPU, the modes add up to the whole
    for cpu in {a["cpu.logical_number"] for a, _ in metrics[semconv.METRIC_SYSTEM_CPU_UTILIZATION]}:
        assert sum(values(semconv.METRIC_SYSTEM_CPU_UTILIZATION,
                          **{"cpu.logical_number": cpu})) == pytest.approx(1.0)
    assert values(semconv.METRIC_SYSTEM_MEMORY_USAGE, **{"system.memory.state": "used"})[0] > 0
    assert {a["network.io.direction"] for a, _ in metrics[semconv.METRIC_SYSTEM_NETWORK_IO]} == {
        "receive", "transmit"}
    assert values(semconv.METRIC_PROCESS_THREAD_COUNT)[0] >= 1
    assert values(semconv.METRIC_PROCESS_OPEN_FILE_DESCRIPTOR_COUNT)[0] >= 3
    assert values(semconv.METRIC_PROCESS_MEMORY_USAGE)[0] > 10 * 2**20


def test_stopped_system_metrics_report_nothing(system_metrics, telemetry) -> None:
    _collect_until(telemetry, {semconv.METRIC_SYSTEM_MEMORY_USAGE})
    system_metrics.stop()
    metrics = telemetry.metrics()
    assert not set(FROM_PSUTIL) & set(metrics)
    system_metrics.start()
    assert semconv.METRIC_SYSTEM_MEMORY_USAGE in telemetry.metrics()


def test_the_snapshot_is_json() -> None:
    snap = monitoring_system.system_metrics.snapshot()
    json.dumps(snap)
    assert {"cpu_percent", "cpu_count", "memory", "disk", "process"} <= set(snap)
    assert snap["process"]["threads"] >= 1 and 0 <= snap["memory"]["percent"] <= 100


def test_why_psutil_directly_the_instrumentation_still_emits_old_shapes() -> None:
    """Pins what the installed opentelemetry-instrumentation-system-metrics emits.

    If this fails after an upgrade, the instrumentation may have caught up with
    the conventions: then take those metrics from it instead of from psutil.
    """
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    class Probe(SystemMetricsInstrumentor):
        pass

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    config = {"system.memory.usage": ["used"], "system.network.io": ["receive"],
              "system.cpu.utilization": ["user"], "process.thread.count": None,
              "process.open_file_descriptor.count": None, "process.memory.usage": None}
    probe = Probe(config=config)
    probe.instrument(meter_provider=provider)
    try:
        time.sleep(0.05)
        data = reader.get_metrics_data()
        seen = {m.name: (m.unit, {k for p in m.data.data_points for k in p.attributes})
                for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    finally:
        probe.uninstrument()
        provider.shutdown()
    assert seen["system.memory.usage"][1] == {"state"}  # semconv: system.memory.state
    assert seen["system.network.io"][1] == {"device", "direction"}  # network.io.direction, …
    assert seen["process.thread.count"][0] in ("", None)  # semconv: {thread}
    assert "process.open_file_descriptor.count" in seen  # semconv: process.unix.file_…
    # what we do take from it is current
    assert seen["process.memory.usage"] == ("By", set())


E2E = """
import time
import otelprod
from otelprod.monitoring import monitoring_system, HealthStatus
from otelprod.error_handling import circuit_breaker, CircuitBreakerConfig

otelprod.init("monitoring-e2e")
monitoring_system.start()
monitoring_system.health_checker.register_check("e2e_db", lambda: (HealthStatus.DEGRADED, "lag"))
monitoring_system.health_checker.run_check("e2e_db")
breaker = circuit_breaker("e2e_breaker", CircuitBreakerConfig(failure_threshold=1))
try:
    breaker.call(lambda: 1 / 0)
except ZeroDivisionError:
    pass
assert breaker.state == "open"
time.sleep(1.5)
otelprod.shutdown(timeout=10)
"""


def test_health_breaker_and_system_gauges_reach_an_otlp_receiver() -> None:
    with OTLPReceiver() as receiver:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_METRIC_EXPORT_INTERVAL="300")
        result = run_python(E2E, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        metrics = receiver.metrics()

    def latest(name: str) -> dict[str, Any]:
        found = [m for m in metrics if m["name"] == name]
        assert found, f"{name} never reached the receiver"
        return found[-1]

    for name, (unit, _keys) in CONTRACT.items():
        assert latest(name)["unit"] == unit, name
    health = latest(semconv.METRIC_HEALTH_CHECK_STATUS)
    assert (health["unit"], health["kind"], health["scope"]) == ("{status}", "gauge", "otelprod")
    current = {p["attributes"][semconv.HEALTH_STATUS] for p in health["points"]
               if p["attributes"][semconv.HEALTH_CHECK_NAME] == "e2e_db" and p["value"] == 1}
    assert current == {"degraded"}
    duration = latest(semconv.METRIC_HEALTH_CHECK_DURATION)
    assert (duration["unit"], duration["kind"]) == ("s", "histogram")
    breaker = latest(semconv.METRIC_CIRCUITBREAKER_STATE)
    assert breaker["kind"] == "gauge"
    assert {p["attributes"][semconv.CIRCUITBREAKER_STATE]: p["value"] for p in breaker["points"]
            if p["attributes"][semconv.CIRCUITBREAKER_NAME] == "e2e_breaker"} == {
        "open": 1, "closed": 0, "half_open": 0}
    active = latest(semconv.METRIC_ALERTS_ACTIVE)
    assert active["unit"] == "{alert}"
    by_component = {p["attributes"][semconv.ALERT_COMPONENT]: p["value"] for p in active["points"]}
    assert by_component["e2e_breaker"] == 1 and by_component["e2e_db"] == 1
    assert latest(semconv.METRIC_ALERTS_RAISED)["unit"] == "{alert}"
