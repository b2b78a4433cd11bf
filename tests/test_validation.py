"""Validators and validate_user_input: the seed's examples, formats, odd input, telemetry."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace

from otelprod import semconv
from otelprod.validation import (
    INPUT_TYPES,
    ContentSanitizer,
    InputValidator,
    ValidationResult,
    validate_user_input,
)


def test_seed_examples_run_as_written() -> None:
    """The seed's block, with ``src.`` → ``otelprod.`` and its free names defined."""
    user_input = "valid_name_42"
    user_html = '<p onclick="steal()">hi <script>alert(1)</script><b>there</b></p>'
    user_text = "plain\x00 text\u200b with controls"
    user_filename = "../../etc/passwd"
    value = "user@example.com"

    from otelprod.validation import ContentSanitizer, InputValidator, validate_user_input

    # Validate string
    result = InputValidator.validate_string(
        user_input,
        min_length=3,
        max_length=100,
        pattern=r'^[a-zA-Z0-9_]+$'
    )

    if result.is_valid:
        safe_value = result.sanitized_value
    else:
        print(f"Validation errors: {result.errors}")
    assert safe_value == "valid_name_42"

    # Validate email
    result = InputValidator.validate_email("user@example.com")
    assert result.is_valid and result.sanitized_value == "user@example.com"

    # Validate URL
    result = InputValidator.validate_url("https://example.com")
    assert result.is_valid and result.sanitized_value == "https://example.com"

    # Sanitize HTML
    safe_html = ContentSanitizer.sanitize_html(user_html, strict=True)
    assert safe_html == "hi there"

    # Sanitize text
    safe_text = ContentSanitizer.sanitize_text(user_text)
    assert safe_text == "plain text with controls"

    # Sanitize filename
    safe_filename = ContentSanitizer.sanitize_filename(user_filename)
    assert "/" not in safe_filename and safe_filename not in (".", "..")

    # Convenience function
    result = validate_user_input(value, input_type="email")
    assert result == ValidationResult(is_valid=True, sanitized_value="user@example.com",
                                      errors=[], warnings=[])


# --- strings ---------------------------------------------------------------------------

def test_string_length_pattern_and_attacks() -> None:
    v = InputValidator.validate_string
    assert v("ab", min_length=3).errors == ["value is 2 characters; at least 3 are required"]
    assert not v("x" * 101, max_length=100).is_valid
    # fullmatch: "$" cannot be satisfied by a trailing newline
    assert not v("abc\n", pattern=r"^[a-z]+$").is_valid
    assert not v("abc-", pattern=r"[a-z]+").is_valid
    attack = v("<script>alert(1)</script>")
    assert not attack.is_valid and attack.threats == {"xss"}
    assert attack.findings[0].rule == "xss.script_tag"
    assert v("  padded  ", strip=True).sanitized_value == "padded"
    assert v("O'Brien").is_valid


def test_bad_arguments_raise_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="min_length must be an int >= 0, got -1 \\(int\\)"):
        InputValidator.validate_string("x", min_length=-1)
    with pytest.raises(ValueError, match="max_length"):
        InputValidator.validate_string("x", min_length=5, max_length=2)
    with pytest.raises(ValueError, match="pattern"):
        InputValidator.validate_string("x", pattern="(")
    with pytest.raises(ValueError, match="allowed_schemes"):
        InputValidator.validate_url("https://x.org", allowed_schemes=())
    with pytest.raises(ValueError, match="max_value"):
        InputValidator.validate_number(1, min_value=5, max_value=1)
    with pytest.raises(ValueError, match="input_type must be one of string, email"):
        validate_user_input("x", input_type="telepathy")


# --- e-mail ----------------------------------------------------------------------------

def test_email_normalises_and_never_looks_up_dns() -> None:
    r = InputValidator.validate_email("User@EXAMPLE.com")
    assert r.sanitized_value == "User@example.com"
    idn = InputValidator.validate_email("pelé@exämple.de")
    assert idn.is_valid and idn.sanitized_value == "pelé@exämple.de"
    assert any("xn--" in w for w in idn.warnings)
    # a domain that cannot exist still passes: no DNS by default
    assert InputValidator.validate_email("a@no-such-domain-otelprod.invalid").is_valid is False
    assert InputValidator.validate_email("a@no-such-domain-otelprod-test.com").is_valid


@pytest.mark.parametrize("bad", ["plainaddress", "a@b@c.com", "a@", "@x.com", "a b@x.com",
                                 "a@x..com", "<script>@x.com"])
