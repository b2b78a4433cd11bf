"""collector/config.yaml, checked the way the collector would check it at start-up, and more.

Every component a pipeline names is defined and every defined one is used;
connectors join two pipelines; extensions are declared, enabled and the ones
the exporters refer to exist; receivers listen on all interfaces; and each
exporter points at a service and port the compose file really has.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from otelprod import semconv
from tests.stack_helpers import COLLECTOR_FILE, COMPOSE_FILE, REPO, load_yaml

SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return dict(load_yaml(COLLECTOR_FILE))


@pytest.fixture(scope="module")
def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return dict(config["service"]["pipelines"])


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def signal(pipeline_id: str) -> str:
    return pipeline_id.split("/", 1)[0]


def test_every_component_a_pipeline_names_is_defined(
        config: dict[str, Any], pipelines: dict[str, dict[str, list[str]]]) -> None:
    connectors = set(config.get("connectors") or {})
    for pid, pipeline in pipelines.items():
        assert signal(pid) in {"traces", "metrics", "logs", "profiles"}, pid
        assert pipeline.get("receivers"), f"pipeline {pid}: no receivers"
        assert pipeline.get("exporters"), f"pipeline {pid}: no exporters"
        for name in pipeline["receivers"]:
            assert name in (config.get("receivers") or {}) or name in connectors, (
                f"pipeline {pid}: receiver {name} is not defined")
        for name in pipeline.get("processors", []):
            assert name in (config.get("processors") or {}), (
                f"pipeline {pid}: processor {name} is not defined")
        for name in pipeline["exporters"]:
            assert name in (config.get("exporters") or {}) or name in connectors, (
                f"pipeline {pid}: exporter {name} is not defined")


def test_every_defined_component_is_used(
        config: dict[str, Any], pipelines: dict[str, dict[str, list[str]]]) -> None:
    used: dict[str, set[str]] = {k: set() for k in ("receivers", "processors", "exporters")}
    for pipeline in pipelines.values():
        for kind in used:
            used[kind].update(pipeline.get(kind, []))
    connectors = set(config.get("connectors") or {})
    assert set(config.get("receivers") or {}) == used["receivers"] - connectors
    assert set(config.get("processors") or {}) == used["processors"]
    assert set(config.get("exporters") or {}) == used["exporters"] - connectors


def test_connectors_join_an_exporting_and_a_receiving_pipeline(
        config: dict[str, Any], pipelines: dict[str, dict[str, list[str]]]) -> None:
    connectors = config.get("connectors") or {}
    assert "spanmetrics" in connectors, "RED metrics for every service come from spanmetrics"
    #: connector type -> (the signal it consumes, the signal it produces)
    signals = {"spanmetrics": ("traces", "metrics"), "count": (None, "metrics"),
               "forward": (None, None), "routing": (None, None)}
    for name in connectors:
        as_exporter = [pid for pid, p in pipelines.items() if name in p["exporters"]]
        as_receiver = [pid for pid, p in pipelines.items() if name in p["receivers"]]
        assert as_exporter, f"connector {name} is no pipeline's exporter"
        assert as_receiver, f"connector {name} is no pipeline's receiver"
        assert not set(as_exporter) & set(as_receiver), f"connector {name} loops in a pipeline"
        consumes, produces = signals.get(component_type(name), (None, None))
        if consumes:
            assert {signal(p) for p in as_exporter} == {consumes}, (name, as_exporter)
        if produces:
            assert {signal(p) for p in as_receiver} == {produces}, (name, as_receiver)


def _referenced_extensions(node: Any, extensions: set[str]) -> set[str]:
    """Extension ids named anywhere in a component's settings (storage, auth, …)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"storage", "authenticator"} and isinstance(value, str):
                found.add(value)
            found |= _referenced_extensions(value, extensions)
    elif isinstance(node, list):
        for item in node:
            found |= _referenced_extensions(item, extensions)
    return found


def test_extensions_are_declared_enabled_and_used(config: dict[str, Any]) -> None:
    defined = set(config.get("extensions") or {})
    enabled = list(config["service"].get("extensions") or [])
    assert len(enabled) == len(set(enabled)), f"an extension is enabled twice: {enabled}"
    assert set(enabled) <= defined, f"enabled but not defined: {set(enabled) - defined}"
    assert defined <= set(enabled), f"defined but never enabled: {defined - set(enabled)}"
    referenced = set()
    for section in ("receivers", "processors", "exporters", "connectors"):
        referenced |= _referenced_extensions(config.get(section) or {}, defined)
    assert referenced, "no component uses an extension: the persistent queue is missing"
    assert referenced <= set(enabled), f"referenced but not enabled: {referenced - set(enabled)}"
    assert "health_check" in enabled


