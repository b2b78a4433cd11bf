"""Validate and sanitize untrusted input; detect XSS and SQL injection.

::

    from otelprod.validation import InputValidator, ContentSanitizer, validate_user_input

    result = InputValidator.validate_string(name, min_length=3, max_length=100,
                                            pattern=r"^[a-zA-Z0-9_]+$")
    safe_html = ContentSanitizer.sanitize_html(user_html, strict=True)
    findings = detect_sqli(query_param)      # [Finding(threat="sqli", rule=...), ...]
    findings = detect_threats(comment)       # both detectors, one decoding

Nothing here raises on odd input (``None``, bytes, invalid Unicode, megabytes):
validators return a ``ValidationResult`` with errors, sanitizers return a safe
string, detectors return findings. Failures are counted in
``validation.failures`` and recorded as ``validation.failed`` span events,
with a hash and length in place of the input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otelprod.validation._decode import prepare
from otelprod.validation._result import Finding, ValidationResult
from otelprod.validation._sanitizers import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    ALLOWED_URL_SCHEMES,
    ContentSanitizer,
    sanitize_filename,
    sanitize_html,
    sanitize_json,
    sanitize_text,
)
from otelprod.validation._sqli import detect_sqli, scan_sqli
from otelprod.validation._validators import (
    MAX_INPUT_LENGTH,
    InputValidator,
    validate_email,
    validate_filename,
    validate_html,
    validate_json,
    validate_number,
    validate_string,
    validate_text,
    validate_url,
)
from otelprod.validation._xss import detect_xss, scan_xss

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "INPUT_TYPES",
    "MAX_INPUT_LENGTH",
    "ContentSanitizer",
    "Finding",
    "InputValidator",
    "ValidationResult",
    "detect_sqli",
    "detect_threats",
    "detect_xss",
    "is_attack",
    "sanitize_filename",
    "sanitize_html",
    "sanitize_json",
    "sanitize_text",
    "validate_email",
    "validate_filename",
    "validate_html",
    "validate_json",
    "validate_number",
    "validate_string",
    "validate_text",
    "validate_url",
    "validate_user_input",
]

#: input_type → (validator, how it treats attacks)
INPUT_TYPES: dict[str, str] = {
    "string": "single-line field; XSS and SQL injection are errors",
    "email": "e-mail address (email-validator, no DNS); attacks are errors",
    "url": "http(s) URL with a real host; attacks are errors",
    "int": "integer, optional min_value/max_value",
    "float": "finite number, optional min_value/max_value",
    "filename": "file name; anything needing cleaning is an error, sanitized_value is safe",
    "html": "HTML, sanitized with nh3; attacks are warnings (they are removed)",
    "json": "JSON text with size/depth limits and no duplicate keys; attacks are warnings",
    "text": "free text; invisible characters removed; attacks are warnings",
}


def validate_user_input(value: Any, input_type: str = "string", **options: Any) -> ValidationResult:
    """Validate ``value`` as ``input_type`` (see ``INPUT_TYPES``); options go to the validator.

    An unknown ``input_type`` is a programming error and raises ``ValueError``,
    an option its validator does not take ``TypeError``; the value itself
    never makes this raise.
    """
    if options:
        _check_options(input_type, options)
    if input_type == "string":
        return validate_string(value, **options)
    if input_type == "email":
        return validate_email(value, **options)
    if input_type == "url":
        return validate_url(value, **options)
    if input_type == "int":
        return validate_number(value, integer=True, **options)
    if input_type in ("float", "number"):
        return validate_number(value, integer=False, **options)
    if input_type == "filename":
        return validate_filename(value, **options)
    if input_type == "html":
        return validate_html(value, **options)
    if input_type == "json":
        return validate_json(value, **options)
    if input_type == "text":
        return validate_text(value, **options)
    raise ValueError(
        f"input_type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r} "
        f"({type(input_type).__name__})"
    )


def _check_options(input_type: str, options: dict[str, Any]) -> None:
    """Options the validator does not take are refused, not swallowed into an invalid result."""
    import inspect

    validators: dict[str, Callable[..., Any]] = {
        "string": validate_string, "email": validate_email, "url": validate_url,
        "int": validate_number, "float": validate_number, "number": validate_number,
        "filename": validate_filename, "html": validate_html, "json": validate_json,
        "text": validate_text}
    target = validators.get(input_type) if isinstance(input_type, str) else None
    if target is None:
        return  # an unknown input_type is refused with its own message
    accepted = [name for name in inspect.signature(target).parameters
                if name not in ("value", "integer")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"validate_user_input: input_type {input_type!r} takes no option "
                        f"{', '.join(map(repr, unknown))} (it takes: {', '.join(accepted)})")


def detect_threats(value: Any) -> list[Finding]:
    """XSS then SQL-injection findings for ``value``, decoded once; ``[]`` if it looks clean.

    What ``detect_xss(value) + detect_sqli(value)`` returns, at the cost of one decoding.
    Accepts anything and never raises.
    """
    try:
        prepared = prepare(value)
        return scan_xss(prepared) + scan_sqli(prepared)
    except Exception:  # pragma: no cover - a detector bug must not become the caller's
        return []


def is_attack(value: Any) -> bool:
    """True when either detector has a finding; the cheap yes/no for filters and WAF rules."""
    try:
        prepared = prepare(value)
        return bool(scan_xss(prepared) or scan_sqli(prepared))
    except Exception:  # pragma: no cover - a detector bug must not become the caller's
        return False
