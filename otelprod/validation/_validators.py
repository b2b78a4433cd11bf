"""Validators: each takes anything and returns a ``ValidationResult``, never an exception.

Bad *arguments* (``min_length=-1``) are programming errors and raise
``ValueError`` naming the argument; bad *input* never raises. Each failure is
counted in ``validation.failures`` and described by a ``validation.failed``
span event carrying rule ids, a length and a hash, never the input itself.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import email_validator
import idna

from otelprod import semconv
from otelprod.validation._decode import Prepared, to_text
from otelprod.validation._result import Finding, ValidationResult
from otelprod.validation._sanitizers import (
    _check_filename_args,
    _clean_filename,
    sanitize_html,
    sanitize_text,
)
from otelprod.validation._sqli import scan_sqli
from otelprod.validation._telemetry_hooks import record_failure
from otelprod.validation._xss import scan_xss

#: inputs longer than this are refused before any scanning (characters)
MAX_INPUT_LENGTH = 1_000_000

_Threat = semconv.ValidationThreat
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\\\u00a0\u1680\u2000-\u200f\u2028-\u202f"
                            r"\u205f-\u2064\u3000\ufeff]")
_INT_TEXT = re.compile(r"[+-]?\d{1,64}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d{1,64}(?:\.\d{0,64})?|\.\d{1,64})(?:[eE][+-]?\d{1,4})?")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SEVERITY = {_Threat.NONE: 0, _Threat.FORMAT: 1, _Threat.SQLI: 2, _Threat.XSS: 3}


class _Check:
    """Collects one validation's outcome and which kind of failure it is."""

    def __init__(self, input_type: str, value: Any) -> None:
        self.input_type = input_type
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.findings: list[Finding] = []
        self.threat = _Threat.NONE
        self.text, problems = to_text(value)
        self.missing = value is None
        for problem in problems:
            self.fail(problem, _Threat.NONE if self.missing else _Threat.FORMAT)
        self.too_long = len(self.text) > MAX_INPUT_LENGTH
        if self.too_long:
            self.fail(f"value is {len(self.text)} characters; "
                      f"at most {MAX_INPUT_LENGTH} are accepted", _Threat.NONE)

    def fail(self, message: str, threat: str = _Threat.FORMAT) -> None:
        self.errors.append(message)
        if _SEVERITY[threat] > _SEVERITY[self.threat] or not self.errors[:-1]:
            self.threat = threat

    def require_str(self, value: Any) -> bool:
        """Record a value that is not a str; True while nothing has failed."""
        if not isinstance(value, str) and not self.errors:
            self.fail(f"value must be a str, got {type(value).__name__}")
        return not self.errors

    def within(self, max_length: int, what: str = "value") -> bool:
        """Record text longer than ``max_length``; True when it fits."""
        if len(self.text) > max_length:
            self.fail(f"{what} is {len(self.text)} characters; at most {max_length} are allowed")
            return False
        return True

    def threats(self, text: str | None = None, *, as_errors: Iterable[str] = ("xss", "sqli"),
                decode: bool = True) -> None:
        """Run both detectors; findings of the kinds in ``as_errors`` fail, the rest warn."""
        # decode=False: the value is already what a browser/database would see
        prepared = Prepared(self.text if text is None else text, [], decode=decode)
        for finding in scan_xss(prepared) + scan_sqli(prepared):
            self.findings.append(finding)
            if finding.threat in as_errors:
                self.fail(f"looks like {_THREAT_NAMES[finding.threat]}: {finding.message} "
                          f"[{finding.rule}]", finding.threat)
            else:
                self.warnings.append(f"looks like {_THREAT_NAMES[finding.threat]}: "
                                     f"{finding.message} [{finding.rule}]")

    def result(self, sanitized: Any) -> ValidationResult:
        valid = not self.errors
        if not valid:
            record_failure(self.input_type, self.threat, self.text, self.errors, self.findings)
        return ValidationResult(valid, sanitized if valid else None, self.errors,
                                self.warnings, self.findings)


_THREAT_NAMES = {"xss": "cross-site scripting", "sqli": "SQL injection"}

_F = TypeVar("_F", bound=Callable[..., ValidationResult])


