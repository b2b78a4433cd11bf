"""The test-side translation of OTLP metrics to Prometheus names, and PromQL inspection.

Cases follow prometheus/otlptranslator's own tests (UnderscoreEscapingWithSuffixes,
the strategy Prometheus's OTLP receiver uses by default), so the dashboard checks
compare against the names Prometheus really stores.
"""

from __future__ import annotations

import pytest

from tests.stack_helpers import (
    prometheus_base_name,
    prometheus_label,
    prometheus_names,
    selectors,
    substitute_variables,
)


@pytest.mark.parametrize(
    ("name", "unit", "kind", "monotonic", "expected"),
    [
        # dots become underscores
        ("circuitbreaker.state", "", "gauge", None, "circuitbreaker_state"),
        # monotonic sums get _total, non-monotonic ones do not
        ("retry.attempts", "{attempt}", "sum", True, "retry_attempts_total"),
        ("system.memory.usage", "By", "sum", False, "system_memory_usage_bytes"),
        ("requests", "", "sum", True, "requests_total"),
        ("requests_total", "", "sum", True, "requests_total"),  # not doubled
        # unit words
        ("operation.duration", "s", "histogram", None, "operation_duration_seconds"),
        ("response_time", "ms", "gauge", None, "response_time_milliseconds"),
        ("memory_usage", "By", "gauge", None, "memory_usage_bytes"),
        ("response_time_seconds", "s", "gauge", None, "response_time_seconds"),  # not doubled
        ("throughput", "By/s", "gauge", None, "throughput_bytes_per_second"),
        ("requests", "1/s", "gauge", None, "requests_per_second"),
        ("custom_metric", "custom_unit", "gauge", None, "custom_metric_custom_unit"),
        # {annotations} are dropped, also inside a "per" unit
        ("custom_metric", "{custom}", "gauge", None, "custom_metric"),
        ("custom_metric", "By/{custom}", "gauge", None, "custom_metric_bytes"),
        ("system.network.io", "By", "sum", True, "system_network_io_bytes_total"),
        # unit "1": _ratio on gauges only
        ("cpu_usage", "1", "gauge", None, "cpu_usage_ratio"),
        ("cpu_usage_ratio", "1", "gauge", None, "cpu_usage_ratio"),
        ("items", "1", "sum", True, "items_total"),
        ("items", "1", "sum", False, "items"),
        ("system.cpu.utilization", "1", "gauge", None, "system_cpu_utilization_ratio"),
        # both suffixes, in Prometheus's order
        ("cpu_seconds_total", "s", "sum", True, "cpu_seconds_total"),
        ("otelcol_process_cpu_seconds", "s", "sum", True, "otelcol_process_cpu_seconds_total"),
        ("requests", "1/s", "sum", True, "requests_per_second_total"),
        # invalid characters collapse; a leading digit gets an underscore
        ("metric@with#special$chars", "", "gauge", None, "metric_with_special_chars"),
        ("metric@@##$$name", "", "gauge", None, "metric_name"),
        ("123metric", "", "gauge", None, "_123metric"),
        ("traces.span.metrics.calls", "", "sum", True, "traces_span_metrics_calls_total"),
    ],
)
def test_base_name(name: str, unit: str, kind: str, monotonic: bool | None, expected: str) -> None:
    assert prometheus_base_name(name, unit, kind, monotonic) == expected


def test_histograms_are_three_series() -> None:
    assert prometheus_names("ratelimiter.wait.duration", "s", "histogram") == {
        "ratelimiter_wait_duration_seconds_bucket",
        "ratelimiter_wait_duration_seconds_sum",
        "ratelimiter_wait_duration_seconds_count",
    }


def test_exponential_histograms_are_native_ones_under_the_base_name() -> None:
    assert prometheus_names("x.duration", "s", "exponential_histogram") == {"x_duration_seconds"}


def test_counters_and_gauges_are_one_series() -> None:
    assert prometheus_names("retry.attempts", "{attempt}", "sum", True) == {"retry_attempts_total"}
    assert prometheus_names("alerts.active", "{alert}", "gauge") == {"alerts_active"}


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="kind: expected one of"):
        prometheus_base_name("x", "", "counter")
    with pytest.raises(ValueError, match="no character Prometheus keeps"):
        prometheus_base_name("@#$%", "", "gauge")


def test_labels() -> None:
    assert prometheus_label("circuitbreaker.name") == "circuitbreaker_name"
    assert prometheus_label("error.type") == "error_type"
    assert prometheus_label("1st") == "key_1st"


def test_substitution_of_grafana_variables() -> None:
    expr = ('rate(x_total{service_name=~"$service", i=~"${instance}", j="[[job]]"}'
            "[$__rate_interval])")
    out = substitute_variables(expr, {"service": ".+", "instance": ".*", "job": "a"})
    assert out == 'rate(x_total{service_name=~".+", i=~".*", j="a"}[4m])'
    with pytest.raises(KeyError, match=r"unknown Grafana variable \$nope"):
        substitute_variables("x{a=\"$nope\"}")


def test_selectors_find_every_metric_and_its_matchers() -> None:
    found = selectors(
        'sum by (a) (rate(foo_total{job=~"x", b="1"}[5m]))'
        ' / on() group_left histogram_quantile(0.9, sum by (le) (rate(bar_bucket[1m])))'
        ' + {__name__="baz"} + max_over_time(q[5m:1m]) + vector(1)'
    )
    assert [(s.metric, s.labels) for s in found] == [
        ("foo_total", ("job", "b")), ("bar_bucket", ()), ("baz", ()), ("q", ()),
    ]


def test_selectors_reject_what_no_name_check_could_follow() -> None:
    with pytest.raises(ValueError, match="__name__ regex"):
        selectors('{__name__=~"foo.*"}')
    with pytest.raises(ValueError):
        selectors("rate(foo[$__rate_interval])")  # unsubstituted: not PromQL
