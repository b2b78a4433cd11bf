"""What scrubbing metrics costs, where it runs.

1. ``counter.add`` with three attributes on the meter ``otelprod.init()``
   installs (its metric exporter scrubs attribute values) against the bare
   OTel SDK (a ``MeterProvider`` with a periodic reader and the OTLP exporter),
   in the same process, interleaved, in CPU time of the calling thread (the
   machine is shared, and otelprod's own background threads are not the
   call's cost). Scrubbing runs on the reader's thread, once per collection,
   so the measurement path must cost the same: target <= 1.05x.
2. Where the work went instead: scrubbing one collection of 1,000 streams
   (three attributes each, one in ten carrying a registered secret) against
   encoding that same collection into an OTLP request, which the exporter does
   anyway. Informational.

    python -m benchmarks.bench_scrubbing
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable

from benchmarks._harness import Result, print_table

SECRET = "bench-s3cret-7d2e9a"


def _thread_cpu_us(fn: Callable[[], object], number: int) -> float:
    start = time.thread_time()
    for _ in range(number):
        fn()
    return (time.thread_time() - start) / number * 1e6


def compare_cpu(ours: Callable[[], object], anchor: Callable[[], object], *, number: int,
                rounds: int) -> tuple[float, float]:
    """Median CPU µs per call of each, rounds interleaved and alternating who goes first."""
    ours(), anchor()
    a, b = [], []
    for round_ in range(rounds):
        if round_ % 2:
            b.append(_thread_cpu_us(anchor, number))
            a.append(_thread_cpu_us(ours, number))
        else:
            a.append(_thread_cpu_us(ours, number))
            b.append(_thread_cpu_us(anchor, number))
    return statistics.median(a), statistics.median(b)


def counter_add(quick: bool) -> list[Result]:
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    import otelprod
    from tests.otlp_receiver import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: nothing is exported
    with tempfile.TemporaryDirectory() as spool:
        os.environ.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                          OTEL_METRIC_EXPORT_INTERVAL="3600000", OTELPROD_SPOOL_DIR=spool,
                          OTELPROD_SYSTEM_METRICS="false", OTELPROD_LOG_LEVEL="WARNING",
                          SECRET_BENCH=SECRET)
        otelprod.init("bench-scrubbing")
        try:
            ours_counter = metrics.get_meter("bench").create_counter("bench.orders")
            bare = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=endpoint, insecure=True),
                export_interval_millis=3_600_000)])
            bare_counter = bare.get_meter("bench").create_counter("bench.orders")
            customers = [f"customer-{i}" for i in range(50)]
            attrs = [{"customer": c, "region": "eu-west", "plan": "pro"} for c in customers]
            state = {"i": 0}

            def ours() -> None:
                i = state["i"] = (state["i"] + 1) % 50
                ours_counter.add(1, attrs[i])

            def anchor() -> None:
                i = state["i"] = (state["i"] + 1) % 50
                bare_counter.add(1, attrs[i])

            number = 10_000 if quick else 50_000
            ours_us, anchor_us = compare_cpu(ours, anchor, number=number,
                                             rounds=4 if quick else 20)
            bare.shutdown(timeout_millis=1000)
        finally:
            otelprod.shutdown(timeout=2)
    return [Result("counter.add, 3 attributes (metric scrubbing on)", "µs CPU", ours_us,
                   "bare SDK counter.add", anchor_us, target="<= 1.05x",
                   note="scrubbing runs at export, not per call")]


def collection(quick: bool) -> list[Result]:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otelprod._pipeline.scrubbing import scrub_metrics
    from otelprod._scrub import scrubber

    scrubber.register_secret(SECRET)
    reader = InMemoryMetricReader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("b").create_counter("orders")
    for i in range(1000):
        customer = f"{SECRET}-{i}" if i % 10 == 0 else f"customer-{i}"
        counter.add(i + 1, {"customer": customer, "region": "eu-west", "plan": "pro"})
    data = reader.get_metrics_data()
    assert data is not None
    rounds = 3 if quick else 9
    ours, anchor = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        scrubbed = scrub_metrics(data)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        encode_metrics(data)
        anchor.append(time.perf_counter() - start)
    points = scrubbed.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    dirty = [p for p in points if str(p.attributes["customer"]).startswith("[REDACTED]")]
    assert (len(points), len(dirty)) == (1000, 100), (len(points), len(dirty))
    return [Result("scrub one collection: 1,000 streams, 10 % secret", "ms",
                   statistics.median(ours) * 1e3, "OTLP-encode that collection",
                   statistics.median(anchor) * 1e3,
                   note="informational: once per export interval, on the reader thread")]


def run(quick: bool = False) -> list[Result]:
    return [*counter_add(quick), *collection(quick)]


if __name__ == "__main__":
    print_table(run())
