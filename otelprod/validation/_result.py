"""What every validator hands back, and what the detectors report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Threat = Literal["xss", "sqli"]


@dataclass(frozen=True)
class Finding:
    """One reason a detector thinks the input is an attack.

    ``rule`` is a stable id (``"xss.event_handler"``, ``"sqli.union_select"``)
    that alerts and tests can key on; ``excerpt`` is a short piece of the
    *decoded* input around the match, for the developer reading the result.
    It never goes into telemetry.
    """

    threat: Threat
    rule: str
    message: str
    excerpt: str = ""

    def __str__(self) -> str:
        return f"{self.threat}: {self.message} [{self.rule}]"


_new_object = object.__new__


def make_finding(threat: Threat, rule: str, message: str, excerpt: str) -> Finding:
    """``Finding(...)`` for the detectors' hot path: a frozen dataclass sets each field through
    ``object.__setattr__``, which costs a detector flagging a short input a twentieth of its
    time; this fills the instance's ``__dict__`` directly (the same object, equal and hashed
    alike)."""
    made = _new_object(Finding)
    fields = made.__dict__
    fields["threat"] = threat
    fields["rule"] = rule
    fields["message"] = message
    fields["excerpt"] = excerpt
    return made


@dataclass
class ValidationResult:
    """The seed's result: valid or not, the cleaned value, and why.

    ``findings`` adds the detectors' evidence (empty when nothing looked like
    an attack), so callers can tell an XSS attempt from a typo without parsing
    the error strings.
    """

    is_valid: bool
    sanitized_value: Any = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def threats(self) -> set[str]:
        return {f.threat for f in self.findings}