def _never_raises(input_type: str) -> Callable[[_F], _F]:
    """Turn an unexpected exception into a failed result; ``ValueError`` for bad arguments stays."""

    def wrap(fn: _F) -> _F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> ValidationResult:
            try:
                return fn(*args, **kwargs)
            except _ArgumentError:
                raise
            except Exception as exc:  # a validator bug must not become the caller's crash
                check = _Check(input_type, "")
                check.fail(f"value could not be validated ({type(exc).__name__})")
                return check.result(None)

        return guarded  # type: ignore[return-value]

    return wrap


class _ArgumentError(ValueError):
    """A caller passed a bad *argument* (not bad input): that is a bug worth raising."""


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise _ArgumentError(
            f"{name} must be {allowed}, got {value!r} ({type(value).__name__})"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@_never_raises("string")
def validate_string(
    value: Any,
    min_length: int = 0,
    max_length: int | None = None,
    pattern: str | re.Pattern[str] | None = None,
    *,
    strip: bool = False,
    check_threats: bool = True,
) -> ValidationResult:
    """A single-line string field: length in characters, an optional pattern, no attacks.

    ``pattern`` must match the *whole* value (``re.fullmatch``), so a ``$``
    cannot be satisfied by a trailing newline. Control characters are
    refused; XSS and SQL-injection findings are errors.
    """
    _require(_is_count(min_length), "min_length", min_length, "an int >= 0")
    _require(max_length is None or (_is_count(max_length) and max_length >= min_length),
             "max_length", max_length, f"None or an int >= min_length ({min_length})")
    if isinstance(pattern, str):
        try:
            pattern = re.compile(pattern)
        except re.error as exc:
            raise _ArgumentError(f"pattern is not a valid regular expression: {exc}") from exc
    _require(pattern is None or isinstance(pattern, re.Pattern), "pattern", pattern,
             "None, a str or a compiled re.Pattern")
    check = _Check("string", value)
    check.require_str(value)
    if check.too_long or check.missing:
        return check.result(None)
    text = check.text.strip() if strip else check.text
    if len(text) < min_length:
        check.fail(f"value is {len(text)} characters; at least {min_length} are required")
    if max_length is not None and len(text) > max_length:
        check.fail(f"value is {len(text)} characters; at most {max_length} are allowed")
    if _CONTROL.search(text) or "\n" in text or "\r" in text:
        check.fail("value contains control characters or line breaks")
    if pattern is not None and not check.errors and pattern.fullmatch(text) is None:
        check.fail("value does not match the required pattern")
    if check_threats:
        check.threats(text)
    return check.result(text)


@_never_raises("email")
def validate_email(
    value: Any,
    *,
    check_deliverability: bool = False,
    allow_smtputf8: bool = True,
) -> ValidationResult:
    """An e-mail address, checked and normalised by ``email-validator``.

    No DNS lookup unless ``check_deliverability=True``. The sanitized value is
    the normalised form: the domain lower-cased and, for internationalised
    domains, in Unicode NFC (``ascii_domain`` is in the warnings for IDNs).
    """
    check = _Check("email", value)
    if not check.require_str(value):
        return check.result(None)
    try:
        info = email_validator.validate_email(
            check.text,
            check_deliverability=check_deliverability,
            allow_smtputf8=allow_smtputf8,
        )
    except email_validator.EmailNotValidError as exc:
        check.fail(f"not a valid e-mail address: {exc}")
        check.threats(as_errors=())  # explain an attack, but the format error decides
        if check.findings:
            check.threat = check.findings[0].threat
        return check.result(None)
    if info.ascii_domain and info.ascii_domain != info.domain:
        check.warnings.append(f"internationalised domain; ASCII form is {info.ascii_domain}")
    check.threats(info.normalized, decode=False)
    return check.result(info.normalized)


@_never_raises("url")
def validate_url(
    value: Any,
    *,
    allowed_schemes: Iterable[str] = ("http", "https"),
    require_host: bool = True,
    allow_credentials: bool = False,
    max_length: int = 2048,
) -> ValidationResult:
    """An absolute URL with an allowed scheme and a real host.

    Stricter than ``urllib.parse``: refuses control characters, whitespace
    (also Unicode spaces and invisible characters), backslashes (browsers read
    them as ``/``, which smuggles hosts past naive checks), user:password
    parts, a missing host and invalid ports. IDN hosts are converted to
    punycode (IDNA 2008 with UTS #46 mapping) in the sanitized value.
    """
    schemes = {s.lower() for s in allowed_schemes} if not isinstance(allowed_schemes, str) \
        else None
    _require(bool(schemes) and all(isinstance(s, str) for s in schemes or ()), "allowed_schemes",
             allowed_schemes, "a non-empty collection of scheme names, e.g. ('https',)")
    _require(_is_count(max_length) and max_length > 0, "max_length", max_length, "an int > 0")
    assert schemes is not None
    check = _Check("url", value)
    if not check.require_str(value):
        return check.result(None)
    if not check.within(max_length, "URL"):
        return check.result(None)
    text = check.text
    if _URL_FORBIDDEN.search(text):
        check.fail("URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        check.fail(f"URL cannot be parsed: {exc}")
        check.threats(as_errors=())
        return check.result(None)
    scheme = parts.scheme.lower()
    if not scheme:
        check.fail("URL has no scheme (expected one of " + ", ".join(sorted(schemes)) + ")")
    elif scheme not in schemes:
        check.fail(f"URL scheme {scheme!r} is not allowed (allowed: {', '.join(sorted(schemes))})")
    host = parts.hostname or ""
    if require_host and not host:
        check.fail("URL has no host")
    if (parts.username is not None or parts.password is not None) and not allow_credentials:
        check.fail("URL carries a user name or password")
    ascii_host = _normalise_host(host, check) if host else ""
    check.threats(text, as_errors=("xss", "sqli"))
    if check.errors:
        return check.result(None)
    netloc = ascii_host if ":" not in ascii_host else f"[{ascii_host}]"
    if parts.username is not None:
        netloc = parts.netloc.rpartition("@")[0] + "@" + netloc
    if port is not None:
        netloc += f":{port}"
    path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    fragment = quote(parts.fragment, safe="/?%:@!$&'()*+,;=-._~")
    url = f"{scheme}://{netloc}{path}" if netloc or scheme in ("http", "https") \
        else f"{scheme}:{path}"
    if query:
        url += "?" + query
    if fragment:
        url += "#" + fragment
    return check.result(url)


def _normalise_host(host: str, check: _Check) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        ascii_host = idna.encode(host.rstrip("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        check.fail(f"URL host is not a valid domain name: {exc}")
        return ""
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        check.fail("URL host is not a valid domain name")
        return ""
    if ascii_host != host:
        check.warnings.append(f"host normalised to {ascii_host}")
    return ascii_host


@_never_raises("number")
def validate_number(
    value: Any,
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    integer: bool = False,
) -> ValidationResult:
    """An int or a finite float (or a decimal string of one) within optional bounds.

    ``bool`` is refused (it is an ``int`` to Python, never a number to a
    user); so are NaN, infinities, hex and ``1_000`` forms.
    """
    for name, bound in (("min_value", min_value), ("max_value", max_value)):
        finite = isinstance(bound, (int, float)) and not isinstance(bound, bool) \
            and math.isfinite(bound)
        _require(bound is None or finite, name, bound, "None or a finite number")
    _require(min_value is None or max_value is None or min_value <= max_value, "max_value",
             max_value, f">= min_value ({min_value})")
    input_type = "int" if integer else "float"
    check = _Check(input_type, value)
    if check.errors:
        return check.result(None)
    number = _parse_number(value, integer, check)
    if number is None:
        return check.result(None)
    if min_value is not None and number < min_value:
        check.fail(f"value {number} is below the minimum {min_value}")
    if max_value is not None and number > max_value:
        check.fail(f"value {number} is above the maximum {max_value}")
    return check.result(number)


def _parse_number(value: Any, integer: bool, check: _Check) -> int | float | None:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):
        check.fail(f"value must be {kind}, got bool")
        return None
    if isinstance(value, int):
        if integer:
            return value
        try:
            return float(value)
        except OverflowError:
            check.fail("value is too large for a float")
            return None
    if isinstance(value, (float, Decimal)):
        if not math.isfinite(value):
            check.fail("value must be finite (NaN and infinity are refused)")
            return None
        if integer:
            if value != int(value):
                check.fail("value must be an integer, got a fraction")
                return None
            return int(value)
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            return int(text) if integer else float(int(text))
        if not integer and _FLOAT_TEXT.fullmatch(text):
            try:
                number = float(Decimal(text))
            except (InvalidOperation, ValueError):
                number = math.inf
            if math.isfinite(number):
                return number
            check.fail("value must be finite (NaN and infinity are refused)")
            return None
        check.fail(f"value is not {kind} in decimal notation")
        return None
    check.fail(f"value must be {kind}, got {type(value).__name__}")
    return None


@_never_raises("json")
def validate_json(
    value: Any,
    *,
    max_bytes: int = 1_000_000,
    max_depth: int = 32,
) -> ValidationResult:
    """JSON text within size and nesting limits, without duplicate keys or NaN.

    Duplicate keys are refused because parsers disagree on which one wins, a
    classic way to slip a value past one layer. Strings inside that look
    like attacks become warnings. The sanitized value is the parsed data.
    """
    _require(_is_count(max_bytes) and max_bytes > 0, "max_bytes", max_bytes, "an int > 0")
    _require(_is_count(max_depth) and max_depth > 0, "max_depth", max_depth, "an int > 0")
    check = _Check("json", value)
    if not isinstance(value, (str, bytes, bytearray)) and not check.errors:
        check.fail(f"value must be JSON text (str or bytes), got {type(value).__name__}")
    if check.errors:
        return check.result(None)
    size = len(check.text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        check.fail(f"JSON is {size} bytes; at most {max_bytes} are allowed")
        return check.result(None)
    try:
        data = json.loads(check.text, object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constants)
    except RecursionError:
        check.fail(f"JSON nests deeper than {max_depth} levels")
        return check.result(None)
    except ValueError as exc:
        check.fail(f"not valid JSON: {exc}")
        return check.result(None)
    depth, strings = _walk(data, max_depth)
    if depth > max_depth:
        check.fail(f"JSON nests deeper than {max_depth} levels")
        return check.result(None)
    for text in strings[:1000]:
        check.threats(text, as_errors=())
    return check.result(data)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:40]!r}")
        result[key] = item
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _walk(data: Any, limit: int) -> tuple[int, list[str]]:
    """Maximum nesting depth (stopping past ``limit``) and every string, iteratively."""
    deepest = 0
    strings: list[str] = []
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            break
        if isinstance(item, str):
            strings.append(item)
        elif isinstance(item, dict):
            strings.extend(item.keys())
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest, strings


@_never_raises("filename")
def validate_filename(value: Any, *, max_bytes: int = 255) -> ValidationResult:
    """A file name that needs no cleaning; the sanitized value is always the safe form."""
    _check_filename_args(max_bytes, "_")
    check = _Check("filename", value)
    if not check.require_str(value):
        return check.result(None)
    safe, problems = _clean_filename(check.text, max_bytes, "_")
    for problem in problems:
        check.fail(f"file name {problem}")
    check.threats()
    result = check.result(safe)
    result.sanitized_value = safe  # the safe alternative, even when the input is refused
    return result


@_never_raises("html")
def validate_html(value: Any, *, strict: bool = True,
                  max_length: int = MAX_INPUT_LENGTH) -> ValidationResult:
    """HTML content: always valid once sanitized; attacks found are warnings."""
    check = _Check("html", value)
    if not check.require_str(value):
        return check.result(None)
    if not check.within(max_length):
        return check.result(None)
    check.threats(as_errors=())
    clean = sanitize_html(check.text, strict=strict)
    if clean != check.text:
        check.warnings.append("markup was removed or escaped")
    return check.result(clean)


@_never_raises("text")
def validate_text(value: Any, *, max_length: int = 100_000) -> ValidationResult:
    """Free text: invisible and control characters removed; attacks found are warnings.

    Free text is displayed, not executed or spliced into queries, so a
    comment that *discusses* ``<script>`` must not be refused; the warnings
    let the caller log or moderate it.
    """
    _require(_is_count(max_length) and max_length > 0, "max_length", max_length, "an int > 0")
    check = _Check("text", value)
    if not check.require_str(value):
        return check.result(None)
    if not check.within(max_length):
        return check.result(None)
    check.threats(as_errors=())
    return check.result(sanitize_text(check.text))


class InputValidator:
    """The seed's validator namespace: every method is static and never raises on odd input."""

    validate_string = staticmethod(validate_string)
    validate_email = staticmethod(validate_email)
    validate_url = staticmethod(validate_url)
    validate_number = staticmethod(validate_number)
    validate_json = staticmethod(validate_json)
    validate_filename = staticmethod(validate_filename)
    validate_html = staticmethod(validate_html)
    validate_text = staticmethod(validate_text)
