"""Generate the stack's Grafana dashboards and alert rules from otelprod's names.

Run from the repository root after changing a dashboard or an instrument:

    python grafana/generate.py          # rewrite grafana/dashboards/*.json and the alert rules
    python grafana/generate.py --check  # exit 1 if the committed files are stale

Why generated: every query is built from the constants in ``otelprod.semconv``,
so a renamed instrument changes here in one place, and
``tests/test_stack_metric_names.py`` then proves each name is one the library
really emits (after Prometheus's OTLP translation: dots become underscores,
``_total`` on counters, ``_seconds``/``_bytes`` from the unit, ``_ratio`` on
unit-1 gauges, ``_bucket``/``_sum``/``_count`` on histograms).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from otelprod import semconv  # noqa: E402

DASHBOARDS = ROOT / "grafana" / "dashboards"
ALERT_RULES = ROOT / "grafana" / "provisioning" / "alerting" / "otelprod-rules.yaml"

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
SCHEMA_VERSION = 41  # Grafana 12.x
TAG = "otelprod"

#: every otelprod query filters on the resource, promoted to labels by Prometheus
SEL = 'service_name=~"$service", service_instance_id=~"$instance"'
#: span metrics carry service.name as a dimension; the instance is not one of theirs
SPAN_SEL = 'service_name=~"$service"'
RI = "$__rate_interval"
LEGEND = {"displayMode": "list", "placement": "bottom", "showLegend": True}

SPAN_CALLS = "traces_span_metrics_calls_total"
SPAN_DURATION = "traces_span_metrics_duration_seconds"
SPAN_ERROR = 'status_code="STATUS_CODE_ERROR"'


def prom(name: str) -> str:
    """An instrument's name as Prometheus spells it, before type and unit suffixes."""
    return name.replace(".", "_")


def label(attribute: str) -> str:
    return attribute.replace(".", "_")


# Prometheus names of otelprod's instruments (kind and unit as DESIGN.md fixes them)
RETRY_ATTEMPTS = prom(semconv.METRIC_RETRY_ATTEMPTS) + "_total"
# one-hot state gauges have units {state} / {status}: no suffix, as DESIGN.md names them
CB_STATE = prom(semconv.METRIC_CIRCUITBREAKER_STATE)  # unit {state}: no suffix
CB_CALLS = prom(semconv.METRIC_CIRCUITBREAKER_CALLS) + "_total"
CB_TRANSITIONS = prom(semconv.METRIC_CIRCUITBREAKER_TRANSITIONS) + "_total"
RL_REQUESTS = prom(semconv.METRIC_RATELIMITER_REQUESTS) + "_total"
RL_WAIT = prom(semconv.METRIC_RATELIMITER_WAIT_DURATION) + "_seconds"
RL_AVAILABLE = prom(semconv.METRIC_RATELIMITER_AVAILABLE)
BP_QUEUE = prom(semconv.METRIC_BACKPRESSURE_QUEUE_SIZE)
BP_REJECTIONS = prom(semconv.METRIC_BACKPRESSURE_REJECTIONS) + "_total"
DLQ_SIZE = prom(semconv.METRIC_DEADLETTER_QUEUE_SIZE)
DLQ_ENQUEUED = prom(semconv.METRIC_DEADLETTER_ENQUEUED) + "_total"
DLQ_REPLAYED = prom(semconv.METRIC_DEADLETTER_REPLAYED) + "_total"
FALLBACKS = prom(semconv.METRIC_FALLBACK_INVOCATIONS) + "_total"
ERRORS_HANDLED = prom(semconv.METRIC_ERRORS_HANDLED) + "_total"
HEALTH_STATUS = prom(semconv.METRIC_HEALTH_CHECK_STATUS)  # unit {status}: no suffix
HEALTH_DURATION = prom(semconv.METRIC_HEALTH_CHECK_DURATION) + "_seconds"
ALERTS_ACTIVE = prom(semconv.METRIC_ALERTS_ACTIVE)
ALERTS_RAISED = prom(semconv.METRIC_ALERTS_RAISED) + "_total"
OPERATION_DURATION = prom(semconv.METRIC_OPERATION_DURATION) + "_seconds"
CPU = prom(semconv.METRIC_SYSTEM_CPU_UTILIZATION) + "_ratio"
MEMORY_USAGE = prom(semconv.METRIC_SYSTEM_MEMORY_USAGE) + "_bytes"
MEMORY_UTILIZATION = prom(semconv.METRIC_SYSTEM_MEMORY_UTILIZATION) + "_ratio"
DISK_IO = prom(semconv.METRIC_SYSTEM_DISK_IO) + "_bytes_total"
NETWORK_IO = prom(semconv.METRIC_SYSTEM_NETWORK_IO) + "_bytes_total"
FILESYSTEM_UTILIZATION = prom(semconv.METRIC_SYSTEM_FILESYSTEM_UTILIZATION) + "_ratio"
PROCESS_CPU = prom(semconv.METRIC_PROCESS_CPU_UTILIZATION) + "_ratio"
PROCESS_MEMORY = prom(semconv.METRIC_PROCESS_MEMORY_USAGE) + "_bytes"
PROCESS_THREADS = prom(semconv.METRIC_PROCESS_THREAD_COUNT)
PROCESS_FDS = prom(semconv.METRIC_PROCESS_OPEN_FILE_DESCRIPTOR_COUNT)
HTTP_DURATION = prom(semconv.METRIC_HTTP_SERVER_REQUEST_DURATION) + "_seconds"
SPOOL_SIZE = prom(semconv.METRIC_EXPORT_SPOOL_SIZE) + "_bytes"
EXPORT_DROPPED = prom(semconv.METRIC_EXPORT_DROPPED) + "_total"
EXPORT_FAILURES = prom(semconv.METRIC_EXPORT_FAILURES) + "_total"