def test_memory_limiter_runs_first_in_every_pipeline(
        config: dict[str, Any], pipelines: dict[str, dict[str, list[str]]]) -> None:
    receivers = set(config.get("receivers") or {})
    for pid, pipeline in pipelines.items():
        processors = pipeline.get("processors", [])
        assert processors and component_type(processors[0]) == "memory_limiter", (
            f"pipeline {pid}: processors {processors} do not start with memory_limiter")
        if set(pipeline["receivers"]) & receivers:  # data from outside: fill in the resource
            assert any(component_type(p) == "resourcedetection" for p in processors), pid


SAMPLERS = {"tail_sampling", "probabilistic_sampler"}


def _upstream(pid: str, pipelines: dict[str, dict[str, list[str]]]) -> set[str]:
    """The pipelines whose data reaches ``pid`` through connectors, ``pid`` included."""
    seen = {pid}
    todo = [pid]
    while todo:
        current = todo.pop()
        for other, pipeline in pipelines.items():
            if other not in seen and set(pipeline["exporters"]) & set(
                    pipelines[current]["receivers"]):
                seen.add(other)
                todo.append(other)
    return seen


def _samplers_on_the_way(pid: str, pipelines: dict[str, dict[str, list[str]]]) -> set[str]:
    return {p for up in _upstream(pid, pipelines) for p in pipelines[up].get("processors", [])
            if component_type(p) in SAMPLERS}


def test_spanmetrics_see_every_span_and_jaeger_gets_tail_sampled_traces(
        config: dict[str, Any], pipelines: dict[str, dict[str, list[str]]]) -> None:
    to_spanmetrics = [pid for pid, p in pipelines.items() if "spanmetrics" in p["exporters"]]
    to_jaeger = [pid for pid, p in pipelines.items()
                 if any(e.endswith("/jaeger") for e in p["exporters"])]
    assert to_spanmetrics and to_jaeger
    for pid in to_spanmetrics:  # RED metrics must count all traffic, not the sampled share
        assert not _samplers_on_the_way(pid, pipelines), (
            f"pipeline {pid} feeds spanmetrics after sampling: "
            f"{_samplers_on_the_way(pid, pipelines)}")
    for pid in to_jaeger:
        assert _samplers_on_the_way(pid, pipelines) == {"tail_sampling"}, (
            f"pipeline {pid}: traces reach Jaeger without (or twice through) tail sampling")
        # fed from the same pipeline as spanmetrics, so both see the same spans
        assert _upstream(pid, pipelines) & set(to_spanmetrics), pid
    # every trace the collector receives reaches both
    for pid, pipeline in pipelines.items():
        if signal(pid) == "traces" and "otlp" in pipeline["receivers"]:
            assert pid in to_spanmetrics, pid
            assert any(pid in _upstream(j, pipelines) for j in to_jaeger), pid


def test_tail_sampling_keeps_errors_and_slow_traces_and_samples_the_rest(
        config: dict[str, Any]) -> None:
    sampling = config["processors"]["tail_sampling"]
    assert _seconds(sampling["decision_wait"]) >= 1
    assert sampling["num_traces"] > 0
    policies = {p["type"]: p for p in sampling["policies"]}
    assert len(policies) == len(sampling["policies"]) == 3, "one policy per kind, OR-ed"
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100
    # policies are OR-ed only at the top level: no and/composite that would narrow them
    assert not {"and", "composite"} & set(policies)


def _endpoints(node: Any, path: str = "") -> list[tuple[str, str]]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "endpoint" and isinstance(value, str):
                out.append((path, value))
            else:
                out += _endpoints(value, f"{path}.{key}" if path else str(key))
    return out


