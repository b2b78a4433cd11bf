"""Helpers for the stack tests: file loading, Prometheus naming, PromQL inspection.

The stack (``docker-compose.yml``, ``collector/``, ``grafana/``…) is checked
without a Docker engine, so these helpers re-derive offline what the running
services would do: how Prometheus's OTLP receiver names a metric, which metric
names a PromQL expression reads, what Grafana's variables expand to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "tests" / "data" / "schemas"
COMPOSE_FILE = REPO / "docker-compose.yml"
COLLECTOR_FILE = REPO / "collector" / "config.yaml"
GRAFANA = REPO / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES_DIR = GRAFANA / "provisioning" / "datasources"
DASHBOARD_PROVIDERS_DIR = GRAFANA / "provisioning" / "dashboards"
ALERTING_DIR = GRAFANA / "provisioning" / "alerting"


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def schema(name: str) -> dict[str, Any]:
    """A JSON schema from ``tests/data/schemas``; fails (never skips) when it is missing."""
    path = SCHEMAS / name
    if not path.is_file():
        pytest.fail(f"schema {name} not found at {path}: the stack tests validate against the "
                    "schemas of tests/data/schemas (see its SOURCES.md); restore that directory")
    return dict(json.loads(path.read_text(encoding="utf-8")))


# --- Prometheus's OTLP naming (prometheus/otlptranslator, UnderscoreEscapingWithSuffixes) ----

#: OTLP (UCUM) unit -> Prometheus unit word, as otlptranslator's unitMap has it.
UNIT_WORDS: dict[str, str] = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds",
    "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams",
    "Cel": "celsius", "Hz": "hertz", "1": "", "%": "percent",
}
#: the "per" part of a unit such as ``By/s``
PER_UNIT_WORDS: dict[str, str] = {
    "s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month",
    "y": "year",
}

KINDS = ("sum", "gauge", "histogram", "exponential_histogram", "summary")
_INVALID = re.compile(r"[^a-zA-Z0-9:]")


def _clean_unit(unit: str) -> str:
    return re.sub(r"_+", "_", _INVALID.sub("_", unit)).removeprefix("_")


def _unit_suffixes(unit: str) -> tuple[str, str]:
    main_part, _, per_part = unit.partition("/")
    main_part, per_part = main_part.strip(), per_part.strip()
    main = ""
    if main_part and not any(c in main_part for c in "{}"):
        main = UNIT_WORDS.get(main_part, main_part)
    per = ""
    if per_part and not any(c in per_part for c in "{}"):
        per = PER_UNIT_WORDS.get(per_part, per_part)
    return main, f"per_{per}" if per else ""


def prometheus_base_name(name: str, unit: str, kind: str, monotonic: bool | None = None) -> str:
    """The metric family name Prometheus gives an OTLP metric.

    Mirrors ``normalizeName`` in prometheus/otlptranslator: dots and other
    invalid characters split the name into words, the unit adds words
    (``s`` -> ``seconds``, ``By/s`` -> ``bytes_per_second``; annotations such as
    ``{request}`` add nothing), monotonic sums end in ``_total`` and gauges
    with unit ``1`` in ``_ratio``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {type(kind).__name__} {kind!r}")
    tokens = [t for t in _INVALID.split(name) if t]
    main, per = _unit_suffixes(unit)
    main, per = _clean_unit(main), _clean_unit(per)
    if main in tokens:
        main = ""
    per = "" if per == "per_" else per.removesuffix("_")
    if per in tokens:
        per = ""
    if per:
        main = main.removesuffix("_")
    tokens += [t for t in (main, per) if t]
    if kind == "sum" and monotonic:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    out = "_".join(tokens)
    if not out:
        raise ValueError(f"name: {name!r} has no character Prometheus keeps")
    return f"_{out}" if out[:1].isdigit() else out


def prometheus_names(name: str, unit: str, kind: str, monotonic: bool | None = None) -> set[str]:
    """Every series name a PromQL query can use for one OTLP metric."""
    base = prometheus_base_name(name, unit, kind, monotonic)
    if kind == "histogram":  # classic histogram: one series per bucket, plus sum and count
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    if kind == "summary":
        return {base, f"{base}_sum", f"{base}_count"}
    return {base}


def prometheus_label(attribute: str) -> str:
    """An attribute key as a Prometheus label name (invalid characters become ``_``)."""
    label = re.sub(r"[^a-zA-Z0-9_]", "_", attribute)
    return f"key_{label}" if label[:1].isdigit() else label


# --- Grafana's variable expansion and PromQL inspection ------------------------------------