CB_NAME = label(semconv.CIRCUITBREAKER_NAME)
CB_STATE_LABEL = label(semconv.CIRCUITBREAKER_STATE)
ROUTE = label(semconv.HTTP_ROUTE)
HTTP_STATUS = label(semconv.HTTP_RESPONSE_STATUS_CODE)
HC_NAME = label(semconv.HEALTH_CHECK_NAME)
HC_STATUS = label(semconv.HEALTH_STATUS)
DLQ_NAME = label(semconv.DEADLETTER_QUEUE)
SIGNAL = label(semconv.SIGNAL)
REASON = label(semconv.REASON)
# attributes of the system metrics (semantic conventions)
CPU_IDLE = 'cpu_mode="idle"'
MEMORY_USED = 'system_memory_state="used"'


def weighted_state(metric: str, state_label: str, group: str, weights: dict[str, int]) -> str:
    """One number per ``group`` for a one-hot state gauge (1 = the current state).

    ``or`` keeps every weighted series, so it works whether the instrument
    reports the other states as 0 or leaves them out.
    """
    parts = [f'{metric}{{{SEL}, {state_label}="{state}"}} * {weight}'
             for state, weight in weights.items()]
    return f"max by ({group}) ({' or '.join(parts)})"


def quantiles(metric: str, sel: str, by: str, legend: str) -> list[dict[str, Any]]:
    by_le = f"le, {by}" if by else "le"
    return [
        target(f"histogram_quantile({q}, sum by ({by_le}) (rate({metric}_bucket{{{sel}}}[{RI}])))",
               f"p{round(q * 100)} {legend}".strip(), exemplar=True)
        for q in (0.5, 0.95, 0.99)
    ]


# --- panels --------------------------------------------------------------------------------

def target(expr: str, legend: str = "", *, exemplar: bool = False,
           instant: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"datasource": PROMETHEUS, "expr": expr,
                           "legendFormat": legend or "__auto",
                           "range": not instant, "instant": instant}
    if exemplar:
        out["exemplar"] = True
    return out


def field_config(unit: str = "short", *, mappings: list[Any] | None = None,
                 thresholds: list[tuple[float | None, str]] | None = None,
                 color: str = "palette-classic", custom: dict[str, Any] | None = None,
                 minimum: float | None = None, maximum: float | None = None) -> dict[str, Any]:
    steps = thresholds or [(None, "green")]
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": color},
        "thresholds": {"mode": "absolute",
                       "steps": [{"value": v, "color": c} for v, c in steps]},
    }
    if mappings:
        defaults["mappings"] = mappings
    if custom:
        defaults["custom"] = custom
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {"defaults": defaults, "overrides": []}


def timeseries(title: str, description: str, targets: list[dict[str, Any]], unit: str = "short",
               *, bars: bool = False, stack: bool = False, **fc: Any) -> dict[str, Any]:
    custom = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if bars else 10,
              "lineWidth": 1, "showPoints": "never", "spanNulls": True,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    return {"type": "timeseries", "title": title, "description": description,
            "datasource": PROMETHEUS, "targets": targets,
            "fieldConfig": field_config(unit, custom=custom, **fc),
            "options": {"legend": LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, description: str, expr: str, unit: str = "short",
         thresholds: list[tuple[float | None, str]] | None = None,
         legend: str = "") -> dict[str, Any]:
    return {"type": "stat", "title": title, "description": description,
            "datasource": PROMETHEUS, "targets": [target(expr, legend, instant=True)],
            "fieldConfig": field_config(unit, thresholds=thresholds, color="thresholds"),
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "none", "textMode": "auto",
                        "justifyMode": "auto", "orientation": "auto"}}


