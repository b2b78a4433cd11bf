"""End to end: a process under ``otelprod.init()`` rate-limits and sheds load, and
the telemetry arrives over OTLP at a real receiver with the contract's names."""

from __future__ import annotations

from otelprod import semconv
from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver

PROGRAM = """
import otelprod
from opentelemetry import trace
from otelprod.rate_limiter import rate_limit_manager, RateLimitConfig, BackpressureRejected

otelprod.init("limited")
limiter = rate_limit_manager.register_limiter("e2e.api", RateLimitConfig(50, 2))
bp = rate_limit_manager.register_backpressure("e2e.queue", max_queue_size=1)
with trace.get_tracer("app").start_as_current_span("handle"):
    results = [limiter.acquire().allowed for _ in range(3)]
    assert results == [True, True, False], results
    assert limiter.acquire(wait=True).waited > 0
    bp.add_item()
    try:
        bp.add_item()
    except BackpressureRejected:
        pass
assert otelprod.shutdown(timeout=10)
"""


def test_rate_limit_telemetry_arrives_over_otlp(otlp_receiver: OTLPReceiver) -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_BSP_SCHEDULE_DELAY="100",
                     OTEL_METRIC_EXPORT_INTERVAL="500")
    result = run_python(PROGRAM, env=env)
    assert result.returncode == 0, result.stderr

    metrics = {m["name"]: m for m in otlp_receiver.metrics()
               if m["resource"].get("service.name") == "limited"}
    requests = metrics[semconv.METRIC_RATELIMITER_REQUESTS]
    assert requests["kind"] == "sum" and requests["monotonic"] is True
    assert requests["unit"] == "{request}"
    by_result = {p["attributes"][semconv.RATELIMITER_RESULT]: p["value"]
                 for p in requests["points"]
                 if p["attributes"][semconv.RATELIMITER_NAME] == "e2e.api"}
    assert by_result == {"allowed": 2, "waited": 1, "rejected": 1}

    wait = metrics[semconv.METRIC_RATELIMITER_WAIT_DURATION]
    assert wait["unit"] == "s" and wait["points"][0]["count"] == 1
    assert wait["points"][0]["bounds"][0] == semconv.DURATION_BUCKETS_S[0]
    assert metrics[semconv.METRIC_RATELIMITER_AVAILABLE]["kind"] == "gauge"
    (size,) = metrics[semconv.METRIC_BACKPRESSURE_QUEUE_SIZE]["points"]
    assert size["value"] == 1
    (rejections,) = metrics[semconv.METRIC_BACKPRESSURE_REJECTIONS]["points"]
    assert rejections["value"] == 1
    assert rejections["attributes"][semconv.BACKPRESSURE_REASON] == "full"

    (span,) = [s for s in otlp_receiver.spans() if s["name"] == "handle"]
    names = [e["name"] for e in span["events"]]
    assert names == [semconv.EVENT_RATELIMITER_REJECTED, semconv.EVENT_RATELIMITER_WAIT,
                     semconv.EVENT_BACKPRESSURE_REJECTED]
    assert span["events"][0]["attributes"][semconv.RATELIMITER_RETRY_AFTER] > 0
