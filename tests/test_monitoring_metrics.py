"""The metrics facade: record / increment / set_gauge on cached OTel instruments."""

from __future__ import annotations

import pytest

from otelprod.monitoring import MetricsCollector, monitoring_system


@pytest.fixture
def facade() -> MetricsCollector:
    return MetricsCollector()


def test_the_three_kinds_reach_the_sdk(facade: MetricsCollector, telemetry) -> None:
    facade.record("facade.request.duration", 125.5, {"route": "/a"})
    facade.record("facade.request.duration", 74.5, {"route": "/a"})
    facade.increment("facade.requests")
    facade.increment("facade.requests", 4, {"route": "/b"})
    facade.set_gauge("facade.connections", 42)
    facade.set_gauge("facade.connections", 40)
    metrics = telemetry.metrics()

    [(attrs, hist)] = metrics["facade.request.duration"]
    assert attrs == {"route": "/a"} and hist.count == 2 and hist.sum == 200.0
    counts = {tuple(sorted(a.items())): p.value for a, p in metrics["facade.requests"]}
    assert counts == {(): 1, (("route", "/b"),): 4}
    [(_, gauge)] = metrics["facade.connections"]
    assert gauge.value == 40  # a synchronous gauge keeps the last value


def test_instruments_are_created_once(facade: MetricsCollector) -> None:
    facade.increment("facade.cached")
    first = facade._counters["facade.cached"]
    facade.increment("facade.cached", 2)
    assert facade._counters["facade.cached"] is first
    assert facade.instruments() == {"facade.cached": "counter"}


@pytest.mark.parametrize("name", ["", "1st_metric", "api requests", "metric!", "é", "a" * 256,
                                  "_leading"])
def test_invalid_names_are_refused_naming_the_name(facade: MetricsCollector, name: str) -> None:
    with pytest.raises(ValueError, match="not a valid OpenTelemetry instrument name") as info:
        facade.increment(name)
    assert repr(name) in str(info.value)
    assert facade.instruments() == {}


@pytest.mark.parametrize("name", ["a", "api_requests_total", "http.server.duration",
                                  "x-y/z", "A" * 255])
def test_valid_names_are_taken(facade: MetricsCollector, name: str) -> None:
    facade.record(name, 1.0)
    assert facade.instruments() == {name: "histogram"}


def test_one_name_cannot_be_two_kinds(facade: MetricsCollector) -> None:
    facade.increment("facade.kind")
    with pytest.raises(ValueError, match=r"'facade\.kind' is already a counter; it cannot also "
                                         r"be used as a gauge"):
        facade.set_gauge("facade.kind", 1)
    with pytest.raises(ValueError, match="already a counter"):
        facade.record("facade.kind", 1)


def test_bad_values_are_refused(facade: MetricsCollector) -> None:
    with pytest.raises(TypeError, match=r"metric 'facade.v': value must be an int or float, "
                                        r"got str '3'"):
        facade.record("facade.v", "3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got bool"):
        facade.increment("facade.c", True)
    with pytest.raises(ValueError, match=r"a counter only goes up.*got -1"):
        facade.increment("facade.c", -1)
    with pytest.raises(TypeError, match="expected a str, got int"):
        facade.set_gauge(7, 1)  # type: ignore[arg-type]


def test_the_seed_calls_work_on_the_shared_facade(telemetry) -> None:
    monitoring_system.metrics.record("api_request_duration", 125.5)
    monitoring_system.metrics.increment("api_requests_total")
    monitoring_system.metrics.set_gauge("active_connections", 42)
    metrics = telemetry.metrics()
    assert metrics["api_request_duration"][0][1].sum == 125.5
    assert metrics["api_requests_total"][0][1].value == 1
    assert metrics["active_connections"][0][1].value == 42
