"""Validation failures as telemetry: one counter, one span event, never the raw input."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from otelprod import semconv
from otelprod._telemetry import add_event, meter, truncate
from otelprod.validation._result import Finding

_failures = meter.create_counter(
    semconv.METRIC_VALIDATION_FAILURES,
    unit="{failure}",
    description="Inputs that failed validation, by input type and threat",
)


def fingerprint(text: str) -> str:
    """A short, stable hash so repeated attacks can be correlated without storing them."""
    data = text.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:16]


def record_failure(
    input_type: str,
    threat: str,
    text: str,
    errors: Sequence[str],
    findings: Sequence[Finding],
) -> None:
    """Count the failure and describe it on the current span; never raises."""
    try:
        _failures.add(1, {
            semconv.VALIDATION_INPUT_TYPE: input_type,
            semconv.VALIDATION_THREAT: threat,
        })
        add_event(semconv.EVENT_VALIDATION_FAILED, {
            semconv.VALIDATION_INPUT_TYPE: input_type,
            semconv.VALIDATION_THREAT: threat,
            semconv.VALIDATION_RULES: [f.rule for f in findings],
            semconv.VALIDATION_ERRORS: [truncate(e) for e in errors[:5]],
            semconv.VALIDATION_VALUE_LENGTH: len(text),
            semconv.VALIDATION_VALUE_HASH: fingerprint(text),
        })
    except Exception:  # telemetry trouble is never the caller's exception
        pass
