"""Demo scene: traces, metrics and logs from plain application code."""

from __future__ import annotations

import logging
import random
import time

from otelprod._telemetry import duration_histogram, meter, tracer

TITLE = "basics: spans, metrics and logs"

_log = logging.getLogger("otelprod.demo")


def run(out) -> None:  # type: ignore[no-untyped-def]
    orders = meter.create_counter("demo.orders", unit="{order}",
                                  description="Orders the demo placed.")
    latency = duration_histogram("demo.order.duration", "Time to place a demo order.")
    for n in range(5):
        with tracer.start_as_current_span("place order", attributes={"order.id": n}) as span:
            started = time.perf_counter()
            with tracer.start_as_current_span("charge card"):
                time.sleep(random.uniform(0.005, 0.02))
            span.add_event("order.placed", {"order.id": n})
            _log.info("placed order %d", n)
            orders.add(1, {"order.kind": "demo"})
            latency.record(time.perf_counter() - started)
    out.step("placed 5 orders: 10 spans, 5 log records, 2 metric streams")
