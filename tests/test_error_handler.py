"""error_handler.handle_error: span, log record, metric, statistics, critical listeners."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import _logs
from opentelemetry.sdk._logs import LoggingHandler
from opentelemetry.trace import StatusCode

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.error_handling import (
    ErrorHandler,
    ErrorSeverity,
    configure_dead_letter_queue,
    error_handler,
    status_report,
)
from tests.error_handling_helpers import value


@pytest.fixture
def handler() -> ErrorHandler:
    return ErrorHandler()


def test_recorded_on_the_current_span_with_status_error(telemetry, handler):
    with tracer.start_as_current_span("process"):
        try:
            raise ValueError("bad row 7")
        except ValueError as e:
            handler.handle_error(e, context="data_processing", severity=ErrorSeverity.HIGH,
                                 additional_info={"user_id": "123", "rows": 9})
    (span,) = telemetry.spans("process")
    assert span.status.status_code is StatusCode.ERROR
    assert "bad row 7" in span.status.description
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes[semconv.ERROR_CONTEXT] == "data_processing"
    assert event.attributes[semconv.ERROR_SEVERITY] == "high"
    assert event.attributes["error.info.user_id"] == "123"
    assert event.attributes["error.info.rows"] == 9
    m = telemetry.metrics()
    assert value(m, semconv.METRIC_ERRORS_HANDLED, {
        semconv.ERROR_TYPE: "ValueError", semconv.ERROR_SEVERITY: "high",
        semconv.ERROR_CONTEXT: "data_processing"}) == 1


@pytest.mark.parametrize(("severity", "level"), [
    (ErrorSeverity.LOW, logging.INFO), (ErrorSeverity.MEDIUM, logging.WARNING),
    (ErrorSeverity.HIGH, logging.ERROR), (ErrorSeverity.CRITICAL, logging.CRITICAL),
    ("high", logging.ERROR)])
def test_log_record_with_the_severity_mapped(caplog, handler, severity, level):
    with caplog.at_level(logging.DEBUG, logger="otelprod.errors"):
        handler.handle_error(KeyError("k"), context="cache", severity=severity)
    (record,) = [r for r in caplog.records if r.name == "otelprod.errors"]
    assert record.levelno == level
    assert record.getMessage() == "[cache] KeyError: 'k'"
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert record.__dict__[semconv.ERROR_CONTEXT] == "cache"


def test_log_record_reaches_otel_logs_through_the_bridge(telemetry, handler):
    bridge = LoggingHandler(logger_provider=_logs.get_logger_provider())
    log = logging.getLogger("otelprod.errors")
    log.addHandler(bridge)
    try:
        with tracer.start_as_current_span("job") as span:
            handler.handle_error(TimeoutError("slow db"), context="db",
                                 severity=ErrorSeverity.MEDIUM, additional_info={"shard": 3})
            trace_id = span.get_span_context().trace_id
    finally:
        log.removeHandler(bridge)
    (log_data,) = [r for r in telemetry.logs() if "slow db" in str(r.log_record.body)]
    record = log_data.log_record
    assert record.severity_text == "WARN" or record.severity_text == "WARNING"
    assert record.trace_id == trace_id
    assert record.attributes[semconv.ERROR_SEVERITY] == "medium"
    assert record.attributes["error.info.shard"] == 3


def test_statistics(handler):
    for exc, ctx, sev in [(ValueError("a"), "api", "low"), (ValueError("b"), "api", "high"),
                          (OSError("c"), "disk", "critical")]:
        handler.handle_error(exc, context=ctx, severity=sev)
    stats = handler.get_error_statistics()
    assert stats["total_errors"] == 3
    assert stats["by_type"] == {"ValueError": 2, "OSError": 1}
    assert stats["by_severity"] == {"low": 1, "medium": 0, "high": 1, "critical": 1}
    assert stats["by_context"] == {"api": 2, "disk": 1}
    assert [r["message"] for r in stats["recent"]] == ["a", "b", "c"]
    json.dumps(stats)
    handler.reset_statistics()
    assert handler.get_error_statistics()["total_errors"] == 0


def test_critical_errors_reach_listeners_and_a_broken_one_cannot_escape(handler, caplog):
    heard = []
    handler.add_critical_listener(lambda *args: heard.append(args))
    handler.add_critical_listener(lambda *args: 1 / 0)
    err = RuntimeError("disk full")
    handler.handle_error(err, context="writer", severity=ErrorSeverity.HIGH)
    assert heard == []
    with caplog.at_level(logging.WARNING):
        handler.handle_error(err, context="writer", severity=ErrorSeverity.CRITICAL,
                             additional_info={"disk": "/var"})
    assert heard == [(err, "writer", ErrorSeverity.CRITICAL, {"disk": "/var"})]
    assert "a critical-error listener failed" in caplog.text


def test_without_a_span_nothing_breaks(handler):
    entry = handler.handle_error(ValueError("x"))
    assert entry["context"] == "unknown" and entry["severity"] == "medium"


def test_bad_arguments_are_clear_errors(handler):
    with pytest.raises(ValueError, match=r"severity must be an ErrorSeverity \(low, medium, "
                                         r"high, critical\), got 'urgent' \(str\)"):
        handler.handle_error(ValueError(), severity="urgent")
    with pytest.raises(TypeError, match="error must be an exception, got str"):
        handler.handle_error("oops")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="additional_info must be a mapping"):
        handler.handle_error(ValueError(), additional_info=[1])  # type: ignore[arg-type]


def test_status_report_is_json_and_creates_no_database(tmp_path):
    db = tmp_path / "sub" / "dlq.db"
    configure_dead_letter_queue(db)
    try:
        error_handler.handle_error(ValueError("x"), context="report")
        report = json.loads(json.dumps(status_report()))
    finally:
        configure_dead_letter_queue(None)
    assert report["errors"]["by_context"]["report"] >= 1
    assert report["dead_letter_queue"] == {"name": "default", "path": str(db), "size": 0}
    assert isinstance(report["circuit_breakers"], dict)
    assert not db.exists() and not db.parent.exists()


def test_status_report_scrubs_secrets_quoted_in_errors():
    error_handler.handle_error(ConnectionError("login failed: password=hunter22 for ann"),
                               context="scrub", severity=ErrorSeverity.LOW)
    recent = status_report()["errors"]["recent"]
    text = json.dumps(recent)
    assert "hunter22" not in text and "password=[REDACTED]" in text
