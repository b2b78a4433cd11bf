"""What the exporters have seen, as typed records: the basis of the status report.

:class:`ExportHealth` is updated by each export of a signal; :class:`SignalStatus`
and :class:`ExportStatus` are the snapshots handed up to the status report and
the exporter health check (``to_dict()`` is their JSON form). The failure and
drop counters are the exporter's own telemetry (``otelprod.export.*``).

:class:`DropLedger` is where every loss of one pipeline is counted: whatever
drops an item (the SDK's full queue, the spool's bound, a damaged segment, a
collector's refusal, the shutdown deadline) records it there, by signal and
reason. The ledger adds it to ``otelprod.export.dropped{signal, reason}``,
keeps the totals for the status report, hands the not yet saved counts to the
spool's drop log (read by ``otelprod spool status``) and says it on
otelprod's logger: once per reason, then at most once a minute with the count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry.metrics import Counter

from otelprod import _forks, semconv

_log = logging.getLogger("otelprod._pipeline.export")

#: how long one reason of loss stays quiet on the logger after it was said
SAY_AGAIN_AFTER_S = 60.0

#: what each reason means to the person reading the warning
_EXPLAINED = {
    semconv.DropReason.QUEUE_FULL:
        "the SDK's in-memory queue was full (the application produces faster than the "
        "export drains; OTEL_BSP_MAX_QUEUE_SIZE / OTEL_BLRP_MAX_QUEUE_SIZE raise the bound)",
    semconv.DropReason.SPOOL_FULL:
        "the disk spool is full (spool_max_bytes, or the file system or file-size limit)",
    semconv.DropReason.SPOOL_UNUSABLE:
        "the collector did not take them and the spool directory cannot be written",
    semconv.DropReason.CORRUPT_SEGMENT: "a spooled segment was damaged",
    semconv.DropReason.SEGMENT_LOST: "a spooled segment vanished while it was being sent",
    semconv.DropReason.SHUTDOWN_DEADLINE:
        "they were still queued when the shutdown deadline passed",
    semconv.DropReason.AFTER_SHUTDOWN: "they were emitted after the pipeline was shut down",
    semconv.DropReason.REJECTED: "the collector refused them (a non-retryable answer)",
    semconv.DropReason.EXPORT_FAILED:
        "the export failed and there is no spool (spool_max_bytes=0)",
    semconv.DropReason.EXPORT_ERROR: "the exporter raised an error",
}


class DropLedger:
    """Every item one pipeline lost in this process, by (signal, reason)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.RLock()  # a SIGTERM handler may record on a thread that holds it
        self._counts: dict[tuple[str, str], int] = {}
        self._unsaved: dict[tuple[str, str], int] = {}
        self._said: dict[tuple[str, str], tuple[float, int]] = {}  # when said, count since
        self._reconcilers: list[Callable[[], None]] = []
        _forks.register(self, after_in_child=DropLedger._forget)

    def add_reconciler(self, reconcile: Callable[[], None]) -> None:
        """``reconcile()`` records losses that are counted lazily (a full SDK queue's):
        it runs before totals are read."""
        self._reconcilers.append(reconcile)

    def reconcile(self) -> None:
        for reconcile in self._reconcilers:
            try:
                reconcile()
            except Exception:
                pass

    def _forget(self) -> None:
        """A forked child starts its own count (the parent's losses are the parent's)."""
        self._lock = threading.RLock()
        self._counts, self._unsaved, self._said = {}, {}, {}

    def record(self, signal: str, count: int, reason: str) -> None:
        """Count ``count`` items of ``signal`` that will never reach the collector."""
        if count <= 0:
            return
        key = (signal, reason)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + count
            self._unsaved[key] = self._unsaved.get(key, 0) + count
            say = self._due(key, count)
        _count(count, signal, reason)
        if say is not None:
            _log.warning("otelprod: %d %s dropped (%s): " + _EXPLAINED.get(reason, reason),
                         say, signal, reason)

    def _due(self, key: tuple[str, str], count: int) -> int | None:
        """The count to say now, or None while the reason is quiet (caller holds the lock)."""
        now = self._clock()
        said_at, since = self._said.get(key, (None, 0))
        since += count
        if said_at is not None and now - said_at < SAY_AGAIN_AFTER_S:
            self._said[key] = (said_at, since)
            return None
        self._said[key] = (now, 0)
        return since

    def by_reason(self, signal: str | None = None) -> dict[str, int]:
        """reason -> items dropped (of ``signal``, or of every signal)."""
        self.reconcile()
        out: dict[str, int] = {}
        with self._lock:
            for (sig, reason), n in self._counts.items():
                if signal is None or sig == signal:
                    out[reason] = out.get(reason, 0) + n
        return out

    def total(self, signal: str | None = None) -> int:
        return sum(self.by_reason(signal).values())

    def take_unsaved(self) -> dict[tuple[str, str], int]:
        """The counts recorded since the last call, for the spool's drop log."""
        self.reconcile()
        with self._lock:
            unsaved, self._unsaved = self._unsaved, {}
        return unsaved

    def keep_unsaved(self, counts: dict[tuple[str, str], int]) -> None:
        """Put back counts that could not be saved (a full or read-only spool)."""
        with self._lock:
            for key, n in counts.items():
                self._unsaved[key] = self._unsaved.get(key, 0) + n


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
    dropped_by_reason: Mapping[str, int] = field(default_factory=dict)
    segments: int = 0
    spool_dir: str | None = None
    spool_errors: int = 0  # failures to write, claim, read or delete a segment
    spool_problem: str | None = None  # the latest of them, while it lasts


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
    dropped_by_reason: Mapping[str, int] = field(default_factory=dict)
    failures: int = 0
    signals: Mapping[str, SignalStatus] = field(default_factory=dict)

    @classmethod
    def not_initialized(cls) -> ExportStatus:
        return cls(enabled=False, mode="not_initialized")

    @classmethod
    def of_signals(cls, mode: str, signals: Mapping[str, SignalStatus]) -> ExportStatus:
        seen = [s.connected for s in signals.values() if s.connected is not None]
        reasons: dict[str, int] = {}
        for s in signals.values():
            for reason, n in s.dropped_by_reason.items():
                reasons[reason] = reasons.get(reason, 0) + n
        return cls(
            enabled=True, mode=mode, connected=all(seen) if seen else None,
            spooling=any(s.spooling for s in signals.values()),
            spool_bytes=sum(s.spool_bytes for s in signals.values()),
            dropped=sum(s.dropped for s in signals.values()), dropped_by_reason=reasons,
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


def _count(count: int, signal: str, reason: str) -> None:
    """Add to ``otelprod.export.dropped{signal, reason}`` (never raises)."""
    global _dropped
    try:
        if _dropped is None:
            from otelprod._telemetry import meter

            _dropped = meter.create_counter(
                semconv.METRIC_EXPORT_DROPPED, unit="{item}",
                description="Spans, log records and metric points that will never reach the "
                            "collector, by signal and reason.")
        _dropped.add(count, {semconv.SIGNAL: signal, semconv.REASON: reason})
    except Exception:
        pass


def prime_export_metrics() -> None:
    """Start the failure and drop series at zero, so dashboards and alerts see them
    (and their increase) from the first export on, not from the first loss: a
    series that first appears at 100 shows no increase in Prometheus."""
    try:
        for signal in semconv.Signal.ALL:
            _failure_counter().add(0, {semconv.SIGNAL: signal})
            for reason in semconv.DropReason.ALL:
                _count(0, signal, reason)
    except Exception:
        pass