def test_receivers_and_health_check_bind_all_interfaces(config: dict[str, Any]) -> None:
    endpoints = _endpoints(config["receivers"], "receivers")
    endpoints += _endpoints(config["extensions"]["health_check"], "extensions.health_check")
    assert len(endpoints) >= 3
    for where, endpoint in endpoints:
        # inside a container, localhost (the collector's default) is unreachable from outside
        assert endpoint.startswith("0.0.0.0:"), f"{where}: {endpoint} does not bind 0.0.0.0"
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def _backend_ports() -> dict[str, int]:
    """Where each backend listens, read from its own configuration."""
    jaeger = load_yaml(REPO / "jaeger" / "config.yaml")
    loki = load_yaml(REPO / "loki" / "config.yaml")
    prometheus = load_yaml(COMPOSE_FILE)["services"]["prometheus"]
    listen = [a for a in prometheus.get("command", []) if a.startswith("--web.listen-address")]
    return {
        "jaeger": int(jaeger["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":")[1]),
        "loki": int(loki["server"]["http_listen_port"]),
        "prometheus": int(listen[0].rsplit(":", 1)[1]) if listen else 9090,
    }


def _exporter_target(exporter_id: str, settings: dict[str, Any]) -> tuple[str, int, str]:
    endpoint = settings["endpoint"]
    if component_type(exporter_id) in {"otlp", "otlp_grpc"} and "://" not in endpoint:
        host, _, port = endpoint.rpartition(":")
        return host, int(port), ""
    url = urlsplit(endpoint)
    assert url.hostname and url.port, f"exporter {exporter_id}: {endpoint} needs host and port"
    return url.hostname, url.port, url.path


def test_exporters_point_at_the_compose_services(
        config: dict[str, Any], pipelines: dict[str, dict[str, list[str]]]) -> None:
    services = set(load_yaml(COMPOSE_FILE)["services"])
    ports = _backend_ports()
    #: signal -> (backend service, URL path its OTLP endpoint lives under)
    expected = {"traces": ("jaeger", ""), "metrics": ("prometheus", "/api/v1/otlp"),
                "logs": ("loki", "/otlp")}
    for pid, pipeline in pipelines.items():
        exporters = [e for e in pipeline["exporters"] if e in config["exporters"]]
        downstream = [other for other in pipelines if pid in _upstream(other, pipelines)]
        assert any(e in config["exporters"] for d in downstream
                   for e in pipelines[d]["exporters"]), f"pipeline {pid} exports nowhere"
        for exporter_id in exporters:
            host, port, path = _exporter_target(exporter_id, config["exporters"][exporter_id])
            assert host in services, f"exporter {exporter_id}: host {host} is no compose service"
            backend, want_path = expected[signal(pid)]
            assert host == backend, f"pipeline {pid} sends to {host}, expected {backend}"
            assert port == ports[backend], (
                f"exporter {exporter_id}: port {port}, but {backend} listens on {ports[backend]}")
            assert path.rstrip("/") == want_path, (
                f"exporter {exporter_id}: path {path!r}; {backend} takes OTLP under {want_path!r}")


def test_exporters_batch_and_persist_their_queue(config: dict[str, Any]) -> None:
    storages = {k for k in config["extensions"] if component_type(k) == "file_storage"}
    assert storages, "no file_storage extension: queued data would not survive a restart"
    for exporter_id, settings in config["exporters"].items():
        queue = settings.get("sending_queue") or {}
        assert queue.get("enabled", True), f"exporter {exporter_id}: sending queue disabled"
        assert queue.get("storage") in storages, (
            f"exporter {exporter_id}: queue is not persisted (storage: {queue.get('storage')})")
        assert isinstance(queue.get("batch"), dict), f"exporter {exporter_id}: no batching"
        assert (settings.get("retry_on_failure") or {}).get("enabled", True)
    assert not any(component_type(p) == "batch" for p in config.get("processors") or {}), (
        "batching is the exporters' job here (sending_queue.batch), not a batch processor's")


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, f"unexpected duration {duration!r}"
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


def test_span_metrics_match_the_dashboards(config: dict[str, Any]) -> None:
    spanmetrics = config["connectors"]["spanmetrics"]
    # the dashboards and alert rules query traces_span_metrics_calls_total and
    # traces_span_metrics_duration_seconds_*: namespace and unit must produce exactly that
    assert spanmetrics.get("namespace") == "traces.span.metrics"
    assert spanmetrics["histogram"].get("unit") == "s"
    buckets = [_seconds(b) for b in spanmetrics["histogram"]["explicit"]["buckets"]]
    assert buckets == pytest.approx(list(semconv.DURATION_BUCKETS_S))
    assert spanmetrics.get("exemplars", {}).get("enabled") is True  # metric -> trace links


def test_compose_health_check_probes_the_health_check_extension(config: dict[str, Any]) -> None:
    port = config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]
    test = load_yaml(COMPOSE_FILE)["services"]["collector"]["healthcheck"]["test"]
    assert any(f":{port}/" in part for part in test), test
