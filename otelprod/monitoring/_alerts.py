"""Alerts: deduplicated while active, resolved explicitly, kept in a bounded history.

An alert is identified by its fingerprint (component, title and labels, or an
explicit ``dedup_key``): raising it again while it is active counts another
occurrence instead of a new alert. Each new alert and each resolution is a log
record on the ``otelprod.alerts`` logger with the severity mapped onto the log
level, so alerts travel with the logs to the collector; ``alerts.raised`` and
``alerts.active`` count them. Notifiers hear of new and resolved alerts; they
must not block (the webhook notifier queues and sends in the background).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from otelprod import _forks, _telemetry, semconv
from otelprod.monitoring._model import Alert, AlertSeverity, AlertStatus, utcnow

alert_log = logging.getLogger("otelprod.alerts")
_log = logging.getLogger("otelprod.monitoring")

LOG_LEVELS = {
    AlertSeverity.INFO: logging.INFO,
    AlertSeverity.WARNING: logging.WARNING,
    AlertSeverity.ERROR: logging.ERROR,
    AlertSeverity.CRITICAL: logging.CRITICAL,
}


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None:
        """Hear of a new or resolved alert; must return promptly."""


def _text(key: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise TypeError(f"{key}: expected a{'' if allow_empty else ' non-empty'} str, "
                        f"got {type(value).__name__} {value!r}")
    return value


def _labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels: expected a mapping of str to str, got {type(labels).__name__}")
    out = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"labels: keys must be non-empty str, got {type(key).__name__} "
                            f"{key!r}")
        out[key] = value if isinstance(value, str) else str(value)
    return out


def fingerprint(component: str, title: str, labels: Mapping[str, str],
                dedup_key: str | None = None) -> str:
    basis = dedup_key if dedup_key is not None else "\x1f".join(
        [component, title, *(f"{k}={v}" for k, v in sorted(labels.items()))])
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


class AlertManager:
    """Raises, deduplicates, resolves and remembers alerts."""

    def __init__(self, *, history_size: int = 1000, max_active: int = 1000,
                 clock: Callable[[], Any] = utcnow) -> None:
        for key, value in (("history_size", history_size), ("max_active", max_active)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: expected an int >= 1, got {value!r}")
        self._lock = threading.RLock()
        self._active: dict[str, Alert] = {}  # fingerprint -> alert
        self._history: collections.deque[Alert] = collections.deque(maxlen=history_size)
        self._max_active = max_active
        self._clock = clock
        self._notifiers: list[Notifier] = []
        self._seen_series: set[tuple[str, str]] = set()
        _managers.add(self)
        _forks.register(self, after_in_child=AlertManager._renew_lock)

    def _renew_lock(self) -> None:  # a lock held by a parent's thread at fork time stays held
        self._lock = threading.RLock()

    # --- raising and resolving ----------------------------------------------------------
    def raise_alert(self, title: str, message: str = "",
                    severity: AlertSeverity | str = AlertSeverity.WARNING,
                    component: str = "application", labels: Mapping[str, Any] | None = None,
                    *, dedup_key: str | None = None) -> Alert:
        """Raise an alert, or count another occurrence of the same active one.

        A repeat updates the message, last-seen time and (if it rose) the
        severity of the active alert, and returns that alert.
        """
        _text("title", title)
        _text("message", message, allow_empty=True)
        _text("component", component)
        severity = AlertSeverity.coerce(severity)
        clean = _labels(labels)
        if dedup_key is not None:
            _text("dedup_key", dedup_key)
        key = fingerprint(component, title, clean, dedup_key)
        now = self._clock()
        evicted: Alert | None = None
        with self._lock:
            alert = self._active.get(key)
            if alert is not None:
                alert.occurrences += 1
                alert.last_seen = now
                alert.message = message or alert.message
                alert.title = title
                escalated = _rank(severity) > _rank(alert.severity)
                if escalated:
                    alert.severity = severity
                    self._seen_series.add((severity.value, component))
                new = False
            else:
                escalated = False
                alert = Alert(id=uuid.uuid4().hex[:16], title=title, message=message,
                              severity=severity, component=component, labels=clean,
                              fingerprint=key, first_seen=now, last_seen=now)
                if len(self._active) >= self._max_active:
                    oldest = min(self._active.values(), key=lambda a: a.last_seen)
                    evicted = self._close(oldest, now)
                self._active[key] = alert
                self._seen_series.add((severity.value, component))
                new = True
        if evicted is not None:
            self._announce_resolved(evicted, "evicted: too many active alerts")
        if new or escalated:
            self._emit(alert, new)
        else:
            alert_log.debug("alert repeated (%d occurrences): %s", alert.occurrences, title,
                            extra=_extra(alert))
        return alert

    def resolve_alert(self, alert_id: str, message: str = "") -> Alert | None:
        """Resolve the active alert with this id (or fingerprint); None if none is active."""
        if not isinstance(alert_id, str):
            raise TypeError(f"alert_id: expected a str, got {type(alert_id).__name__} "
                            f"{alert_id!r}")
        with self._lock:
            alert = self._find(alert_id)
            if alert is None:
                return None
            self._close(alert, self._clock())
        self._announce_resolved(alert, message)
        return alert

    def resolve_by_key(self, dedup_key: str, message: str = "") -> Alert | None:
        """Resolve the alert raised with ``dedup_key``, if it is active."""
        return self.resolve_alert(fingerprint("", "", {}, dedup_key), message)

    def _find(self, alert_id: str) -> Alert | None:
        alert = self._active.get(alert_id)
        if alert is not None:
            return alert
        return next((a for a in self._active.values() if a.id == alert_id), None)

    def _close(self, alert: Alert, now: Any) -> Alert:
        self._active.pop(alert.fingerprint, None)
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = now
        self._history.append(alert)
        return alert

    def _emit(self, alert: Alert, new: bool) -> None:
        try:
            if new:
                _raised.add(1, {semconv.ALERT_SEVERITY: alert.severity.value,
                                     semconv.ALERT_COMPONENT: alert.component})
            alert_log.log(LOG_LEVELS[alert.severity], "alert %s: %s%s",
                          "raised" if new else "escalated", alert.title,
                          f" - {alert.message}" if alert.message else "", extra=_extra(alert))
        except Exception:  # telemetry trouble is never the caller's
            pass
        self._notify(alert)

    def _announce_resolved(self, alert: Alert, message: str) -> None:
        try:
            alert_log.info("alert resolved: %s%s", alert.title,
                           f" - {message}" if message else "", extra=_extra(alert))
        except Exception:
            pass
        self._notify(alert)

    def _notify(self, alert: Alert) -> None:
        for notifier in list(self._notifiers):
            try:
                notifier.notify(alert)
            except Exception:
                _log.exception("alert notifier %r failed", notifier)

    # --- reading -------------------------------------------------------------------------
    def get_active_alerts(self, severity: AlertSeverity | str | None = None,
                          component: str | None = None) -> list[Alert]:
        """Active alerts, oldest first, optionally filtered."""
        if component is not None and not isinstance(component, str):
            raise TypeError(f"component: expected a str or None, got {type(component).__name__} "
                            f"{component!r}")
        wanted = AlertSeverity.coerce(severity) if severity is not None else None
        with self._lock:
            alerts = list(self._active.values())
        return sorted((a for a in alerts
                       if (wanted is None or a.severity is wanted)
                       and (component is None or a.component == component)),
                      key=lambda a: a.first_seen)

    def get_alert_history(self, limit: int | None = None) -> list[Alert]:
        """Resolved alerts, newest first (bounded by ``history_size``)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValueError(f"limit: expected an int >= 0 or None, got {type(limit).__name__} "
                             f"{limit!r}")
        with self._lock:
            history = list(reversed(self._history))
        return history if limit is None else history[:limit]

    def get_alert(self, alert_id: str) -> Alert | None:
        with self._lock:
            found = self._find(alert_id)
            if found is not None:
                return found
            return next((a for a in self._history if a.id == alert_id), None)

    def summary(self, recent: int = 20) -> dict[str, Any]:
        """For the status report: active alerts, counts by severity, the latest resolved."""
        active = self.get_active_alerts()
        by_severity = {s.value: 0 for s in AlertSeverity}
        for alert in active:
            by_severity[alert.severity.value] += 1
        return {"active_count": len(active), "by_severity": by_severity,
                "active": [a.to_dict() for a in active],
                "recently_resolved": [a.to_dict() for a in self.get_alert_history(recent)]}

    # --- notifiers ---------------------------------------------------------------------
    def add_notifier(self, notifier: Notifier) -> None:
        if not callable(getattr(notifier, "notify", None)):
            raise TypeError(f"notifier: expected an object with notify(alert), "
                            f"got {type(notifier).__name__}")
        with self._lock:
            if notifier not in self._notifiers:
                self._notifiers.append(notifier)

    def remove_notifier(self, notifier: Notifier) -> None:
        with self._lock:
            if notifier in self._notifiers:
                self._notifiers.remove(notifier)

    @property
    def notifiers(self) -> list[Notifier]:
        return list(self._notifiers)

    def clear(self) -> None:
        """Forget every alert (active and history) without resolving; for tests and demos."""
        with self._lock:
            self._active.clear()
            self._history.clear()

    def _observe(self, options: CallbackOptions) -> Iterator[Observation]:
        with self._lock:
            counts = dict.fromkeys(self._seen_series, 0)
            for alert in self._active.values():
                counts[(alert.severity.value, alert.component)] += 1
        for (severity, component), count in counts.items():
            yield Observation(count, {semconv.ALERT_SEVERITY: severity,
                                      semconv.ALERT_COMPONENT: component})


# one instrument each per process (see _health.py for why)
_managers: weakref.WeakSet[AlertManager] = weakref.WeakSet()


def _observe_all(options: CallbackOptions) -> Iterator[Observation]:
    for manager in list(_managers):
        yield from manager._observe(options)


_raised = _telemetry.meter.create_counter(
    semconv.METRIC_ALERTS_RAISED, unit="{alert}",
    description="Alerts raised (new ones, not repeated occurrences of an active alert).")
_telemetry.meter.create_observable_gauge(
    semconv.METRIC_ALERTS_ACTIVE, callbacks=[_observe_all], unit="{alert}",
    description="Alerts active now.")


def _rank(severity: AlertSeverity) -> int:
    return list(AlertSeverity).index(severity)


def _extra(alert: Alert) -> dict[str, Any]:
    return {"alert.id": alert.id, semconv.ALERT_SEVERITY: alert.severity.value,
            semconv.ALERT_COMPONENT: alert.component, "alert.title": alert.title,
            "alert.fingerprint": alert.fingerprint, "alert.occurrences": alert.occurrences,
            "alert.status": alert.status.value}
