"""Monitoring benchmarks, each against an anchor measured in the same run.

1. CPU cost of one system-metrics collection (what the metric reader pays every
   export interval, aggregation included), against the contrib
   SystemMetricsInstrumentor's default set; and that cost as a share of one
   core at the default 60 s interval (target well under 1 %).
2. CPU cost of one status report (every built-in check run, alerts, system
   figures, breakers, limiters, DLQ, exporter state, scrubbed), against a
   naive report of three psutil figures.
3. The facade's ``increment`` against calling the OTel counter directly,
   both on a real SDK MeterProvider.

    python -m benchmarks.bench_monitoring
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import psutil
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from benchmarks._harness import Result, compare, print_table

#: OTEL_METRIC_EXPORT_INTERVAL's default: how often the reader collects
DEFAULT_INTERVAL_S = 60.0


def _install_sdk() -> None:
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def _cpu_seconds_per_call(fn: Callable[[], object], number: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(number):
            fn()
        samples.append((time.process_time() - start) / number)
    return statistics.median(samples)


def system_metrics_collection(quick: bool) -> list[Result]:
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    from otelprod.monitoring import SystemMetrics

    ours_reader = InMemoryMetricReader()
    ours_provider = MeterProvider(metric_readers=[ours_reader])
    SystemMetrics().start(meter_provider=ours_provider)

    class Anchor(SystemMetricsInstrumentor):
        pass

    anchor_reader = InMemoryMetricReader()
    anchor_provider = MeterProvider(metric_readers=[anchor_reader])
    Anchor().instrument(meter_provider=anchor_provider)

    number, rounds = (5, 3) if quick else (40, 7)
    ours_reader.get_metrics_data(), anchor_reader.get_metrics_data()  # warm up
    ours, anchor = [], []
    for _ in range(rounds):  # interleaved, so a noisy neighbour shifts both alike
        ours.append(_cpu_seconds_per_call(ours_reader.get_metrics_data, number, 1))
        anchor.append(_cpu_seconds_per_call(anchor_reader.get_metrics_data, number, 1))
    ours_s, anchor_s = statistics.median(ours), statistics.median(anchor)
    points = sum(len(m.data.data_points) for rm in ours_reader.get_metrics_data().resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics)
    ours_provider.shutdown()
    anchor_provider.shutdown()
    share = ours_s / DEFAULT_INTERVAL_S * 100
    return [
        Result("system metrics: one collection (CPU)", "µs CPU", ours_s * 1e6,
               "contrib instrumentor, defaults", anchor_s * 1e6, note=f"{points} points"),
        Result("system metrics: share of one core at 60 s interval", "%", share,
               "budget: 1 % of one core", 1.0, target="<< 1.0x"),
    ]


def status_report(quick: bool) -> list[Result]:
    from otelprod.monitoring import MonitoringSystem

    system = MonitoringSystem()
    system.start(system_metrics=False, background_checks=False)
    system.health_checker.register_check("db", lambda: True)
    system.alert_manager.raise_alert("bench", "an active alert", "warning", "bench")

    def naive() -> dict[str, float]:
        return {"cpu": psutil.cpu_percent(None), "memory": psutil.virtual_memory().percent,
                "disk": psutil.disk_usage("/").percent}

    number, rounds = (3, 3) if quick else (20, 7)
    system.get_status_report(), naive()  # warm up lazy imports
    ours, anchor = [], []
    for _ in range(rounds):
        ours.append(_cpu_seconds_per_call(system.get_status_report, number, 1))
        anchor.append(_cpu_seconds_per_call(naive, number, 1))
    system.stop()
    ours_s, anchor_s = statistics.median(ours), statistics.median(anchor)
    return [Result("status report (6 checks run, scrubbed)", "µs CPU", ours_s * 1e6,
                   "3 psutil figures in a dict", anchor_s * 1e6,
                   note="informational: what completeness costs")]


def facade_increment(quick: bool) -> list[Result]:
    from otelprod.monitoring import MetricsCollector

    _install_sdk()
    facade = MetricsCollector()
    counter = metrics.get_meter("bench").create_counter("bench.direct")
    attrs = {"route": "/checkout"}
    number = 2_000 if quick else 50_000
    ours, anchor = compare(lambda: facade.increment("bench.facade", 1, attrs),
                           lambda: counter.add(1, attrs), number=number,
                           rounds=3 if quick else 7)
    return [Result("metrics.increment vs counter.add", "µs/call", ours, "OTel counter.add",
                   anchor, target="<= 1.3x")]


def run(quick: bool = False) -> list[Result]:
    return [*system_metrics_collection(quick), *status_report(quick), *facade_increment(quick)]


if __name__ == "__main__":
    print_table(run())