def state_timeline(title: str, description: str, expr: str, legend: str,
                   states: dict[int, tuple[str, str]]) -> dict[str, Any]:
    mappings = [{"type": "value", "options": {
        str(value): {"text": text, "color": color, "index": i}
        for i, (value, (text, color)) in enumerate(sorted(states.items()))}}]
    return {"type": "state-timeline", "title": title, "description": description,
            "datasource": PROMETHEUS, "targets": [target(expr, legend)],
            "fieldConfig": field_config("short", mappings=mappings, color="thresholds",
                                        custom={"fillOpacity": 80, "lineWidth": 0}),
            "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                        "alignValue": "center",
                        "legend": LEGEND}}


def logs(title: str, description: str, expr: str) -> dict[str, Any]:
    return {"type": "logs", "title": title, "description": description, "datasource": LOKI,
            "targets": [{"datasource": LOKI, "expr": expr, "queryType": "range"}],
            "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending",
                        "enableLogDetails": True, "prettifyLogMessage": False,
                        "dedupStrategy": "none"}}


def alert_list(title: str, description: str) -> dict[str, Any]:
    return {"type": "alertlist", "title": title, "description": description,
            "options": {"viewMode": "list", "groupMode": "default", "maxItems": 20,
                        "sortOrder": 1, "dashboardAlerts": False, "alertName": "",
                        "alertInstanceLabelFilter": "", "folder": {"uid": TAG, "title": TAG},
                        "stateFilter": {"firing": True, "pending": True, "noData": False,
                                        "normal": False, "error": True}}}


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


Section = tuple[str, list[tuple[dict[str, Any], int, int]]]


