"""structlog and loguru records reach the collector with the trace context, scrubbed.

One child interpreter logs through both libraries (and structlog's stdlib route)
inside spans, against a real OTLP receiver on loopback; the records that
arrive are checked field by field.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver

PROGRAM = """
import logging, sys, structlog, otelprod
from loguru import logger
from opentelemetry import trace
import otelprod.integrations.loguru as otel_loguru
from otelprod.integrations.structlog import send_to_otel

otelprod.init("logs-demo")
tracer = trace.get_tracer("app")

structlog.configure(processors=[
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(),
    send_to_otel,
    structlog.processors.JSONRenderer(),
], logger_factory=structlog.PrintLoggerFactory(sys.stdout))
log = structlog.get_logger().bind(logger="shop.orders")  # the scope of its records

logger.remove()
logger.add(sys.stderr, level="DEBUG")  # loguru's own output stays
logger.add(otel_loguru.sink, level="INFO")

with tracer.start_as_current_span("structlog-span"):
    structlog.contextvars.bind_contextvars(request_id="r-1")
    log.info("order placed", order_id=7, tags=["a", "b"], password="hunter2", name="bob")
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed", table="orders")
    structlog.contextvars.clear_contextvars()

with tracer.start_as_current_span("loguru-span"):
    logger.bind(order_id=8, api_key="k-123").info("paid {}", "in full")
    logger.debug("below the sink's level")
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception("division failed")
    logger.log("SUCCESS", "done")

# structlog through stdlib logging: no processor needed, fields become attributes
structlog.configure(processors=[structlog.stdlib.render_to_log_kwargs],
                    logger_factory=structlog.stdlib.LoggerFactory(),
                    wrapper_class=structlog.stdlib.BoundLogger)
with tracer.start_as_current_span("stdlib-span"):
    structlog.get_logger("shop.stdlib").warning("via logging", sku="x-1")

# loguru from another thread: the patcher carries the caller's span
logger.remove()
logger.configure(patcher=otel_loguru.patcher)
logger.add(otel_loguru.sink, enqueue=True)
with tracer.start_as_current_span("enqueued-span"):
    logger.info("from the queue")
logger.complete()
logger.remove()
assert otelprod.shutdown(timeout=10)
"""


@pytest.fixture(scope="module")
def arrived() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], str]:
    """(log records by body, spans by name, the child's stdout)."""
    with OTLPReceiver() as receiver:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
                         OTELPROD_SYSTEM_METRICS="false")
        result = run_python(PROGRAM, env=env)
        assert result.returncode == 0, result.stderr
        logs = [r for r in receiver.logs() if not r["scope"].startswith("otelprod")]
        records = {r["body"]: r for r in logs}
        assert len(records) == len(logs), [r["body"] for r in logs]  # nothing sent twice
        return records, {s["name"]: s for s in receiver.spans()}, result.stdout + result.stderr


def test_structlog_events_carry_trace_fields_and_exceptions(arrived: Any) -> None:
    records, spans, output = arrived
    placed = records["order placed"]
    assert placed["scope"] == "shop.orders"
    assert placed["severity_text"] == "INFO" and placed["severity_number"] == 9
    assert placed["trace_id"] == spans["structlog-span"]["trace_id"]
    assert placed["span_id"] == spans["structlog-span"]["span_id"]
    attrs = placed["attributes"]
    assert attrs["order_id"] == 7 and attrs["tags"] == ["a", "b"]
    assert attrs["request_id"] == "r-1"  # structlog's contextvars
    assert attrs["password"] == "[REDACTED]"  # scrubbed like the rest
    assert attrs["extra.name"] == "bob"  # a LogRecord attribute's name is kept apart
    failed = records["lookup failed"]
    assert failed["severity_text"] == "ERROR" and failed["attributes"]["table"] == "orders"
    assert failed["attributes"]["exception.type"] == "KeyError"
    assert failed["attributes"]["exception.message"] == "missing"
    assert '{}["missing"]' in failed["attributes"]["exception.stacktrace"] or \
        "KeyError: 'missing'" in failed["attributes"]["exception.stacktrace"]
    # the console output is unchanged
    assert '"event": "order placed"' in output and "hunter2" in output


def test_structlog_through_stdlib_logging_needs_no_processor(arrived: Any) -> None:
    records, spans, _ = arrived
    record = records["via logging"]
    assert record["scope"] == "shop.stdlib" and record["severity_text"] == "WARN"
    assert record["attributes"]["sku"] == "x-1"
    assert record["trace_id"] == spans["stdlib-span"]["trace_id"]


def test_loguru_records_carry_trace_extra_and_exceptions(arrived: Any) -> None:
    records, spans, output = arrived
    paid = records["paid in full"]
    assert paid["scope"] == "__main__" and paid["severity_number"] == 9
    assert (paid["trace_id"], paid["span_id"]) == (spans["loguru-span"]["trace_id"],
                                                   spans["loguru-span"]["span_id"])
    assert paid["attributes"]["order_id"] == 8
    assert paid["attributes"]["api_key"] == "[REDACTED]"
    assert "below the sink's level" not in records  # the sink's level holds
    assert "below the sink's level" in output  # while loguru's own stderr sink printed it
    failed = records["division failed"]
    assert failed["severity_text"] == "ERROR"
    assert failed["attributes"]["exception.type"] == "ZeroDivisionError"
    assert failed["attributes"]["exception.message"] == "division by zero"
    assert "ZeroDivisionError" in failed["attributes"]["exception.stacktrace"]
    success = records["done"]
    assert success["severity_text"] == "SUCCESS" and 9 <= success["severity_number"] <= 12


def test_loguru_enqueued_sink_keeps_the_callers_trace(arrived: Any) -> None:
    records, spans, _ = arrived
    queued = records["from the queue"]
    assert queued["trace_id"] == spans["enqueued-span"]["trace_id"]
    assert queued["span_id"] == spans["enqueued-span"]["span_id"]
    assert "otelprod.span" not in queued["attributes"]
