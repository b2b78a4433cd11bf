"""Every metric a dashboard or alert rule queries is one the library really emits.

The demo workload (``otelprod.demo.run_demo``, every feature) and requests to a
FastAPI and a Flask app (through the instrumentations init() activates, under
the stable HTTP conventions) run in a child
interpreter under ``otelprod.init()`` with an in-memory metric reader; each
instrument it recorded is translated the way Prometheus's OTLP receiver names
it (``tests/stack_helpers.prometheus_names``). A PromQL selector may then only
use those names, the span-metrics connector's (derived from the collector's
configuration), and only labels the metric carries. So renaming an instrument,
its unit or an attribute fails here instead of silently emptying a panel.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import python_env, run_python
from tests.stack_helpers import (
    COLLECTOR_FILE,
    REPO,
    PromQuery,
    load_yaml,
    prometheus_label,
    prometheus_names,
    prometheus_queries,
    selectors,
    substitute_variables,
)

#: the child: in-memory SDK providers first, so init() reuses them (and starts every
#: feature, system metrics included), then the whole demo, then one collection
_CHILD = r"""
import json, sys
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
trace.set_tracer_provider(TracerProvider())
_logs.set_logger_provider(LoggerProvider())

import otelprod
from otelprod.demo import SCENES, run_demo

class Out:
    def step(self, message):
        print(message, file=sys.stderr, flush=True)

# The spool gauge reports the exporters alive when the reader collects; the demo's are freed
# by the cyclic garbage collector, whenever it happens to run: not before the collection.
import gc
gc.disable()
otelprod.init("otelprod-stack-check", environment="test")
run_demo(Out())

# web requests through the instrumentations init() activated (stable HTTP conventions)
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask

def fail():
    raise RuntimeError("failing on purpose")

api = FastAPI()
api.get("/items/{item_id}")(lambda item_id: {"id": item_id})
api.get("/fail")(fail)
client = TestClient(api, raise_server_exceptions=False)
assert [client.get(p).status_code for p in ("/items/1", "/fail")] == [200, 500]
web = Flask("web")
web.get("/items/<int:item_id>")(lambda item_id: {"id": item_id})
assert web.test_client().get("/items/1").status_code == 200
data = reader.get_metrics_data()
otelprod.shutdown(timeout=5)
out = []
for rm in data.resource_metrics:
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            points = list(metric.data.data_points)
            kind = type(metric.data).__name__
            out.append({
                "name": metric.name, "unit": metric.unit or "", "scope": sm.scope.name,
                "kind": {"Sum": "sum", "Gauge": "gauge", "Histogram": "histogram",
                         "ExponentialHistogram": "exponential_histogram"}[kind],
                "monotonic": getattr(metric.data, "is_monotonic", None),
                "attributes": sorted({k for p in points for k in p.attributes}),
            })