def test_email_refuses_malformed_addresses(bad: str) -> None:
    r = InputValidator.validate_email(bad)
    assert not r.is_valid and r.sanitized_value is None and r.errors


def test_email_that_is_an_attack_reports_the_threat() -> None:
    r = InputValidator.validate_email("x'or'1'='1@example.com")
    assert not r.is_valid and "sqli" in r.threats


# --- URLs ------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.com", "https://example.com"),
    ("HTTPS://Example.COM/a/b?x=1#top", "https://example.com/a/b?x=1#top"),
    ("https://bücher.de/päth", "https://xn--bcher-kva.de/p%C3%A4th"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("http://127.0.0.1/", "http://127.0.0.1/"),
])
def test_url_accepts_and_normalises(url: str, expected: str) -> None:
    r = InputValidator.validate_url(url)
    assert r.is_valid, r.errors
    assert r.sanitized_value == expected


@pytest.mark.parametrize(("url", "why"), [
    ("javascript:alert(1)", "scheme"),
    ("ftp://example.com", "scheme"),
    ("http:///path", "no host"),
    ("https://", "no host"),
    ("http://exa mple.com", "whitespace"),
    ("http://example.com\\@evil.com", "backslash"),
    ("http:\\\\evil.com", "backslash"),
    ("http://example.com\x00.evil.com", "control"),
    ("http://example.com/\u202e", "whitespace"),
    ("http://user:pw@example.com", "user name"),
    ("http://example.com:99999", "parsed"),
    ("http://-bad-.com", "domain"),
    ("example.com", "scheme"),
    ("https://x.org/?q=<script>alert(1)</script>", "cross-site"),
    ("https://x.org/?id=1' or '1'='1", "SQL"),
])
def test_url_refuses_what_urllib_lets_through(url: str, why: str) -> None:
    r = InputValidator.validate_url(url)
    assert not r.is_valid
    assert any(why in e for e in r.errors), r.errors


def test_url_scheme_allowlist_can_change() -> None:
    assert InputValidator.validate_url("ftp://example.com/f", allowed_schemes=("ftp",)).is_valid
    assert not InputValidator.validate_url("https://example.com", allowed_schemes=["ftp"]).is_valid


# --- numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "kind", "expected"), [
    (5, "int", 5), ("42", "int", 42), (" -7 ", "int", -7), (3.0, "int", 3),
    (2.5, "float", 2.5), ("1e3", "float", 1000.0), (7, "float", 7.0), ("-.5", "float", -0.5),
])
def test_numbers_accepted(value: object, kind: str, expected: float) -> None:
    r = validate_user_input(value, input_type=kind)
    assert r.is_valid and r.sanitized_value == expected
    assert type(r.sanitized_value) is type(expected)


@pytest.mark.parametrize(("value", "kind"), [
    (math.nan, "float"), (math.inf, "float"), ("nan", "float"), ("inf", "float"),
    ("1e999", "float"),
    (True, "int"), (2.5, "int"), ("0x10", "int"), ("1_000", "int"), ("", "int"), (None, "int"),
    ([1], "float"), ("12abc", "float"), (10**400, "float"),
])
def test_numbers_refused(value: object, kind: str) -> None:
    r = validate_user_input(value, input_type=kind)
    assert not r.is_valid and r.errors


def test_number_ranges() -> None:
    assert validate_user_input(5, input_type="int", min_value=0, max_value=10).is_valid
    r = validate_user_input(11, input_type="int", min_value=0, max_value=10)
    assert r.errors == ["value 11 is above the maximum 10"]


# --- JSON ------------------------------------------------------------------------------

def test_json_limits() -> None:
    ok = validate_user_input('{"a": [1, 2, {"b": null}]}', input_type="json")
    assert ok.is_valid and ok.sanitized_value == {"a": [1, 2, {"b": None}]}
    assert "duplicate key" in validate_user_input('{"a":1,"a":2}', input_type="json").errors[0]
    assert not validate_user_input('{"a": NaN}', input_type="json").is_valid
    assert not validate_user_input("[" * 50 + "]" * 50, input_type="json", max_depth=10).is_valid
    assert not validate_user_input("[" * 100_000, input_type="json").is_valid
    assert not validate_user_input('"' + "x" * 100 + '"', input_type="json", max_bytes=50).is_valid
    assert not validate_user_input("{bad", input_type="json").is_valid
    warned = validate_user_input('{"q": "<script>alert(1)</script>"}', input_type="json")
    assert warned.is_valid and warned.warnings and warned.threats == {"xss"}


# --- file names, html, text --------------------------------------------------------------

