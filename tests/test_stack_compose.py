"""docker-compose.yml, checked without a Docker engine.

The Compose Specification's JSON schema is the authority (Debian's
docker-compose 1.29 rejects fields newer than itself); on top of it: images
pinned, mounted files present, ports the configs listen on, health checks
and start-up ordering that a `docker compose up -d` can rely on.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from tests.stack_helpers import COLLECTOR_FILE, COMPOSE_FILE, REPO, load_yaml, schema


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(load_yaml(COMPOSE_FILE))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def test_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema("compose-spec.json"))
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)


def test_the_schema_check_has_teeth(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "bad": {"image": 3, "ports": "x"}}}
    assert list(jsonschema.Draft7Validator(schema("compose-spec.json")).iter_errors(broken))


def test_the_stack_has_its_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"collector", "jaeger", "prometheus", "loki", "grafana"} <= set(services)


_PINNED = re.compile(r"^[\w.\-/]+:(?P<tag>[\w][\w.\-]*)(@sha256:[0-9a-f]{64})?$")


@pytest.mark.parametrize("image", ["busybox", "redis:latest", "grafana/grafana:latest",
                                   "prom/prometheus:v3", "grafana/loki:3", "x:${TAG}"])
def test_pin_check_rejects_floating_tags(image: str) -> None:
    assert not _pinned(image)


def _pinned(image: str) -> bool:
    match = _PINNED.match(image)
    if match is None:
        return False
    tag = match["tag"]
    # an exact version: at least major.minor.patch, never a moving alias
    return tag not in {"latest", "stable", "main", "edge"} and bool(
        re.match(r"^v?\d+\.\d+\.\d+", tag))


def test_images_are_pinned_to_exact_versions(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        assert "image" in svc, f"service {name}: builds locally; the stack uses released images"
        assert _pinned(svc["image"]), (
            f"service {name}: image {svc['image']!r} is not pinned to an exact version")


def test_pinned_versions_are_the_supported_ones(services: dict[str, dict[str, Any]]) -> None:
    def version(service: str, image: str) -> tuple[int, ...]:
        repo, _, tag = services[service]["image"].partition(":")
        assert repo == image, f"service {service}: expected image {image}, got {repo}"
        return tuple(int(p) for p in re.findall(r"\d+", tag)[:3])

    assert version("collector", "otel/opentelemetry-collector-contrib")[:1] == (0,)
    jaeger = version("jaeger", "jaegertracing/jaeger")
    # 2.x up to 2.20: Grafana's Jaeger datasource needs the query API later versions drop
    assert (2, 0, 0) <= jaeger <= (2, 20, 99), f"Jaeger {jaeger}: need 2.x, at most 2.20"
    assert version("prometheus", "prom/prometheus")[0] == 3
    assert version("loki", "grafana/loki")[0] == 3
    assert version("grafana", "grafana/grafana")[0] >= 11


def _bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for vol in svc.get("volumes", []):
        if isinstance(vol, str):
            source, _, rest = vol.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = vol.get("source", ""), vol["target"]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def test_mounted_paths_exist_in_the_repo(services: dict[str, dict[str, Any]]) -> None:
    mounts = [(name, src, dst) for name, svc in services.items() for src, dst in _bind_mounts(svc)]
    assert mounts, "no bind mounts: the configs never reach the containers"
    for name, source, target in mounts:
        assert not source.startswith("/"), f"service {name}: absolute host path {source}"
        path = (REPO / source).resolve()
        assert path.is_relative_to(REPO), f"service {name}: {source} leaves the repository"
        assert path.exists(), f"service {name}: mounts {source} -> {target}, which does not exist"


def test_named_volumes_are_declared_and_hold_the_data(compose: dict[str, Any],
                                                      services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in declared, f"service {name}: volume {source} is not declared"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"
    targets = {name: {(v.split(":")[1] if isinstance(v, str) else v["target"])
                      for v in svc.get("volumes", [])} for name, svc in services.items()}
    # data that must outlive a container: on named volumes, not in the container's layer
    assert "/prometheus" in targets["prometheus"]
    assert "/loki" in targets["loki"]
    assert "/var/lib/grafana" in targets["grafana"]
    assert "/badger" in targets["jaeger"]
    assert "/var/lib/otelcol/file_storage" in targets["collector"]


def _container_ports(svc: dict[str, Any]) -> set[int]:
    ports = set()
    for port in svc.get("ports", []):
        if isinstance(port, dict):
            ports.add(int(port["target"]))
        else:
            ports.add(int(str(port).split(":")[-1].split("/")[0]))
    return ports


def test_published_ports(services: dict[str, dict[str, Any]]) -> None:
    assert _container_ports(services["collector"]) == {4317, 4318, 13133}
    assert 16686 in _container_ports(services["jaeger"])
    assert 9090 in _container_ports(services["prometheus"])
    assert 3100 in _container_ports(services["loki"])
    assert 3000 in _container_ports(services["grafana"])


def test_collector_ports_are_the_ones_its_config_listens_on(
        services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(COLLECTOR_FILE)
    listening = {int(p["endpoint"].rsplit(":", 1)[1])
                 for p in config["receivers"]["otlp"]["protocols"].values()}
    listening.add(int(config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]))
    assert _container_ports(services["collector"]) == listening


def test_ports_are_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    # nothing in the stack authenticates: keep it off the network unless the user opts in
    for name, svc in services.items():
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"service {name}: port {port} is not on 127.0.0.1"


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        if svc.get("restart") == "no":  # one-shot init
            continue
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"service {name}: no health check"
        assert "disable" not in check, f"service {name}: health check disabled"


def test_start_up_order_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    """The collector starts once its backends answer; Grafana once its datasources do."""
    def waits_for(service: str) -> dict[str, str]:
        deps = services[service].get("depends_on", {})
        assert isinstance(deps, dict), f"{service}: depends_on without conditions"
        return {dep: spec["condition"] for dep, spec in deps.items()}

    collector = waits_for("collector")
    for backend in ("jaeger", "prometheus", "loki"):
        assert collector.get(backend) == "service_healthy", (backend, collector)
    grafana = waits_for("grafana")
    for backend in ("jaeger", "prometheus", "loki"):
        assert grafana.get(backend) == "service_healthy", (backend, grafana)
    for name in services:
        for dep, condition in (services[name].get("depends_on") or {}).items():
            assert dep in services, f"service {name} depends on unknown service {dep}"
            if condition["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}'s health check"


def test_prometheus_receives_otlp(services: dict[str, dict[str, Any]]) -> None:
    command = services["prometheus"]["command"]
    assert "--web.enable-otlp-receiver" in command
    assert "--enable-feature=exemplar-storage" in command  # exemplars link metrics to traces


def test_grafana_gets_provisioning_and_dashboards(services: dict[str, dict[str, Any]]) -> None:
    mounts = dict(_bind_mounts(services["grafana"]))
    assert mounts.get("./grafana/provisioning") == "/etc/grafana/provisioning"
    provider = load_yaml(REPO / "grafana" / "provisioning" / "dashboards" / "otelprod.yaml")
    path = provider["providers"][0]["options"]["path"]
    assert mounts.get("./grafana/dashboards") == path, (
        f"the dashboard provider reads {path}, but grafana/dashboards is mounted elsewhere")
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/")
    assert (REPO / "grafana" / "dashboards" / home.rsplit("/", 1)[1]).is_file()