print("@@METRICS@@" + json.dumps({"scenes": SCENES, "metrics": out}))
"""


@dataclass
class Emitted:
    """Prometheus series names the library emits, and the labels each carries."""

    scenes: list[str]
    instruments: list[dict[str, Any]]
    labels: dict[str, set[str]] = field(default_factory=dict)

    def add(self, names: set[str], labels: set[str]) -> None:
        for name in names:
            self.labels.setdefault(name, set()).update(labels)


def resource_labels() -> set[str]:
    """Labels every OTLP series gets in Prometheus: job, instance and the promoted resource."""
    config = load_yaml(REPO / "prometheus" / "prometheus.yml")
    promoted = config.get("otlp", {}).get("promote_resource_attributes", [])
    return {"job", "instance"} | {prometheus_label(a) for a in promoted}


def span_metrics() -> dict[str, set[str]]:
    """What the collector's spanmetrics connector produces, as Prometheus names them."""
    connector = load_yaml(COLLECTOR_FILE)["connectors"]["spanmetrics"]
    namespace = connector.get("namespace", "traces.span.metrics")
    unit = connector.get("histogram", {}).get("unit", "ms")
    labels = {"service_name", "span_name", "span_kind", "status_code", "collector_instance_id"}
    labels |= {prometheus_label(d["name"]) for d in connector.get("dimensions", [])}
    out = {n: set(labels) for n in prometheus_names(f"{namespace}.calls", "", "sum", True)}
    for name in prometheus_names(f"{namespace}.duration", unit, "histogram"):
        out[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return out


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> Emitted:
    tmp = tmp_path_factory.mktemp("stack-demo")
    env = python_env(
        OTELPROD_SPOOL_DIR=str(tmp / "spool"),
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # never used: providers are reused
        HOME=str(tmp),
    )
    result = run_python(_CHILD, env=env, cwd=tmp, timeout=240)
    marker = [line for line in result.stdout.splitlines() if line.startswith("@@METRICS@@")]
    if result.returncode != 0 or not marker:
        pytest.fail(f"the demo workload failed (exit {result.returncode}):\n"
                    f"{result.stderr[-4000:]}\n{result.stdout[-2000:]}")
    report = json.loads(marker[0].removeprefix("@@METRICS@@"))
    out = Emitted(report["scenes"], report["metrics"])
    for m in out.instruments:
        names = prometheus_names(m["name"], m["unit"], m["kind"], m["monotonic"])
        for name in names:
            extra = {"le"} if name.endswith("_bucket") else set()
            out.add({name}, {prometheus_label(a) for a in m["attributes"]} | extra)
    return out


def allowed_names(emitted: Emitted) -> dict[str, set[str]]:
    allowed = {name: set(labels) for name, labels in emitted.labels.items()}
    for name, labels in span_metrics().items():
        allowed.setdefault(name, set()).update(labels)
    return allowed


def unknown_metrics(queries: list[tuple[PromQuery, dict[str, str]]],
                    allowed: dict[str, set[str]]) -> dict[str, list[str]]:
    """Metric names not in ``allowed`` -> where the dashboards and rules use them."""
    problems: dict[str, list[str]] = {}
    for query, values in queries:
        for sel in selectors(substitute_variables(query.expr, values),
                             allow_nameless=query.variable):
            if sel.metric and sel.metric not in allowed:
                places = problems.setdefault(sel.metric, [])
                if query.where not in places:
                    places.append(query.where)
    return problems


def describe(problems: dict[str, list[str]], allowed: dict[str, set[str]]) -> str:
    lines = []
    for metric, places in sorted(problems.items()):
        close = difflib.get_close_matches(metric, list(allowed), n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        lines.append(f"{metric}{hint}\n      used by: " + "\n               ".join(places))
    return "\n  ".join(lines)


def unknown_labels(queries: list[tuple[PromQuery, dict[str, str]]],
                   allowed: dict[str, set[str]]) -> list[str]:
    """One line per matcher on a label the selected metric never carries."""
    resource = resource_labels()
    problems = []
    for query, values in queries:
        for sel in selectors(substitute_variables(query.expr, values),
                             allow_nameless=query.variable):
            known = resource | allowed.get(sel.metric, set()) if sel.metric else resource
            for lbl in sel.labels:
                if lbl not in known:
                    problems.append(f"{query.where}: {sel.metric or '{…}'} has no label {lbl} "
                                    f"(it has: {', '.join(sorted(known - resource)) or 'none'})")
    return problems


def test_the_demo_emits_otelprod_metrics(emitted: Emitted) -> None:
    scopes = {m["scope"] for m in emitted.instruments}
    assert "otelprod" in scopes, f"no instrument under the otelprod scope: {scopes}"
    assert emitted.labels, "the demo recorded no metric"


def test_every_queried_metric_is_emitted(emitted: Emitted) -> None:
    queries = prometheus_queries()
    allowed = allowed_names(emitted)
    problems = unknown_metrics(queries, allowed)
    assert not problems, (
        f"{len(problems)} metric(s) queried that the demo workload ({', '.join(emitted.scenes)}) "
        f"never emits:\n  {describe(problems, allowed)}")


def test_every_matched_label_exists_on_its_metric(emitted: Emitted) -> None:
    allowed = allowed_names(emitted)
    queries = [(q, v) for q, v in prometheus_queries()
               if not unknown_metrics([(q, v)], allowed)]  # names are the other test's job
    problems = unknown_labels(queries, allowed)
    assert not problems, "\n  ".join(["matchers on labels the metric does not carry:", *problems])


def test_a_renamed_instrument_is_caught(emitted: Emitted) -> None:
    """Drop one name the dashboards use from the emitted set: the check must name it."""
    allowed = allowed_names(emitted)
    queries = prometheus_queries()
    used = {sel.metric for q, v in queries
            for sel in selectors(substitute_variables(q.expr, v), allow_nameless=q.variable)}
    victim = min(used & set(allowed), default="traces_span_metrics_calls_total")
    reduced = {k: v for k, v in allowed.items() if k != victim}
    assert victim in unknown_metrics(queries, reduced)
    Queries = list[tuple[PromQuery, dict[str, str]]]
    renamed: Queries = [(PromQuery("synthetic", f'rate({victim}_x{{service_name="x"}}[5m])'), {})]
    assert unknown_metrics(renamed, allowed)
    relabelled: Queries = [(PromQuery("synthetic", f'{victim}{{no_such_label="x"}}'), {})]
    assert unknown_labels(relabelled, allowed)


def test_the_http_metrics_the_dashboards_query_are_the_stable_ones(emitted: Emitted) -> None:
    duration = emitted.labels.get("http_server_request_duration_seconds_bucket", set())
    assert {"http_route", "http_response_status_code", "http_request_method", "le"} <= duration
    assert "http_server_duration_milliseconds_bucket" not in emitted.labels  # the old name
    used = {sel.metric for q, v in prometheus_queries()
            for sel in selectors(substitute_variables(q.expr, v), allow_nameless=q.variable)}
    assert {"http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_count"} <= used


def test_span_metric_names_follow_the_collector_config() -> None:
    names = set(span_metrics())
    assert names == {"traces_span_metrics_calls_total",
                     "traces_span_metrics_duration_seconds_bucket",
                     "traces_span_metrics_duration_seconds_sum",
                     "traces_span_metrics_duration_seconds_count"}
    used = {sel.metric for q, v in prometheus_queries()
            for sel in selectors(substitute_variables(q.expr, v), allow_nameless=q.variable)}
    assert {"traces_span_metrics_calls_total",
            "traces_span_metrics_duration_seconds_bucket"} <= used