def layout(sections: list[Section]) -> list[dict[str, Any]]:
    """Rows of panels, each (panel, width, height), placed left to right on the 24-column grid."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, items in sections:
        header = row(title)
        header["gridPos"] = {"x": 0, "y": y, "w": 24, "h": 1}
        panels.append(header)
        y += 1
        x, line_height = 0, 0
        for panel, w, h in items:
            if x + w > 24:
                x, y, line_height = 0, y + line_height, 0
            panel["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
            panels.append(panel)
            x, line_height = x + w, max(line_height, h)
        y += line_height
    for n, panel in enumerate(panels, start=1):
        panel["id"] = n
        for i, query in enumerate(panel.get("targets", [])):
            query["refId"] = chr(ord("A") + i)
    return [_ordered(p) for p in panels]


def _ordered(panel: dict[str, Any]) -> dict[str, Any]:
    first = ("id", "type", "title", "description", "gridPos", "datasource")
    return {**{k: panel[k] for k in first if k in panel},
            **{k: v for k, v in panel.items() if k not in first}}


def variables() -> list[dict[str, Any]]:
    def query_var(name: str, text: str, query: str, all_value: str,
                  description: str) -> dict[str, Any]:
        return {"type": "query", "name": name, "label": text, "description": description,
                "datasource": PROMETHEUS, "query": query, "definition": query,
                "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "allValue": all_value,
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "options": []}

    return [
        query_var("service", "Service", "label_values(service_name)", ".+",
                  "service.name of the instrumented services"),
        query_var("instance", "Instance", 'label_values({service_name=~"$service"}, '
                  "service_instance_id)", ".*",
                  "service.instance.id: one per process, new in every forked worker"),
    ]


def dashboard(uid: str, title: str, description: str,
              sections: list[Section]) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": [TAG],
        "timezone": "browser", "editable": False, "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION, "version": 1,
        "links": [{"title": "otelprod dashboards", "type": "dashboards", "icon": "dashboard",
                   "tooltip": "", "tags": [TAG], "asDropdown": True, "targetBlank": False,
                   "includeVars": True, "keepTime": True}],
        "annotations": {"list": [{"builtIn": 1, "name": "Annotations & Alerts", "enable": True,
                                  "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "type": "dashboard",
                                  "datasource": {"type": "grafana", "uid": "-- Grafana --"}}]},
        "templating": {"list": variables()},
        "panels": layout(sections),
    }


# --- the dashboards ------------------------------------------------------------------------

def service_overview() -> dict[str, Any]:
    calls = f"rate({SPAN_CALLS}{{{SPAN_SEL}}}[{RI}])"
    errors = f"rate({SPAN_CALLS}{{{SPAN_SEL}, {SPAN_ERROR}}}[{RI}])"
    op = f"{OPERATION_DURATION}_count{{{SEL}}}"
    op_err = f'{OPERATION_DURATION}_count{{{SEL}, operation_result="error"}}'
    http = f"rate({HTTP_DURATION}_count{{{SEL}}}[{RI}])"
    http_5xx = f'rate({HTTP_DURATION}_count{{{SEL}, {HTTP_STATUS}=~"5.."}}[{RI}])'
    return dashboard(
        "otelprod-service-overview", "otelprod / Service overview",
        "Request rate, errors and latency of each service (from span metrics, "
        "http.server.request.duration per route and operation.duration), and its recent "
        "error logs.",
        [
            ("Requests (span metrics)", [
                (stat("Span rate", "Spans per second, every span the service ended "
                      "(spanmetrics connector).", f"sum({calls})", "reqps"), 6, 4),
                (stat("Error ratio", "Share of spans whose status is ERROR.",
                      f"sum({errors}) / sum({calls})", "percentunit",
                      [(None, "green"), (0.01, "orange"), (0.05, "red")]), 6, 4),
                (stat("p95 latency", "95th percentile of span duration.",
                      f"histogram_quantile(0.95, sum by (le) (rate({SPAN_DURATION}_bucket"
                      f"{{{SPAN_SEL}}}[{RI}])))", "s",
                      [(None, "green"), (0.5, "orange"), (1.0, "red")]), 6, 4),
                (stat("Services", "Services that sent spans in the range.",
                      f"count(count by (service_name) ({SPAN_CALLS}{{{SPAN_SEL}}}))"), 6, 4),
                (timeseries("Calls per second by span", "Rate of spans by service and span name.",
                            [target(f"sum by (service_name, span_name) ({calls})",
                                    "{{service_name}} {{span_name}}")], "reqps"), 12, 8),
                (timeseries("Errors per second by span", "Spans with status ERROR.",
                            [target(f"sum by (service_name, span_name) ({errors})",
                                    "{{service_name}} {{span_name}}")], "reqps"), 12, 8),
                (timeseries("Span latency", "Percentiles of span duration; exemplar dots open "
                            "the trace in Jaeger.",
                            quantiles(SPAN_DURATION, SPAN_SEL, "service_name", "{{service_name}}"),
                            "s"), 24, 8),
            ]),
            ("HTTP requests by route (http.server.request.duration)", [
                (timeseries("Requests per second by route", "Requests the service answered, "
                            "per http.route (web frameworks instrumented by init(); health "
                            "probes are left out).",
                            [target(f"sum by (service_name, {ROUTE}) ({http})",
                                    f"{{{{service_name}}}} {{{{{ROUTE}}}}}")], "reqps"), 8, 8),
                (timeseries("Error ratio by route", "Share of requests answered with a 5xx "
                            "status, per http.route.",
                            [target(f"sum by (service_name, {ROUTE}) ({http_5xx}) / "
                                    f"sum by (service_name, {ROUTE}) ({http})",
                                    f"{{{{service_name}}}} {{{{{ROUTE}}}}}")],
                            "percentunit", minimum=0), 8, 8),
                (timeseries("Latency p95 by route", "95th percentile of "
                            "http.server.request.duration per http.route; exemplar dots open "
                            "the trace in Jaeger.",
                            [target(f"histogram_quantile(0.95, sum by (le, service_name, "
                                    f"{ROUTE}) (rate({HTTP_DURATION}_bucket{{{SEL}}}[{RI}])))",
                                    f"{{{{service_name}}}} {{{{{ROUTE}}}}}", exemplar=True)],
                            "s"), 8, 8),
                (timeseries("HTTP latency p50 / p95 / p99", "All routes together.",
                            quantiles(HTTP_DURATION, SEL, "", ""), "s"), 12, 8),
                (timeseries("Requests per second by status", "Answered requests by "
                            "http.response.status_code.",
                            [target(f"sum by ({HTTP_STATUS}) ({http})",
                                    f"{{{{{HTTP_STATUS}}}}}")], "reqps", stack=True), 12, 8),
            ]),
            ("Operations (operation.duration)", [
                (timeseries("Operation latency p95", "95th percentile of operation.duration by "
                            "operation (structured logging's trace_request).",
                            [target(f"histogram_quantile(0.95, sum by (le, operation_name) "
                                    f"(rate({OPERATION_DURATION}_bucket{{{SEL}}}[{RI}])))",
                                    "{{operation_name}}", exemplar=True)], "s"), 12, 8),
                (timeseries("Operations per second", "Completed operations by result.",
                            [target(f"sum by (operation_name, operation_result) "
                                    f"(rate({op}[{RI}]))",
                                    "{{operation_name}} {{operation_result}}")], "ops",
                            stack=True), 12, 8),
                (timeseries("Operation error ratio", "Share of operations that ended in an error.",
                            [target(f"sum by (operation_name) (rate({op_err}[{RI}])) / "
                                    f"sum by (operation_name) (rate({op}[{RI}]))",
                                    "{{operation_name}}")], "percentunit", minimum=0), 12, 8),
                (timeseries("Operation latency p50 / p95 / p99", "All operations together.",
                            quantiles(OPERATION_DURATION, SEL, "", ""), "s"), 12, 8),
            ]),
            ("Logs", [
                (logs("Recent error logs", "Log records at ERROR or above; the trace_id field "
                      "links to the trace in Jaeger.",
                      '{service_name=~"$service", service_instance_id=~"$instance"} '
                      "| severity_number >= 17"), 24, 12),
            ]),
        ])


def resilience() -> dict[str, Any]:
    cb_state = weighted_state(CB_STATE, CB_STATE_LABEL, f"service_name, {CB_NAME}",
                              {"open": 2, "half_open": 1, "closed": 0})
    return dashboard(
        "otelprod-resilience", "otelprod / Resilience",
        "Retries, circuit breakers, rate limiters, backpressure, the dead-letter queue and "
        "fallbacks.",
        [
            ("Retries", [
                (timeseries("Retry attempts by result", "success: an attempt succeeded; retry: it "
                            "failed and another follows; exhausted: the last one failed.",
                            [target(f"sum by (retry_name, retry_result) "
                                    f"(rate({RETRY_ATTEMPTS}{{{SEL}}}[{RI}]))",
                                    "{{retry_name}} {{retry_result}}")], "ops", stack=True), 16, 8),
                (stat("Exhausted retries", "Calls that failed after their last attempt, in the "
                      "time range.",
                      f'sum(increase({RETRY_ATTEMPTS}{{{SEL}, retry_result="exhausted"}}'
                      "[$__range]))", "short", [(None, "green"), (1, "red")]), 8, 8),
            ]),
            ("Circuit breakers", [
                (state_timeline("Breaker state", "closed, half-open or open, per breaker.",
                                cb_state, "{{service_name}} {{circuitbreaker_name}}",
                                {0: ("closed", "green"), 1: ("half-open", "yellow"),
                                 2: ("open", "red")}), 24, 7),
                (timeseries("Breaker transitions", "State changes, by the state entered.",
                            [target(f"sum by ({CB_NAME}, {CB_STATE_LABEL}) "
                                    f"(increase({CB_TRANSITIONS}{{{SEL}}}[{RI}]))",
                                    "{{circuitbreaker_name}} -> {{circuitbreaker_state}}")],
                            "short", bars=True), 12, 8),
                (timeseries("Breaker calls by result", "rejected: refused while open.",
                            [target(f"sum by ({CB_NAME}, circuitbreaker_result) "
                                    f"(rate({CB_CALLS}{{{SEL}}}[{RI}]))",
                                    "{{circuitbreaker_name}} {{circuitbreaker_result}}")],
                            "ops", stack=True), 12, 8),
            ]),
            ("Rate limiting and backpressure", [
                (timeseries("Rate-limiter decisions", "allowed, waited (then allowed) or "
                            "rejected.",
                            [target(f"sum by (ratelimiter_name, ratelimiter_result) "
                                    f"(rate({RL_REQUESTS}{{{SEL}}}[{RI}]))",
                                    "{{ratelimiter_name}} {{ratelimiter_result}}")], "ops",
                            stack=True), 8, 8),
                (timeseries("Rate-limiter waits", "How long callers waited for a permit.",
                            [target(f"histogram_quantile(0.95, sum by (le, ratelimiter_name) "
                                    f"(rate({RL_WAIT}_bucket{{{SEL}}}[{RI}])))",
                                    "p95 {{ratelimiter_name}}"),
                             target(f"sum by (ratelimiter_name) (rate({RL_WAIT}_sum{{{SEL}}}"
                                    f"[{RI}])) / sum by (ratelimiter_name) "
                                    f"(rate({RL_WAIT}_count{{{SEL}}}[{RI}]))",
                                    "mean {{ratelimiter_name}}")], "s"), 8, 8),
                (timeseries("Available permits", "Tokens or slots left per limiter.",
                            [target(f"min by (ratelimiter_name) ({RL_AVAILABLE}{{{SEL}}})",
                                    "{{ratelimiter_name}}")], "short", minimum=0), 8, 8),
                (timeseries("Backpressure queue size", "Items waiting per queue.",
                            [target(f"max by (backpressure_name) ({BP_QUEUE}{{{SEL}}})",
                                    "{{backpressure_name}}")], "short", minimum=0), 12, 8),
                (timeseries("Backpressure rejections", "Items refused because the queue was "
                            "full.",
                            [target(f"sum by (backpressure_name) "
                                    f"(rate({BP_REJECTIONS}{{{SEL}}}[{RI}]))",
                                    "{{backpressure_name}}")], "ops"), 12, 8),
            ]),
            ("Dead letters, fallbacks and handled errors", [
                (timeseries("Dead-letter queue depth", "Failed operations kept for replay.",
                            [target(f"max by ({DLQ_NAME}) ({DLQ_SIZE}{{{SEL}}})",
                                    "{{deadletter_queue}}")], "short", minimum=0), 8, 8),
                (timeseries("Dead letters in and out", "Enqueued, and replayed by result.",
                            [target(f"sum by ({DLQ_NAME}) (rate({DLQ_ENQUEUED}{{{SEL}}}[{RI}]))",
                                    "enqueued {{deadletter_queue}}"),
                             target(f"sum by ({DLQ_NAME}, deadletter_result) "
                                    f"(rate({DLQ_REPLAYED}{{{SEL}}}[{RI}]))",
                                    "replayed {{deadletter_queue}} {{deadletter_result}}")],
                            "ops"), 8, 8),
                (timeseries("Fallbacks", "Fallback invocations by fallback and the error that "
                            "caused them.",
                            [target(f"sum by (fallback_name, error_type) "
                                    f"(rate({FALLBACKS}{{{SEL}}}[{RI}]))",
                                    "{{fallback_name}} {{error_type}}")], "ops"), 8, 8),
                (timeseries("Handled errors", "Errors the error handler caught, by type and "
                            "severity.",
                            [target(f"sum by (error_type, error_severity) "
                                    f"(rate({ERRORS_HANDLED}{{{SEL}}}[{RI}]))",
                                    "{{error_type}} {{error_severity}}")], "ops",
                            stack=True), 24, 8),
            ]),
        ])


def health_and_system() -> dict[str, Any]:
    health = weighted_state(HEALTH_STATUS, HC_STATUS, f"service_name, {HC_NAME}",
                            {"unhealthy": 3, "degraded": 2, "unknown": 1, "healthy": 0})
    per_instance = "service_name, service_instance_id"
    return dashboard(
        "otelprod-health-system", "otelprod / Health and system",
        "Health checks, alerts, the host's and the process's resources, and the exporter's "
        "own health.",
        [
            ("Health and alerts", [
                (state_timeline("Health-check status", "Each registered check over time.",
                                health, "{{service_name}} {{health_check_name}}",
                                {0: ("healthy", "green"), 1: ("unknown", "blue"),
                                 2: ("degraded", "orange"), 3: ("unhealthy", "red")}), 16, 8),
                (alert_list("Firing alert rules", "Grafana alert rules of the otelprod folder "
                            "that are firing or pending."), 8, 8),
                (timeseries("Health-check duration p95", "How long each check takes.",
                            [target(f"histogram_quantile(0.95, sum by (le, {HC_NAME}) "
                                    f"(rate({HEALTH_DURATION}_bucket{{{SEL}}}[{RI}])))",
                                    "{{health_check_name}}")], "s"), 8, 8),
                (timeseries("Active alerts", "Alerts the service's alert manager holds open.",
                            [target(f"sum by (alert_severity, alert_component) "
                                    f"({ALERTS_ACTIVE}{{{SEL}}})",
                                    "{{alert_severity}} {{alert_component}}")], "short",
                            stack=True, minimum=0), 8, 8),
                (timeseries("Alerts raised", "New alerts per second.",
                            [target(f"sum by (alert_severity) (rate({ALERTS_RAISED}{{{SEL}}}"
                                    f"[{RI}]))", "{{alert_severity}}")], "ops"), 8, 8),
            ]),
            ("Host", [
                (timeseries("CPU utilisation", "Share of CPU time the host spent busy "
                            "(not idle), over all logical CPUs.",
                            [target(f"1 - avg by ({per_instance}) ({CPU}{{{SEL}, {CPU_IDLE}}})",
                                    "{{service_instance_id}}")], "percentunit",
                            minimum=0, maximum=1), 8, 8),
                (timeseries("Memory", "Share of host memory in use.",
                            [target(f"avg by ({per_instance}) "
                                    f"({MEMORY_UTILIZATION}{{{SEL}, {MEMORY_USED}}})",
                                    "{{service_instance_id}}")], "percentunit",
                            minimum=0, maximum=1), 8, 8),
                (timeseries("Memory used", "Bytes of host memory in use.",
                            [target(f"avg by ({per_instance}) "
                                    f"({MEMORY_USAGE}{{{SEL}, {MEMORY_USED}}})",
                                    "{{service_instance_id}}")], "bytes"), 8, 8),
                (timeseries("Disk I/O", "Bytes read and written per second.",
                            [target(f"sum by ({per_instance}, disk_io_direction) "
                                    f"(rate({DISK_IO}{{{SEL}}}[{RI}]))",
                                    "{{service_instance_id}} {{disk_io_direction}}")], "Bps"),
                 8, 8),
                (timeseries("Filesystem", "Share of each filesystem in use.",
                            [target(f"max by ({per_instance}, system_filesystem_mountpoint) "
                                    f"({FILESYSTEM_UTILIZATION}{{{SEL}}})",
                                    "{{service_instance_id}} {{system_filesystem_mountpoint}}")],
                            "percentunit",
                            minimum=0, maximum=1), 8, 8),
                (timeseries("Network I/O", "Bytes sent and received per second.",
                            [target(f"sum by ({per_instance}, network_io_direction) "
                                    f"(rate({NETWORK_IO}{{{SEL}}}[{RI}]))",
                                    "{{service_instance_id}} {{network_io_direction}}")], "Bps"),
                 8, 8),
            ]),
            ("Process", [
                (timeseries("Process CPU", "CPU used by the service's process.",
                            [target(f"avg by ({per_instance}) ({PROCESS_CPU}{{{SEL}}})",
                                    "{{service_instance_id}}")], "percentunit", minimum=0), 6, 8),
                (timeseries("Process memory", "Resident memory of the process.",
                            [target(f"sum by ({per_instance}) ({PROCESS_MEMORY}{{{SEL}}})",
                                    "{{service_instance_id}}")], "bytes"), 6, 8),
                (timeseries("Threads", "Threads in the process.",
                            [target(f"sum by ({per_instance}) ({PROCESS_THREADS}{{{SEL}}})",
                                    "{{service_instance_id}}")], "short"), 6, 8),
                (timeseries("Open file descriptors", "File descriptors the process holds.",
                            [target(f"sum by ({per_instance}) ({PROCESS_FDS}{{{SEL}}})",
                                    "{{service_instance_id}}")], "short"), 6, 8),
            ]),
            ("Exporter", [
                (timeseries("Spool on disk", "Telemetry waiting on disk for the collector, "
                            "by signal.",
                            [target(f"max by (service_instance_id, {SIGNAL}) "
                                    f"({SPOOL_SIZE}{{{SEL}}})",
                                    "{{service_instance_id}} {{signal}}")], "bytes"), 8, 8),
                (timeseries("Dropped telemetry",
                            "Items that will never reach the collector, by signal and reason: "
                            + ", ".join(semconv.DropReason.ALL) + " (README: \"How it "
                            "behaves when things go wrong\").",
                            [target(f"sum by ({SIGNAL}, {REASON}) (increase({EXPORT_DROPPED}"
                                    f"{{{SEL}}}[{RI}]))", "{{signal}} {{reason}}")], "short",
                            bars=True, thresholds=[(None, "green"), (1, "red")]), 8, 8),
                (timeseries("Export failures", "Exports the collector did not accept.",
                            [target(f"sum by ({SIGNAL}) (rate({EXPORT_FAILURES}{{{SEL}}}"
                                    f"[{RI}]))", "{{signal}}")], "ops"), 8, 8),
            ]),
        ])


DASHBOARD_BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "service-overview.json": service_overview,
    "resilience.json": resilience,
    "health-system.json": health_and_system,
}


# --- the alert rules -----------------------------------------------------------------------

def _panel_id(dashboard_file: str, title: str) -> int:
    dash = DASHBOARD_BUILDERS[dashboard_file]()
    return next(p["id"] for p in dash["panels"] if p.get("title") == title)


def rule(uid: str, title: str, expr: str, threshold: float, hold: str, severity: str,
         summary: str, description: str, panel: tuple[str, str]) -> dict[str, Any]:
    """One Grafana-managed rule: PromQL instant query A, threshold B on it."""
    dashboard_file, panel_title = panel
    dashboard_uid = DASHBOARD_BUILDERS[dashboard_file]()["uid"]
    return {
        "uid": uid,
        "title": title,
        "condition": "B",
        "data": [
            {"refId": "A", "relativeTimeRange": {"from": 900, "to": 0},
             "datasourceUid": PROMETHEUS["uid"],
             "model": {"refId": "A", "datasource": PROMETHEUS, "expr": expr,
                       "instant": True, "range": False, "intervalMs": 60000,
                       "maxDataPoints": 43200}},
            {"refId": "B", "datasourceUid": "__expr__",
             "model": {"refId": "B", "datasource": {"type": "__expr__", "uid": "__expr__"},
                       "type": "threshold", "expression": "A",
                       "conditions": [{"evaluator": {"type": "gt", "params": [threshold]}}]}},
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": hold,
        "annotations": {"summary": summary, "description": description,
                        "__dashboardUid__": dashboard_uid,
                        "__panelId__": str(_panel_id(dashboard_file, panel_title))},
        "labels": {"severity": severity, "source": TAG},
        "isPaused": False,
    }


def alert_rules() -> dict[str, Any]:
    rules = [
        rule("otelprod-breaker-open", "Circuit breaker open for over a minute",
             f'max by (service_name, {CB_NAME}) ({CB_STATE}{{{CB_STATE_LABEL}="open"}})',
             0, "1m", "critical",
             "Breaker {{ $labels.circuitbreaker_name }} of {{ $labels.service_name }} is open",
             "Calls through the breaker are rejected; its dependency keeps failing.",
             ("resilience.json", "Breaker state")),
        rule("otelprod-health-critical", "Critical health check failing",
             f'max by (service_name, {HC_NAME}) ({HEALTH_STATUS}{{{HC_STATUS}="unhealthy"}})',
             0, "1m", "critical",
             "Health check {{ $labels.health_check_name }} of {{ $labels.service_name }} "
             "is unhealthy",
             "A component the service registered a health check for is not working.",
             ("health-system.json", "Health-check status")),
        rule("otelprod-dlq-growing", "Dead-letter queue growing",
             f"sum by (service_name, {DLQ_NAME}) (delta({DLQ_SIZE}[10m]))",
             0, "5m", "warning",
             "Dead-letter queue {{ $labels.deadletter_queue }} of {{ $labels.service_name }} "
             "keeps growing",
             "Failed operations pile up faster than they are replayed.",
             ("resilience.json", "Dead-letter queue depth")),
        rule("otelprod-error-rate", "Error rate over 5 %",
             f"sum by (service_name) (rate({SPAN_CALLS}{{{SPAN_ERROR}}}[5m])) / "
             f"sum by (service_name) (rate({SPAN_CALLS}[5m]))",
             0.05, "5m", "warning",
             "{{ $labels.service_name }}: {{ humanizePercentage $values.A.Value }} of spans "
             "end in an error",
             "More than 5 % of the service's spans have status ERROR.",
             ("service-overview.json", "Errors per second by span")),
        rule("otelprod-exporter-dropping", "Exporter dropping telemetry",
             f"sum by (service_name, {SIGNAL}, {REASON}) (increase({EXPORT_DROPPED}[5m]))",
             0, "0s", "warning",
             "{{ $labels.service_name }} dropped {{ $labels.signal }} telemetry "
             "({{ $labels.reason }})",
             "Telemetry was lost for good; the reason says where: queue_full (the SDK's "
             "in-memory queue), spool_full or spool_unusable (the disk spool), corrupt_segment "
             "or segment_lost (a spooled file), shutdown_deadline, rejected (by the collector).",
             ("health-system.json", "Dropped telemetry")),
    ]
    return {"apiVersion": 1,
            "groups": [{"orgId": 1, "name": TAG, "folder": TAG, "interval": "1m",
                        "rules": rules}]}


# --- output ----------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Writes repeated values out in full: no YAML anchors in a file people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


HEADER = ("# Generated by grafana/generate.py from otelprod.semconv: edit that, then run\n"
          "# `python grafana/generate.py`. Grafana-managed alert rules for the otelprod stack.\n")


def render() -> dict[Path, str]:
    """Every generated file and its exact content."""
    out = {DASHBOARDS / name: json.dumps(build(), indent=2) + "\n"
           for name, build in DASHBOARD_BUILDERS.items()}
    out[ALERT_RULES] = HEADER + yaml.dump(alert_rules(), Dumper=_Dumper, sort_keys=False,
                                          width=100, allow_unicode=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a generated file differs from what is committed")
    args = parser.parse_args(argv)
    stale = []
    for path, content in render().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