#: What Grafana puts in place of its built-in and dashboard variables before a
#: query reaches Prometheus: values that keep the expression's shape.
GRAFANA_SUBSTITUTIONS: dict[str, str] = {
    "__rate_interval": "4m", "__interval": "1m", "__range": "1h", "__range_s": "3600",
    "__range_ms": "3600000", "__interval_ms": "60000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


def substitute_variables(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace ``$var``, ``${var}``, ``${var:fmt}`` and ``[[var]]`` the way Grafana would.

    Unknown variables are an error: a query that names a variable the
    dashboard does not define never works.
    """
    table = {**GRAFANA_SUBSTITUTIONS, **(values or {})}

    def repl(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in table:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return table[name]

    return _VARIABLE.sub(repl, expr)


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: tuple[str, ...]


def selectors(expr: str, *, allow_nameless: bool = False) -> list[Selector]:
    """Metric names and matcher label names of every vector selector in ``expr``.

    Raises ``ValueError`` when ``expr`` does not parse, or selects metrics by
    a ``__name__`` regex (which no name check could follow), or has a selector
    without a metric name (``{job="x"}``) unless ``allow_nameless`` (variable
    queries: ``label_values({service_name=~"$service"}, service_instance_id)``);
    those come back with ``metric=""``.
    """
    import promql_parser

    ast = promql_parser.parse(expr)
    found: list[Selector] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            labels = []
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    if str(m.op) != "MatchOp.Equal":
                        raise ValueError(f"__name__ regex in {expr!r}: name metrics explicitly")
                    name = m.value
                else:
                    labels.append(m.name)
            if not name and not allow_nameless:
                raise ValueError(f"selector without a metric name in {expr!r}")
            found.append(Selector(name or "", tuple(labels)))
        return True

    promql_parser.walk(ast, visit)
    return found


# --- walking the Grafana files ------------------------------------------------------------

def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside a (collapsed) row


def datasources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(DATASOURCES_DIR.glob("*.y*ml")):
        out.extend(load_yaml(path).get("datasources", []))
    return out


def alert_groups() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(ALERTING_DIR.glob("*.y*ml")):
        out.extend(load_yaml(path).get("groups", []))
    return out


def unescape_provisioning(value: str) -> str:
    """Grafana expands ``$VAR`` from the environment in provisioning files; ``$$`` is a ``$``."""
    return value.replace("$$", "$")


@dataclass(frozen=True)
class PromQuery:
    where: str  # human-readable location, for failure messages
    expr: str  # as written, variables not yet substituted
    variable: bool = False  # a variable's label_values() selector: may omit the metric name


def dashboard_variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """Representative values for a dashboard's own variables."""
    values = {}
    for var in dashboard.get("templating", {}).get("list", []):
        values[var["name"]] = var.get("allValue") or ".+"
    return values


def prometheus_queries() -> list[tuple[PromQuery, dict[str, str]]]:
    """Every PromQL expression in dashboards, variables, alert rules and datasources."""
    uids = {d["uid"]: d["type"] for d in datasources()}
    out: list[tuple[PromQuery, dict[str, str]]] = []
    for path in dashboard_files():
        dash = load_dashboard(path)
        values = dashboard_variables(dash)
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query" and uids.get(var["datasource"]["uid"]) == "prometheus":
                query = var["query"]
                match = re.fullmatch(r"label_values\((?:(.*),\s*)?(\w+)\)", query.strip())
                if match is None:
                    raise AssertionError(f"{path.name}: variable {var['name']}: unsupported "
                                         f"query {query!r} (expected label_values(...))")
                if match.group(1):
                    out.append((PromQuery(f"{path.name} variable ${var['name']}",
                                          match.group(1), variable=True), values))
        for panel in iter_panels(dash):
            for target in panel.get("targets", []):
                ds = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
                if uids.get(ds) == "prometheus" and target.get("expr"):
                    out.append((PromQuery(f"{path.name} panel {panel.get('title')!r} "
                                          f"ref {target.get('refId')}", target["expr"]), values))
    for group in alert_groups():
        for rule in group.get("rules", []):
            for query in rule.get("data", []):
                if uids.get(query.get("datasourceUid")) == "prometheus":
                    out.append((PromQuery(f"alert rule {rule.get('title')!r} ref "
                                          f"{query.get('refId')}", query["model"]["expr"]), {}))
    for ds in datasources():
        links = (ds.get("jsonData") or {}).get("tracesToMetrics") or {}
        if uids.get(links.get("datasourceUid")) == "prometheus":
            for q in links.get("queries", []):
                expr = unescape_provisioning(q["query"]).replace("$__tags", 'service_name="x"')
                out.append((PromQuery(f"datasource {ds['name']} tracesToMetrics "
                                      f"{q.get('name')!r}", expr), {}))
    return out
