"""What the exporters have seen, as typed records: the basis of the status report.

:class:`ExportHealth` is updated by each export of a signal; :class:`SignalStatus`
and :class:`ExportStatus` are the snapshots handed up to the status report and
the exporter health check (``to_dict()`` is their JSON form). The failure and
drop counters are the exporter's own telemetry (``otelprod.export.*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry.metrics import Counter

from otelprod import semconv


@dataclass(frozen=True)
class SignalStatus:
    """One signal's exporter: where it sends, how it went, and what waits on disk."""

    protocol: str
    endpoint: str
    exports: int = 0
    failures: int = 0
    connected: bool | None = None  # None: nothing exported yet
    last_error: str | None = None
    spooling: bool = False
    spool_bytes: int = 0
    dropped: int = 0
    segments: int = 0
    spool_dir: str | None = None


@dataclass(frozen=True)
class ExportStatus:
    """The whole export pipeline.

    ``mode`` is a ``PipelineMode`` value, or ``not_initialized`` when there is
    no pipeline (before ``init()``, after ``shutdown()``).
    """

    enabled: bool
    mode: str
    connected: bool | None = None
    spooling: bool = False
    spool_bytes: int = 0
    dropped: int = 0
    failures: int = 0
    signals: Mapping[str, SignalStatus] = field(default_factory=dict)

    @classmethod
    def not_initialized(cls) -> ExportStatus:
        return cls(enabled=False, mode="not_initialized")

    @classmethod
    def of_signals(cls, mode: str, signals: Mapping[str, SignalStatus]) -> ExportStatus:
        seen = [s.connected for s in signals.values() if s.connected is not None]
        return cls(
            enabled=True, mode=mode, connected=all(seen) if seen else None,
            spooling=any(s.spooling for s in signals.values()),
            spool_bytes=sum(s.spool_bytes for s in signals.values()),
            dropped=sum(s.dropped for s in signals.values()),
            failures=sum(s.failures for s in signals.values()),
            signals=dict(signals))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, for the status report and the health endpoint."""
        return asdict(self)


class ExportHealth:
    """What the exporters of one signal have seen, updated on every export."""

    def __init__(self, signal: str) -> None:
        self.signal = signal
        self.exports = 0
        self.failures = 0
        self.last_ok: bool | None = None
        self.last_error: str | None = None
        self._attrs = {semconv.SIGNAL: signal}

    def record(self, ok: bool, error: str | None = None) -> None:
        self.exports += 1
        self.last_ok = ok
        if not ok:
            self.failures += 1
            self.last_error = error
            _failure_counter().add(1, self._attrs)


_failures: Counter | None = None
_dropped: Counter | None = None


def _failure_counter() -> Counter:
    global _failures
    if _failures is None:
        from otelprod._telemetry import meter

        _failures = meter.create_counter(
            semconv.METRIC_EXPORT_FAILURES, unit="{export}",
            description="Exports the collector did not accept, by signal.")
    return _failures


def record_drop(signal: str, count: int) -> None:
    """Count ``count`` items of ``signal`` that will never reach the collector."""
    global _dropped
    try:
        if _dropped is None:
            from otelprod._telemetry import meter

            _dropped = meter.create_counter(
                semconv.METRIC_EXPORT_DROPPED, unit="{item}",
                description="Spans, log records and metric points dropped before reaching "
                            "the collector (spool bound, rejected by the collector), by signal.")
        _dropped.add(count, {semconv.SIGNAL: signal})
    except Exception:
        pass


def prime_export_metrics() -> None:
    """Start the failure and drop series at zero, so dashboards and alerts
    see them (and their rate) from the first export on, not from the first outage."""
    try:
        for signal in semconv.Signal.ALL:
            _failure_counter().add(0, {semconv.SIGNAL: signal})
            record_drop(signal, 0)
    except Exception:
        pass