def test_filename_refuses_unsafe_names_but_offers_the_safe_form() -> None:
    r = validate_user_input("../../etc/passwd", input_type="filename")
    assert not r.is_valid and r.sanitized_value == "_.._etc_passwd"
    assert any("separator" in e for e in r.errors)
    assert validate_user_input("report-2024.pdf", input_type="filename").is_valid
    assert not validate_user_input("CON", input_type="filename").is_valid


def test_html_is_sanitized_and_attacks_are_warnings() -> None:
    r = validate_user_input('<b>hi</b><img src=x onerror=alert(1)>', input_type="html")
    assert r.is_valid and r.sanitized_value == "hi"
    assert r.threats == {"xss"} and r.warnings
    loose = validate_user_input("<b>hi</b>", input_type="html", strict=False)
    assert loose.sanitized_value == "<b>hi</b>"


def test_free_text_warns_about_attacks_but_keeps_the_text() -> None:
    r = validate_user_input("How do I stop ' OR 1=1 -- attacks?", input_type="text")
    assert r.is_valid and r.threats == {"sqli"} and r.warnings
    assert validate_user_input("a\u202eb", input_type="text").sanitized_value == "ab"


# --- never raises ----------------------------------------------------------------------

ODD_VALUES = [None, b"bytes", b"\xff\xfe", "a\ud800b", 42, 4.2, object(), ["list"], {"d": 1},
              "x" * 2_000_000, "", "\x00", "<" * 65536, float("nan")]


@pytest.mark.parametrize("input_type", list(INPUT_TYPES))
@pytest.mark.parametrize("odd", ODD_VALUES, ids=lambda v: type(v).__name__ + str(len(repr(v))))
def test_odd_input_gives_a_result_never_an_exception(input_type: str, odd: object) -> None:
    r = validate_user_input(odd, input_type=input_type)
    assert isinstance(r, ValidationResult)
    assert isinstance(r.errors, list) and isinstance(r.warnings, list)
    if not isinstance(odd, (str, int, float)):  # None, bytes, containers, objects
        assert not r.is_valid and r.errors


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.sampled_from(list(INPUT_TYPES)))
def test_every_validator_returns_a_result_for_any_text(text: str, input_type: str) -> None:
    r = validate_user_input(text, input_type=input_type)
    assert isinstance(r, ValidationResult)
    assert r.is_valid == (not r.errors)
    if not r.is_valid and input_type != "filename":
        assert r.sanitized_value is None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100))
def test_every_sanitizer_returns_text_for_any_text(text: str) -> None:
    assert isinstance(ContentSanitizer.sanitize_html(text), str)
    assert isinstance(ContentSanitizer.sanitize_text(text), str)
    assert ContentSanitizer.sanitize_filename(text)


# --- telemetry -------------------------------------------------------------------------

def test_failures_are_counted_and_recorded_without_the_raw_input(telemetry) -> None:
    secret_attack = "<img src=x onerror=alert('SECRET-PAYLOAD-1234')>"
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request"):
        assert not validate_user_input(secret_attack, input_type="string").is_valid
        assert not validate_user_input("not-an-email", input_type="email").is_valid
        assert not validate_user_input(None, input_type="int").is_valid
        assert validate_user_input("fine", input_type="string").is_valid

    points = telemetry.metrics()[semconv.METRIC_VALIDATION_FAILURES]
    counts = {(a[semconv.VALIDATION_INPUT_TYPE], a[semconv.VALIDATION_THREAT]): p.value
              for a, p in points}
    assert counts == {("string", "xss"): 1, ("email", "format"): 1, ("int", "none"): 1}

    events = telemetry.events(semconv.EVENT_VALIDATION_FAILED)
    assert len(events) == 3
    xss = events[0].attributes
    assert xss[semconv.VALIDATION_THREAT] == "xss"
    assert "xss.event_handler" in xss[semconv.VALIDATION_RULES]
    assert xss[semconv.VALIDATION_VALUE_LENGTH] == len(secret_attack)
    assert len(xss[semconv.VALIDATION_VALUE_HASH]) == 16
    for event in events:
        assert not any("SECRET-PAYLOAD" in str(v) for v in event.attributes.values())


def test_telemetry_trouble_never_reaches_the_caller(monkeypatch) -> None:
    from otelprod.validation import _telemetry_hooks

    class Broken:
        def add(self, *args, **kwargs):
            raise RuntimeError("exporter on fire")

    monkeypatch.setattr(_telemetry_hooks, "_failures", Broken())
    r = validate_user_input("<script>", input_type="string")
    assert not r.is_valid
