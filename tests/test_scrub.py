"""The scrubber: what counts as secret, and the export-layer wrappers that apply it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otelprod._pipeline.scrubbing import (
    ScrubbingLogRecordProcessor,
    ScrubbingMetricExporter,
    ScrubbingSpanExporter,
    scrub_metrics,
)
from otelprod._scrub import REDACTED, Scrubber, scrubber
from otelprod._scrub._logfilter import scrub_library_logs
from tests.otlp_receiver import free_port


@pytest.fixture
def s() -> Scrubber:
    return Scrubber()


@pytest.fixture
def global_secret() -> Iterator[str]:
    value = "gl0bal-s3cret-value"
    scrubber.register_secret(value)
    yield value


@pytest.mark.parametrize("key", [
    "password", "PASSWORD", "db_password", "passwd", "pwd", "secret", "client_secret",
    "token", "access_token", "refresh-token", "api_key", "apikey", "api-key", "X-Api-Key",
    "Authorization", "http.request.header.authorization", "cookie", "Set-Cookie",
    "session", "session_id", "credit_card", "creditCard", "card_number", "private_key",
    "aws_secret_access_key", "auth", "ssn", "pin",
])
def test_sensitive_keys_are_recognised_whatever_their_case_and_separators(
        s: Scrubber, key: str) -> None:
    assert s.is_sensitive_key(key)
    assert s.scrub_mapping({key: "value-1"}) == {key: REDACTED}


@pytest.mark.parametrize("key", [
    "user", "name", "message", "author", "keyboard", "spinner", "feature_flag.key",
    "http.method", "retry.attempt", "token_count", "gen_ai.usage.input_tokens", "max_tokens",
])
def test_ordinary_keys_and_the_default_allowlist_pass(s: Scrubber, key: str) -> None:
    assert not s.is_sensitive_key(key)
    assert s.scrub_mapping({key: "value-1"}) == {key: "value-1"}


def test_allow_key_and_add_sensitive_key(s: Scrubber) -> None:
    assert s.is_sensitive_key("session_duration")
    s.allow_key("session_duration")
    assert not s.is_sensitive_key("session_duration")
    assert s.is_sensitive_key("session_id")  # only that key is allowed

    assert not s.is_sensitive_key("iban")
    s.add_sensitive_key("IBAN")
    assert s.scrub_mapping({"customer_iban": "DE89370400440532013000"}) == {
        "customer_iban": REDACTED}


def test_nested_mappings_and_lists_are_walked_and_copied(s: Scrubber) -> None:
    data = {"user": "bob", "auth": {"token": "t-1"},
            "items": [{"password": "p"}, "ok", ("x", {"cookie": "c"})],
            "credentials": {"user": "u", "pass": "p"}}
    out = s.scrub_mapping(data)
    assert out == {"user": "bob", "auth": REDACTED,
                   "items": [{"password": REDACTED}, "ok", ("x", {"cookie": REDACTED})],
                   "credentials": REDACTED}
    assert data["items"][0] == {"password": "p"}, "the input must not be mutated"


def test_registered_secrets_are_replaced_inside_any_string(s: Scrubber) -> None:
    s.register_secret("hunter2-xyz")
    assert s.scrub("connecting with hunter2-xyz now") == f"connecting with {REDACTED} now"
    assert s.scrub({"note": "pw hunter2-xyz", "n": 3}) == {"note": f"pw {REDACTED}", "n": 3}
    assert s.scrub(["hunter2-xyz"]) == [REDACTED]
    assert s.scrub(42) == 42
    assert s.secret_count >= 1


def test_url_encoded_forms_of_a_secret_are_replaced_too(s: Scrubber) -> None:
    s.register_secret("p@ss/word+1")
    assert "p%40ss%2Fword%2B1" not in s.scrub("https://h/x?q=p%40ss%2Fword%2B1")


def test_short_values_are_not_registered(s: Scrubber) -> None:
    s.register_secret("ab")
    assert s.scrub("abba ab") == "abba ab"


@pytest.mark.parametrize(("text", "leaked"), [
    ("https://bob:pw-9876@db.example.com/app", "pw-9876"),
    ("redis://:redispw1@127.0.0.1:6379/0", "redispw1"),
    ("https://h/cb?user=bob&password=pw-123&x=1", "pw-123"),
    ("GET /login?token=tok-abc&api_key=key-def", "tok-abc"),
    ("GET /login?token=tok-abc&api_key=key-def", "key-def"),
    ("ValueError: password=hunter2\n", "hunter2"),
    ('{"password": "hunter3", "user": "u"}', "hunter3"),
    ("Authorization: Bearer abcdef123456789", "abcdef123456789"),
    ("aws key AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig_nature1", "eyJhbGci"),
])
def test_secrets_in_free_text(s: Scrubber, text: str, leaked: str) -> None:
    out = s.scrub(text)
    assert leaked not in out
    assert REDACTED in out


def test_text_without_secrets_is_unchanged(s: Scrubber) -> None:
    for text in ("user=bob&page=2", "at 10:30:00 the token_count=5",
                 "http://example.com:8080/path", "plain message"):
        assert s.scrub(text) == text


def test_add_pattern(s: Scrubber) -> None:
    s.add_pattern(r"\bacct-\d{6}\b")
    assert s.scrub("moved acct-123456 to acct-12") == f"moved {REDACTED} to acct-12"


def test_scrubbing_never_raises(s: Scrubber) -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    out = s.scrub_mapping(loop)  # a cycle: bounded depth, no RecursionError
    assert isinstance(out, dict)


# --- the export layer ---------------------------------------------------------------------
def test_span_exporter_passes_scrubbed_copies(global_secret: str) -> None:
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(inner)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("checkout", attributes={
            "user": "bob", "password": "pw-1", "note": f"key {global_secret}",
            "token_count": 12}) as span:
        span.add_event("login", {"session_id": "sess-1", "url": "https://a:b-pass@h/"})
        span.set_status(Status(StatusCode.ERROR, f"failed with {global_secret}"))
    with tracer.start_as_current_span("clean", attributes={"user": "bob"}):
        pass
    exported = {s.name: s for s in inner.get_finished_spans()}
    span = exported["checkout"]
    assert dict(span.attributes) == {"user": "bob", "password": REDACTED,
                                     "note": f"key {REDACTED}", "token_count": 12}
    assert dict(span.events[0].attributes) == {"session_id": REDACTED,
                                               "url": f"https://a:{REDACTED}@h/"}
    assert span.status.description == f"failed with {REDACTED}"
    assert span.name == "checkout"
    assert exported["clean"].attributes == {"user": "bob"}


def test_span_exporter_forwards_flush_shutdown_and_attributes() -> None:
    class Inner(InMemorySpanExporter):
        health = "fine"
        flushed = 0

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            self.flushed += 1
            return True

    inner = Inner()
    wrapper = ScrubbingSpanExporter(inner)
    assert wrapper.force_flush(100) is True
    assert inner.flushed == 1
    assert wrapper.health == "fine"
    wrapper.shutdown()
    assert inner._stopped


def test_log_processor_scrubs_before_the_next_processor_sees_the_record(
        global_secret: str) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(ScrubbingLogRecordProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    from opentelemetry._logs import LogRecord

    provider.get_logger("t").emit(LogRecord(
        body=f"login with {global_secret}",
        attributes={"password": "pw-2", "user": "bob", "url": "https://h/?token=abc123"}))
    record = exporter.get_finished_logs()[0].log_record
    assert record.body == f"login with {REDACTED}"
    assert dict(record.attributes) == {"password": REDACTED, "user": "bob",
                                       "url": f"https://h/?token={REDACTED}"}


@pytest.mark.parametrize("mapping", [
    {"password": "hunter22"},
    {"api_key": 12345},
    {"note": "see https://bob:hunter22@example.com/x"},
    {"query": "user=bob&password=hunter22"},
    {"tags": ["ok", "fine"]},  # sequences are always walked by scrub_mapping
])
def test_is_clean_says_no_whenever_scrub_mapping_would_change_something(
        s: Scrubber, mapping: dict) -> None:
    assert not s.is_clean(mapping)


def test_is_clean_says_yes_for_ordinary_attributes_and_agrees_with_scrub_mapping(
        s: Scrubber) -> None:
    s.register_secret("canary-4f1d9")
    ordinary = {"http.route": "/orders/{id}", "order.id": 7, "ok": True, "ratio": 0.5,
                "password": "", "token": None}
    assert s.is_clean(ordinary)
    assert s.scrub_mapping(ordinary) == ordinary
    assert not s.is_clean({"message": "leaked canary-4f1d9 here"})


# --- span names, metric attributes, the libraries' log lines ---------------------------------
def test_span_and_event_names_are_scrubbed(global_secret: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(exporter)))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span(f"charge {global_secret}") as span:
        span.add_event(f"declined {global_secret}")
        span.add_event("plain")
    with tracer.start_as_current_span("clean"):
        pass
    first, second = exporter.get_finished_spans()
    assert first.name == f"charge {REDACTED}"
    assert [e.name for e in first.events] == [f"declined {REDACTED}", "plain"]
    assert second.name == "clean"


class _Collected(MetricExporter):
    """The destination of a metric export: keeps what it got."""

    def __init__(self, temporality: AggregationTemporality) -> None:
        super().__init__(preferred_temporality={Counter: temporality, Histogram: temporality})
        self.exports: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: object) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass

    def points(self) -> dict[str, list[tuple[dict[str, object], object]]]:
        out: dict[str, list[tuple[dict[str, object], object]]] = {}
        for rm in self.exports[-1].resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out[metric.name] = [(dict(p.attributes or {}), p)
                                        for p in metric.data.data_points]
        return out


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE,
                                         AggregationTemporality.DELTA])
def test_metric_attributes_are_scrubbed_and_streams_a_secret_kept_apart_merged(
        global_secret: str, temporality: AggregationTemporality) -> None:
    other = "an0ther-s3cret-value"
    scrubber.register_secret(other)
    sink = _Collected(temporality)
    reader = PeriodicExportingMetricReader(ScrubbingMetricExporter(sink),
                                           export_interval_millis=3_600_000)
    views = [View(instrument_name="exp", aggregation=ExponentialBucketHistogramAggregation())]
    provider = MeterProvider(metric_readers=[reader], views=views)
    meter = provider.get_meter("m")
    counter, histogram = meter.create_counter("orders"), meter.create_histogram("latency")
    exponential = meter.create_histogram("exp")
    gauge_values = {global_secret: 5, other: 7}
    meter.create_observable_gauge("queue", callbacks=[lambda _: [
        Observation(v, {"queue": k}) for k, v in gauge_values.items()]])
    for customer, n in ((global_secret, 1), (other, 2), ("acme", 4)):
        counter.add(n, {"customer": customer, "region": "eu"})
    histogram.record(0.5, {"customer": global_secret})
    histogram.record(3.0, {"customer": other})
    exponential.record(0.001, {"customer": global_secret})  # a fine scale
    for value in (1.0, 1000.0, 1e6):  # a wide range: a coarser scale
        exponential.record(value, {"customer": other})
    provider.force_flush()
    points = sink.points()
    provider.shutdown()

    orders = {p[0]["customer"]: p[1].value for p in points["orders"]}
    assert orders == {REDACTED: 3, "acme": 4}
    [(attrs, hist)] = points["latency"]
    assert attrs == {"customer": REDACTED}
    assert (hist.count, hist.sum, hist.min, hist.max) == (2, 3.5, 0.5, 3.0)
    assert sum(hist.bucket_counts) == 2
    [(attrs, exp)] = points["exp"]
    assert (attrs, exp.count, exp.min, exp.max) == ({"customer": REDACTED}, 4, 0.001, 1e6)
    assert sum(exp.positive.bucket_counts) + exp.zero_count == 4
    assert [p[0] for p in points["queue"]] == [{"queue": REDACTED}]
    assert points["queue"][0][1].value in (5, 7)


def test_clean_metrics_are_handed_on_untouched() -> None:
    sink = _Collected(AggregationTemporality.CUMULATIVE)
    reader = PeriodicExportingMetricReader(ScrubbingMetricExporter(sink),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("m").create_counter("orders").add(1, {"customer": "acme"})
    provider.force_flush()
    provider.shutdown()
    assert scrub_metrics(sink.exports[0]) is sink.exports[0]


def test_the_libraries_log_lines_are_scrubbed_before_any_handler_sees_them() -> None:
    """The gRPC exporter quotes its endpoint, credentials and all, without the scheme."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    keep = Keep(logging.WARNING)
    logging.getLogger().addHandler(keep)
    try:
        scrub_library_logs()
        exporter = OTLPSpanExporter(endpoint=f"http://probe:pa55-w0rd@127.0.0.1:{free_port()}",
                                    insecure=True, timeout=1)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("t").start_as_current_span("s"):
            pass
        provider.shutdown()
    finally:
        logging.getLogger().removeHandler(keep)
    quoted = [line for line in seen if "127.0.0.1" in line]
    assert quoted, seen
    assert all(f"probe:{REDACTED}@127.0.0.1" in line for line in quoted), quoted
    assert not any("pa55-w0rd" in line for line in seen)


@pytest.mark.parametrize(("text", "expected"), [
    ("http://u:pw1234@h:1/x", f"http://u:{REDACTED}@h:1/x"),
    ("https://ghp_token@github.com/org", f"https://{REDACTED}@github.com/org"),
    ("exporting to u:pw1234@127.0.0.1:4317", f"exporting to u:{REDACTED}@127.0.0.1:4317"),
    ("redis://:pw1234@localhost:6379/0", f"redis://:{REDACTED}@localhost:6379/0"),
    ('{"token": null, "password": "[REDACTED]"}', '{"token": null, "password": "[REDACTED]"}'),
    ("mail bob@example.com at 12:30", "mail bob@example.com at 12:30"),
])
def test_credentials_in_urls_and_targets(s: Scrubber, text: str, expected: str) -> None:
    assert s.scrub_text(text) == expected
