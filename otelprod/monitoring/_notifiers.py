"""Alert notifiers. The webhook one speaks Prometheus Alertmanager's API.

``notify()`` only queues: a daemon thread sends batches in the background
through otelprod's own retry (tenacity) and circuit breaker (pybreaker), so a
slow or dead receiver never blocks the code that raised the alert, and its
retries and breaker transitions show up in telemetry like any other call's.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from otelprod import _forks, _telemetry
from otelprod.monitoring._model import Alert, AlertSeverity, iso

_log = logging.getLogger("otelprod.monitoring.notifier")


def alertmanager_payload(alert: Alert, generator_url: str | None = None) -> dict[str, Any]:
    """One alert in Alertmanager's ``POST /api/v2/alerts`` shape.

    A resolved alert carries ``endsAt``, which is how Alertmanager learns it
    is over; a firing one leaves it out so Alertmanager applies its timeout.
    """
    labels = {**alert.labels, "alertname": alert.title, "severity": alert.severity.value,
              "component": alert.component}
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": alert.title, "description": alert.message,
                        "occurrences": str(alert.occurrences), "alert_id": alert.id},
        "startsAt": iso(alert.first_seen),
    }
    if alert.resolved_at is not None:
        body["endsAt"] = iso(alert.resolved_at)
    if generator_url:
        body["generatorURL"] = generator_url
    return body


class WebhookError(OSError):
    """The receiver answered with an error status."""

    def __init__(self, url: str, status: int, body: str) -> None:
        super().__init__(f"webhook {url} answered HTTP {status}: {_telemetry.truncate(body)}")
        self.status = status


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, WebhookError):
        return exc.status >= 500 or exc.status in (408, 429)
    return isinstance(exc, (OSError, TimeoutError))


class WebhookNotifier:
    """Sends alerts as JSON to an Alertmanager-compatible endpoint.

    ``url`` is the full URL (for Alertmanager: ``http://host:9093/api/v2/alerts``).
    At most ``max_queue`` notifications wait; beyond that the oldest are dropped
    and counted. ``min_severity`` filters what is sent.
    """

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None,
                 timeout: float = 5.0, max_queue: int = 1000, batch_size: int = 50,
                 min_severity: AlertSeverity | str = AlertSeverity.INFO,
                 max_attempts: int = 3, base_delay: float = 0.5, max_delay: float = 10.0,
                 failure_threshold: int = 5, reset_timeout: float = 30.0,
                 name: str = "alert_webhook", generator_url: str | None = None) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url: expected an http:// or https:// URL, "
                             f"got {type(url).__name__} {url!r}")
        for key, value, low in (("timeout", timeout, 0.0), ("base_delay", base_delay, 0.0),
                                ("max_delay", max_delay, 0.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (
                    key == "timeout" and value == 0):
                raise ValueError(f"{key}: expected a number of seconds > 0, got {value!r}")
        for key, value in (("max_queue", max_queue), ("batch_size", batch_size),
                           ("max_attempts", max_attempts),
                           ("failure_threshold", failure_threshold)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: expected an int >= 1, got {value!r}")
        self.url = url
        self.name = name
        self.timeout = float(timeout)
        self.batch_size = batch_size
        self.min_severity = AlertSeverity.coerce(min_severity)
        self.generator_url = generator_url
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.sent = self.failed = self.dropped = 0
        _forks.register(self, after_in_child=WebhookNotifier._after_fork)
        self._send = self._build_sender(max_attempts, base_delay, max_delay, failure_threshold,
                                        reset_timeout)

    def _build_sender(self, max_attempts: int, base_delay: float, max_delay: float,
                      failure_threshold: int, reset_timeout: float) -> Any:
        from otelprod.error_handling import (
            CircuitBreakerConfig,
            RetryConfig,
            circuit_breaker,
            with_retry,
        )

        breaker = circuit_breaker(self.name, CircuitBreakerConfig(
            failure_threshold=failure_threshold, timeout=reset_timeout))
        self.breaker = breaker

        @with_retry(RetryConfig(max_attempts=max_attempts, base_delay=base_delay,
                                max_delay=max_delay, retry_on=_retryable), name=self.name)
        def send(body: bytes) -> None:
            breaker.call(self._post, body)

        return send

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self.url, data=body, headers=self._headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise WebhookError(self.url, exc.code, exc.read().decode("utf-8", "replace")
                               ) from None

    # --- the AlertManager side -------------------------------------------------------------
    def notify(self, alert: Alert) -> None:
        """Queue ``alert`` (a snapshot of it) for sending; returns at once."""
        if _rank(alert.severity) < _rank(self.min_severity):
            return
        payload = alertmanager_payload(alert, self.generator_url)
        with self._cond:
            if self._closed:
                return
            self._ensure_worker()
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(payload)
            self._cond.notify_all()

    def _after_fork(self) -> None:
        # the parent's worker is gone (and may have held the condition's lock)
        self._cond = threading.Condition()
        self._queue = collections.deque()  # the parent sends those
        self._thread = None
        self._busy = False

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name=f"otelprod-{self.name}")
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft()
                         for _ in range(min(self.batch_size, len(self._queue)))]
                self._busy = True
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        try:
            body = json.dumps(_scrub(batch)).encode()
            self._send(body)
            self.sent += len(batch)
        except Exception as exc:
            self.failed += len(batch)
            _log.warning("could not deliver %d alert notification(s) to %s: %s",
                         len(batch), self.url, _telemetry.truncate(str(exc), 200))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was sent (or given up on); True if in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued (within ``timeout``) and stop the worker."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return flushed

    def stats(self) -> dict[str, Any]:
        with self._cond:
            queued = len(self._queue)
        return {"url": self.url, "sent": self.sent, "failed": self.failed,
                "dropped": self.dropped, "queued": queued}

    def __repr__(self) -> str:
        return f"<WebhookNotifier {self.url}>"


def _scrub(value: Any) -> Any:
    try:
        from otelprod._scrub import scrubber

        return scrubber.scrub_mapping({"alerts": value})["alerts"]
    except ImportError:  # pragma: no cover - a part of otelprod
        return value


def _rank(severity: AlertSeverity) -> int:
    return list(AlertSeverity).index(severity)
