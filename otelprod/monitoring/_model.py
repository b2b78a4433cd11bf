"""The plain values monitoring hands out: health results and alerts.

They are dataclasses with a ``to_dict()`` that is JSON-serialisable, so a
status report is a tree of plain data that any web framework can return.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar

from otelprod import semconv


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def iso(moment: _dt.datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z``, like the JSON log lines."""
    if moment is None:
        return None
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


_E = TypeVar("_E", bound=enum.Enum)


def _coerce(cls: type[_E], value: object, key: str, expected: str) -> _E:
    """``value`` as a member of ``cls``: a member, or its value ignoring case and outer spaces."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(s.value for s in cls)
    raise ValueError(
        f"{key}: expected {expected} or one of {allowed}, "
        f"got {type(value).__name__} {value!r}")


class HealthStatus(enum.Enum):
    """How a component is doing. The values are the ``health.status`` attribute values."""

    HEALTHY = semconv.HealthStatusValue.HEALTHY
    DEGRADED = semconv.HealthStatusValue.DEGRADED
    UNHEALTHY = semconv.HealthStatusValue.UNHEALTHY
    UNKNOWN = semconv.HealthStatusValue.UNKNOWN

    @classmethod
    def coerce(cls, value: HealthStatus | str) -> HealthStatus:
        return _coerce(cls, value, "health status", "a HealthStatus")


#: How bad each status is; the overall status is the worst one.
STATUS_RANK = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.UNKNOWN: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.UNHEALTHY: 3,
}


@dataclass
class HealthCheckResult:
    """The outcome of one health check run."""

    component: str
    status: HealthStatus
    message: str = ""
    response_time_ms: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: _dt.datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        # the seed passes enum members; "healthy" is as clear, and "bogus" is refused here,
        # not later in a status report or a probe
        self.status = _coerce(HealthStatus, self.status, "status", "a HealthStatus")
        problems = []
        if not isinstance(self.component, str):
            problems.append(f"component: expected a str, got {type(self.component).__name__} "
                            f"{self.component!r}")
        if not isinstance(self.message, str):
            problems.append(f"message: expected a str, got {type(self.message).__name__} "
                            f"{self.message!r}")
        elapsed = self.response_time_ms
        if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not (
                0 <= elapsed < float("inf")):
            problems.append(f"response_time_ms: expected a finite number >= 0, got "
                            f"{type(elapsed).__name__} {elapsed!r}")
        if not isinstance(self.metadata, dict):
            problems.append(f"metadata: expected a dict, got {type(self.metadata).__name__} "
                            f"{self.metadata!r}")
        if not isinstance(self.timestamp, _dt.datetime):
            problems.append(f"timestamp: expected a datetime, got "
                            f"{type(self.timestamp).__name__} {self.timestamp!r}")
        if problems:
            raise ValueError("HealthCheckResult: " + "; ".join(problems))

    @property
    def is_healthy(self) -> bool:
        return self.status is HealthStatus.HEALTHY

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "status": self.status.value,
            "message": self.message,
            "response_time_ms": round(float(self.response_time_ms), 3),
            "metadata": dict(self.metadata),
            "timestamp": iso(self.timestamp),
        }


class AlertSeverity(enum.Enum):
    """How urgent an alert is; mapped onto log levels and Alertmanager's ``severity`` label."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @classmethod
    def coerce(cls, value: AlertSeverity | str) -> AlertSeverity:
        return _coerce(cls, value, "severity", "an AlertSeverity")


class AlertStatus(enum.Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass
class Alert:
    """One alert. While it is active, raising it again counts another occurrence."""

    id: str
    title: str
    message: str
    severity: AlertSeverity
    component: str
    labels: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    status: AlertStatus = AlertStatus.FIRING
    occurrences: int = 1
    first_seen: _dt.datetime = field(default_factory=utcnow)
    last_seen: _dt.datetime = field(default_factory=utcnow)
    resolved_at: _dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.status is AlertStatus.FIRING

    # the seed's original exposed these two names
    @property
    def resolved(self) -> bool:
        return not self.active

    @property
    def timestamp(self) -> _dt.datetime:
        return self.first_seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "message": self.message,
            "severity": self.severity.value,
            "component": self.component,
            "labels": dict(self.labels),
            "fingerprint": self.fingerprint,
            "status": self.status.value,
            "occurrences": self.occurrences,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "resolved_at": iso(self.resolved_at),
        }
