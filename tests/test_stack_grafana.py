"""Grafana provisioning: datasources, dashboards and alert rules, checked offline.

Dashboards validate against the Grafana dashboard JSON schema, every panel's
datasource is one that is provisioned, every query parses with the variables
substituted, alert rules validate against the alerting schema, and the
committed files are exactly what ``grafana/generate.py`` produces.
(Whether the *metric names* exist is tests/test_stack_metric_names.py.)
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from tests.stack_helpers import (
    COMPOSE_FILE,
    DASHBOARD_PROVIDERS_DIR,
    DATASOURCES_DIR,
    GRAFANA,
    alert_groups,
    dashboard_files,
    dashboard_variables,
    datasources,
    iter_panels,
    load_dashboard,
    load_yaml,
    prometheus_queries,
    schema,
    selectors,
    substitute_variables,
)

#: panel types that show something other than query results
QUERYLESS_PANELS = {"row", "text", "alertlist", "dashlist", "news"}
BUILTIN_DATASOURCES = {"-- Grafana --", "grafana", "-- Dashboard --", "-- Mixed --"}
EXPRESSION_UID = "__expr__"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("otelprod_grafana_generate",
                                                  GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboards() -> dict[Path, dict[str, Any]]:
    files = dashboard_files()
    assert files, "no dashboards in grafana/dashboards"
    return {path: load_dashboard(path) for path in files}


@pytest.fixture(scope="module")
def uids() -> dict[str, str]:
    return {d["uid"]: d["type"] for d in datasources()}


# --- the generator ---------------------------------------------------------------------------

def test_committed_files_are_the_generators_output() -> None:
    rendered = _generator().render()
    assert {p.name for p in rendered} >= {p.name for p in dashboard_files()}, (
        "a dashboard in grafana/dashboards is not generated: add it to grafana/generate.py")
    for path, content in rendered.items():
        assert path.is_file(), f"{path} missing: run `python grafana/generate.py`"
        assert path.read_text(encoding="utf-8") == content, (
            f"{path.name} differs from grafana/generate.py's output: edit the generator, then run "
            "`python grafana/generate.py`")


def test_generator_check_mode_reports_stale_files(tmp_path: Path, monkeypatch: Any,
                                                  capsys: Any) -> None:
    gen = _generator()
    monkeypatch.setattr(gen, "DASHBOARDS", tmp_path / "dashboards")
    monkeypatch.setattr(gen, "ALERT_RULES", tmp_path / "rules.yaml")
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1  # nothing written yet: everything is stale
    assert not (tmp_path / "rules.yaml").exists()
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert "stale" in capsys.readouterr().out


# --- datasources -----------------------------------------------------------------------------

def test_datasource_uids_and_names_are_unique() -> None:
    sources = datasources()
    assert {d["type"] for d in sources} >= {"prometheus", "jaeger", "loki"}
    for key in ("uid", "name"):
        counts = Counter(d[key] for d in sources)
        assert all(n == 1 for n in counts.values()), f"duplicate datasource {key}: {counts}"
    assert sum(bool(d.get("isDefault")) for d in sources) == 1


def test_datasources_point_at_the_compose_services() -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    for ds in datasources():
        match = re.fullmatch(r"http://([\w-]+):(\d+)/?", ds["url"])
        assert match, f"datasource {ds['name']}: url {ds['url']!r}"
        host, port = match[1], int(match[2])
        assert host in services, f"datasource {ds['name']}: {host} is no compose service"
        published = {int(str(p).split(":")[-1]) for p in services[host].get("ports", [])}
        assert port in published, f"datasource {ds['name']}: {host} does not serve port {port}"


def test_signals_are_correlated(uids: dict[str, str]) -> None:
    by_type = {d["type"]: d for d in datasources()}
    prom, jaeger, loki = by_type["prometheus"], by_type["jaeger"], by_type["loki"]
    # metrics -> traces: exemplars carry the trace id
    dests = prom["jsonData"]["exemplarTraceIdDestinations"]
    assert any(d["name"] == "trace_id" and uids.get(d["datasourceUid"]) == "jaeger" for d in dests)
    # logs -> traces: OTLP log records keep trace_id as structured metadata
    derived = loki["jsonData"]["derivedFields"]
    assert any(f["matcherType"] == "label" and f["matcherRegex"] == "trace_id"
               and uids.get(f["datasourceUid"]) == "jaeger" for f in derived)
    # traces -> logs and metrics
    to_logs = jaeger["jsonData"]["tracesToLogsV2"]
    assert uids.get(to_logs["datasourceUid"]) == "loki"
    assert "trace_id" in to_logs["query"] and "__span.traceId" in to_logs["query"]
    assert uids.get(jaeger["jsonData"]["tracesToMetrics"]["datasourceUid"]) == "prometheus"


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in _strings(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) else []


_LONE_DOLLAR = re.compile(r"(?<!\$)\$(?!\$)")


def test_provisioning_files_escape_dollars() -> None:
    """Grafana replaces $NAME in provisioning files with an environment variable (usually
    empty): a Grafana template variable must be written $$."""
    for path in sorted(DATASOURCES_DIR.glob("*.y*ml")) + sorted(DASHBOARD_PROVIDERS_DIR.glob("*")):
        for where, value in _strings(load_yaml(path)):
            assert not _LONE_DOLLAR.search(value.replace("$$", "")), f"{path.name}{where}: {value}"
    for group in alert_groups():
        for rule in group["rules"]:
            # annotations are the one field Grafana leaves alone (templates use $labels there)
            checked = {k: v for k, v in rule.items() if k != "annotations"}
            for where, value in _strings(checked):
                assert not _LONE_DOLLAR.search(value.replace("$$", "")), (
                    f"rule {rule['title']}{where}: {value}")


# --- dashboards ------------------------------------------------------------------------------

def test_dashboards_validate_against_the_schema(dashboards: dict[Path, dict[str, Any]]) -> None:
    validator = jsonschema.Draft7Validator(schema("grafana-dashboard.jsonschema.json"))
    for path, dash in dashboards.items():
        errors = list(validator.iter_errors(dash))
        assert not errors, f"{path.name}: " + "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors[:10])


def test_the_dashboard_schema_check_has_teeth(dashboards: dict[Path, dict[str, Any]]) -> None:
    dash = next(iter(dashboards.values()))
    validator = jsonschema.Draft7Validator(schema("grafana-dashboard.jsonschema.json"))
    assert list(validator.iter_errors({**dash, "panels": [{"title": "no type"}]}))
    assert list(validator.iter_errors({k: v for k, v in dash.items() if k != "schemaVersion"}))


def test_dashboards_have_unique_uids_and_titles(dashboards: dict[Path, dict[str, Any]]) -> None:
    for key in ("uid", "title"):
        values = [d.get(key) for d in dashboards.values()]
        assert all(values), f"a dashboard has no {key}"
        assert len(set(values)) == len(values), f"duplicate dashboard {key}: {values}"
    for path, dash in dashboards.items():
        assert 8 <= len(dash["uid"]) <= 40, f"{path.name}: uid {dash['uid']!r} (8-40 characters)"
        assert isinstance(dash.get("schemaVersion"), int), f"{path.name}: no schemaVersion"


def test_the_three_dashboards_exist(dashboards: dict[Path, dict[str, Any]]) -> None:
    titles = " | ".join(d["title"] for d in dashboards.values())
    for wanted in ("Service overview", "Resilience", "Health and system"):
        assert wanted in titles


def test_every_dashboard_filters_by_service_and_instance(
        dashboards: dict[Path, dict[str, Any]], uids: dict[str, str]) -> None:
    for path, dash in dashboards.items():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert {"service", "instance"} <= set(variables), f"{path.name}: {set(variables)}"
        for var in variables.values():
            if "datasource" in var:
                assert var["datasource"]["uid"] in uids, f"{path.name}: variable {var['name']}"


def test_panel_datasources_resolve(dashboards: dict[Path, dict[str, Any]],
                                   uids: dict[str, str]) -> None:
    for path, dash in dashboards.items():
        for panel in iter_panels(dash):
            where = f"{path.name} panel {panel.get('title')!r}"
            targets = panel.get("targets", [])
            if not targets:
                assert panel["type"] in QUERYLESS_PANELS, f"{where}: no queries"
                continue
            uid = (panel.get("datasource") or {}).get("uid")
            assert uid in uids, f"{where}: datasource {uid!r} is not provisioned"
            assert panel["datasource"].get("type") == uids[uid], f"{where}: datasource type"
            for t in targets:
                tuid = (t.get("datasource") or panel["datasource"]).get("uid")
                assert tuid in uids, f"{where}: target datasource {tuid!r} is not provisioned"
        for annotation in dash["annotations"]["list"]:
            uid = annotation.get("datasource", {}).get("uid")
            assert uid in uids or uid in BUILTIN_DATASOURCES, f"{path.name}: annotation {uid!r}"


def test_panels_have_unique_ids_and_do_not_overlap(
        dashboards: dict[Path, dict[str, Any]]) -> None:
    for path, dash in dashboards.items():
        panels = list(iter_panels(dash))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        cells: dict[tuple[int, int], str] = {}
        for panel in panels:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, f"{path.name}: {panel['title']} is wider than the grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, (
                        f"{path.name}: {panel['title']!r} overlaps {cells[(x, y)]!r}")
                    cells[(x, y)] = panel["title"]


def test_alert_list_panels_show_the_provisioned_folder(
        dashboards: dict[Path, dict[str, Any]]) -> None:
    provider = load_yaml(DASHBOARD_PROVIDERS_DIR / "otelprod.yaml")["providers"][0]
    folders = {g["folder"] for g in alert_groups()}
    lists = [p for d in dashboards.values() for p in iter_panels(d) if p["type"] == "alertlist"]
    assert lists, "the health dashboard shows no active alerts"
    for panel in lists:
        assert panel["options"]["folder"]["uid"] == provider["folderUid"]
        assert panel["options"]["folder"]["title"] in folders


def test_every_prometheus_query_parses() -> None:
    queries = prometheus_queries()
    assert len(queries) > 40
    for query, values in queries:
        expr = substitute_variables(query.expr, values)
        try:
            found = selectors(expr, allow_nameless=query.variable)
        except ValueError as exc:
            pytest.fail(f"{query.where}: {exc}\n  query: {expr}")
        assert found, f"{query.where}: selects no metric: {expr}"


def test_loki_queries_use_defined_variables_and_labels(
        dashboards: dict[Path, dict[str, Any]], uids: dict[str, str]) -> None:
    count = 0
    for path, dash in dashboards.items():
        values = dashboard_variables(dash)
        for panel in iter_panels(dash):
            for target in panel.get("targets", []):
                ds = (target.get("datasource") or panel.get("datasource") or {}).get("uid", "")
                if uids.get(ds) != "loki":
                    continue
                count += 1
                expr = substitute_variables(target["expr"], values)  # unknown variable: KeyError
                stream = re.match(r"\{([^}]*)\}", expr)
                assert stream, f"{path.name} {panel['title']}: no stream selector: {expr}"
                # Loki indexes OTLP resource attributes with dots as underscores
                assert 'service_name=~".+"' in stream[1], expr
                assert expr.count("(") == expr.count(")"), expr
    assert count, "no log panel"


# --- alert rules -----------------------------------------------------------------------------

def test_alert_rules_validate_against_the_alerting_schema(uids: dict[str, str]) -> None:
    """The provisioning file format, mapped onto the API model the schema describes."""
    definitions = schema("grafana-alerting.jsonschema.json")
    rule_schema = {"$ref": "#/definitions/Rule", "definitions": definitions["definitions"]}
    validator = jsonschema.Draft7Validator(rule_schema)
    provider = load_yaml(DASHBOARD_PROVIDERS_DIR / "otelprod.yaml")["providers"][0]
    groups = alert_groups()
    assert groups, "no alert rules provisioned"
    for group in groups:
        assert group["folder"] == provider["folder"]
        for rule in group["rules"]:
            api = {**rule, "orgID": group["orgId"], "folderUID": provider["folderUid"],
                   "ruleGroup": group["name"]}
            errors = list(validator.iter_errors(api))
            assert not errors, f"rule {rule['title']}: " + "; ".join(e.message for e in errors)


def test_alert_rules_are_consistent(uids: dict[str, str],
                                    dashboards: dict[Path, dict[str, Any]]) -> None:
    rules = [r for g in alert_groups() for r in g["rules"]]
    for key in ("uid", "title"):
        values = [r[key] for r in rules]
        assert len(values) == len(set(values)), f"duplicate rule {key}"
    by_uid = {d["uid"]: d for d in dashboards.values()}
    for rule in rules:
        refs = {q["refId"] for q in rule["data"]}
        assert rule["condition"] in refs, f"{rule['title']}: condition {rule['condition']}"
        for query in rule["data"]:
            uid = query["datasourceUid"]
            assert uid in uids or uid == EXPRESSION_UID, f"{rule['title']}: datasource {uid}"
            if uid == EXPRESSION_UID:
                assert query["model"]["expression"] in refs - {query["refId"]}
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
        dash = by_uid.get(rule["annotations"].get("__dashboardUid__"))
        assert dash, f"{rule['title']}: links to no provisioned dashboard"
        panel_ids = {str(p["id"]) for p in iter_panels(dash)}
        assert rule["annotations"].get("__panelId__") in panel_ids, rule["title"]


def test_the_required_alerts_exist() -> None:
    titles = " | ".join(r["title"].lower() for g in alert_groups() for r in g["rules"])
    for wanted in ("breaker open", "health check", "dead-letter", "error rate", "dropping"):
        assert wanted in titles, f"no alert rule about {wanted!r}: {titles}"


#: dashboard uid -> Prometheus series it must query (what the issue asks each to show)
REQUIRED = {
    "otelprod-service-overview": {
        "traces_span_metrics_calls_total", "traces_span_metrics_duration_seconds_bucket",
        "operation_duration_seconds_bucket", "operation_duration_seconds_count"},
    "otelprod-resilience": {
        "retry_attempts_total", "circuitbreaker_state", "circuitbreaker_transitions_total",
        "ratelimiter_requests_total", "ratelimiter_wait_duration_seconds_bucket",
        "backpressure_queue_size", "backpressure_rejections_total", "deadletter_queue_size",
        "fallback_invocations_total"},
    "otelprod-health-system": {
        "health_check_status", "alerts_active", "system_cpu_utilization_ratio",
        "system_memory_utilization_ratio", "system_disk_io_bytes_total",
        "system_network_io_bytes_total", "process_cpu_utilization_ratio",
        "process_memory_usage_bytes", "otelprod_export_spool_size_bytes",
        "otelprod_export_dropped_total"},
}


def test_each_dashboard_shows_what_it_is_for(dashboards: dict[Path, dict[str, Any]],
                                             uids: dict[str, str]) -> None:
    for dash in dashboards.values():
        values = dashboard_variables(dash)
        used = set()
        for panel in iter_panels(dash):
            for target in panel.get("targets", []):
                if uids.get((target.get("datasource") or {}).get("uid", "")) == "prometheus":
                    used |= {s.metric for s in selectors(substitute_variables(target["expr"],
                                                                             values))}
        missing = REQUIRED.get(dash["uid"], set()) - used
        assert not missing, f"{dash['title']} does not show {sorted(missing)}"
    assert set(REQUIRED) <= {d["uid"] for d in dashboards.values()}
