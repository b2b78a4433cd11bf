"""The seed's error-handling examples do what they say, and it all arrives over OTLP.

``tests/test_seed_examples.py`` runs every seed block in a fresh interpreter;
here the error-handling blocks (read from the seed itself) run in-process so
that their effects can be checked: the handled error is counted, the
breakers are registered, the stuck breaker is closed, the queue is emptied.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import StatusCode

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.error_handling import (
    CircuitBreakerConfig,
    ErrorSeverity,
    configure_dead_letter_queue,
    dead_letter_queue,
    error_handler,
    get_circuit_breakers,
)
from tests.conftest import python_env, run_python, seed_example
from tests.error_handling_helpers import forget_new_breakers  # noqa: F401


def block(title: str) -> str:
    """The seed example titled ``title`` (src. -> otelprod.)."""
    return seed_example(title)


def risky_operation() -> None:
    raise RuntimeError("the risky operation failed")


@pytest.fixture
def scratch_dlq(tmp_path):
    configure_dead_letter_queue(tmp_path / "dlq.db")
    yield tmp_path / "dlq.db"
    configure_dead_letter_queue(None)


def test_usage_example(telemetry):
    code = block("Error Handling and Recovery / Usage")
    namespace = {"risky_operation": risky_operation, "ErrorSeverity": ErrorSeverity}
    before = error_handler.get_error_statistics()["by_context"].get("data_processing", 0)
    with tracer.start_as_current_span("seed"):
        exec(compile(code, "seed-error-handling", "exec"), namespace)
    assert namespace["fetch_data"]() is None
    assert namespace["fetch_tweets"]() is None
    assert namespace["fetch_data"].retry_policy.config.max_attempts == 3
    assert namespace["fetch_data"].retry_policy.config.base_delay == 1.0
    assert "twitter_api" in get_circuit_breakers()
    stats = error_handler.get_error_statistics()
    assert stats["by_context"]["data_processing"] == before + 1
    (span,) = telemetry.spans("seed")
    assert span.status.status_code is StatusCode.ERROR
    exc_event = next(e for e in span.events if e.name == "exception")
    assert exc_event.attributes["error.info.user_id"] == "123"
    assert exc_event.attributes[semconv.ERROR_SEVERITY] == "high"


def test_configuration_example():
    code = block("Error Handling and Recovery / Configuration")
    namespace = {"CircuitBreakerConfig": CircuitBreakerConfig}
    exec(compile("config = " + code.strip(), "seed-config", "exec"), namespace)
    assert namespace["config"] == CircuitBreakerConfig(
        failure_threshold=5, success_threshold=2, timeout=60.0, half_open_timeout=30.0)


def test_circuit_breaker_stuck_open():
    from otelprod.error_handling import with_circuit_breaker

    @with_circuit_breaker("service_name", CircuitBreakerConfig(failure_threshold=1))
    def call_service() -> None:
        raise ConnectionError("service down")

    with pytest.raises(ConnectionError):
        call_service()
    assert get_circuit_breakers()["service_name"].state == "open"
    exec(compile(block("Troubleshooting / Circuit Breaker Stuck Open"), "seed-stuck", "exec"), {})
    assert get_circuit_breakers()["service_name"].state == "closed"


def test_dead_letter_queue_growing(scratch_dlq):
    dead_letter_queue.add("fetch_tweets", {"since_id": 1}, error=ConnectionError("x"))
    dead_letter_queue.add("fetch_tweets", {"since_id": 2}, error=ConnectionError("y"))
    namespace: dict = {}
    code = block("Troubleshooting / Dead Letter Queue Growing")
    exec(compile(code, "seed-dlq", "exec"), namespace)
    assert [op.payload for op in namespace["failed_ops"]] == [{"since_id": 1}, {"since_id": 2}]
    assert dead_letter_queue.count() == 0
    assert scratch_dlq.exists()


E2E = r"""
import json, os
import otelprod
from otelprod.error_handling import (
    CircuitBreakerConfig, ErrorSeverity, RetryConfig, dead_letter_queue, error_handler,
    with_circuit_breaker, with_fallback, with_retry)

