"""The scrubber: what counts as secret, and the export-layer wrappers that apply it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otelprod._pipeline.scrubbing import ScrubbingLogRecordProcessor, ScrubbingSpanExporter
from otelprod._scrub import REDACTED, Scrubber, scrubber


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