otelprod.init("resilience-e2e")
flaky_calls = []

@with_retry(RetryConfig(max_attempts=3, base_delay=0.001, jitter=False, name="e2e.flaky"))
def flaky():
    flaky_calls.append(1)
    if len(flaky_calls) < 2:
        raise ConnectionError("blip")
    return "ok"

@with_fallback("cached", name="e2e.fallback")
@with_circuit_breaker("e2e.breaker", CircuitBreakerConfig(failure_threshold=1, timeout=600))
@with_retry(RetryConfig(max_attempts=2, base_delay=0.001, dead_letter=True, name="e2e.down"))
def down(order):
    raise TimeoutError("dependency down")

assert flaky() == "ok"
assert down(7) == "cached"      # retried, exhausted, dead-lettered, breaker opens, fallback
assert down(8) == "cached"      # rejected, fallback
try:
    raise ValueError("bad input")
except ValueError as e:
    error_handler.handle_error(e, context="e2e", severity=ErrorSeverity.HIGH,
                               additional_info={"order": 7})
print(json.dumps({"dlq": dead_letter_queue.count()}))
assert otelprod.shutdown(timeout=10)
"""


def test_end_to_end_over_otlp(otlp_receiver, tmp_path):
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_BSP_SCHEDULE_DELAY="100",
                     OTEL_BLRP_SCHEDULE_DELAY="100", OTELPROD_DLQ_PATH=str(tmp_path / "q.db"))
    result = run_python(E2E, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"dlq": 1}

    spans: dict[str, list[dict]] = {}
    for s in otlp_receiver.spans():
        spans.setdefault(s["name"], []).append(s)
    assert {s["scope"] for group in spans.values() for s in group} == {"otelprod"}
    (flaky,) = spans["e2e.flaky"]
    assert [e["name"] for e in flaky["events"]] == ["retry"]
    assert flaky["events"][0]["attributes"][semconv.RETRY_ATTEMPT] == 1
    first, second = ([e["name"] for e in s["events"]] for s in spans["e2e.fallback"])
    assert first == ["retry", "retry.exhausted", "exception", "deadletter.enqueued",
                     "circuitbreaker.state_change", "fallback"]
    assert second == ["circuitbreaker.rejected", "fallback"]

    metrics: dict[str, list[dict]] = {}
    for m in otlp_receiver.metrics():
        metrics.setdefault(m["name"], []).extend(m["points"])

    def total(name: str, **attrs: str) -> float:
        return max((p.get("value", 0) for p in metrics.get(name, [])
                    if all(p["attributes"].get(k.replace("_", ".", 1)) == v
                           for k, v in attrs.items())), default=0)

    assert total("retry.attempts", retry_name="e2e.flaky", retry_result="retry") == 1
    assert total("retry.attempts", retry_name="e2e.flaky", retry_result="success") == 1
    assert total("retry.attempts", retry_name="e2e.down", retry_result="exhausted") == 1
    assert total("circuitbreaker.calls", circuitbreaker_name="e2e.breaker",
                 circuitbreaker_result="rejected") == 1
    assert total("circuitbreaker.state", circuitbreaker_name="e2e.breaker",
                 circuitbreaker_state="open") == 1
    assert total("circuitbreaker.transitions", circuitbreaker_name="e2e.breaker") == 1
    assert total("fallback.invocations", fallback_name="e2e.fallback") >= 1
    assert total("errors.handled", error_context="e2e") == 1
    assert total("deadletter.enqueued", deadletter_queue="default") == 1
    assert total("deadletter.queue.size", deadletter_queue="default") == 1

    (log,) = [r for r in otlp_receiver.logs() if "bad input" in str(r["body"])]
    assert log["severity_text"] in ("ERROR",)
    assert log["attributes"][semconv.ERROR_CONTEXT] == "e2e"
    assert log["attributes"]["error.info.order"] == 7
