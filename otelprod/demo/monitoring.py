"""Demo scene: health checks against a flaky fake database, one degrading, an alert
raised and resolved, and the health endpoints answering a probe."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from otelprod._telemetry import tracer
from otelprod.monitoring import (
    AlertSeverity,
    HealthCheckResult,
    HealthStatus,
    monitoring_system,
    serve_health,
)

TITLE = "monitoring: health checks, a degradation, an alert, the health endpoints"


class FlakyDatabase:
    """A fake database whose replica falls behind, and whose primary can hang."""

    def __init__(self) -> None:
        self.replica_lag_s = 0.1
        self.hang = threading.Event()  # set: pings block until released
        self.released = threading.Event()

    def ping(self) -> HealthCheckResult:
        if self.hang.is_set():
            self.released.wait(5)
        status = HealthStatus.DEGRADED if self.replica_lag_s > 5 else HealthStatus.HEALTHY
        return HealthCheckResult("demo_database", status, f"replica lag {self.replica_lag_s:g}s",
                                 metadata={"replica_lag_s": self.replica_lag_s})


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def run(out) -> None:  # type: ignore[no-untyped-def]
    checker, alerts = monitoring_system.health_checker, monitoring_system.alert_manager
    db = FlakyDatabase()
    checker.register_check("demo_database", db.ping, timeout=0.5)
    checker.register_check("demo_cache", lambda: (True, "PONG"), critical=False)
    try:
        with tracer.start_as_current_span("health checks: all well"):
            results = checker.run_all()
        out.step("checks: " + ", ".join(f"{n}={r.status.value}" for n, r in results.items()
                                         if n.startswith("demo_")))

        db.replica_lag_s = 42.0
        with tracer.start_as_current_span("health checks: replica behind"):
            result = checker.run_check("demo_database")
        raised = alerts.get_active_alerts(component="demo_database")
        out.step(f"replica lag 42s: demo_database={result.status.value}, automatic alert "
                 f"{raised[0].title!r} ({raised[0].severity.value})" if raised else
                 f"replica lag 42s: demo_database={result.status.value}")

        db.hang.set()
        with tracer.start_as_current_span("health checks: primary hangs"):
            result = checker.run_check("demo_database")
        out.step(f"primary hangs: {result.message} -> {result.status.value}")

        server = serve_health(0, "127.0.0.1")
        try:
            code, body = _get(f"{server.url}/health/ready")
            out.step(f"GET /health/ready -> {code}, failing: {body.get('failing')}")
            db.released.set()
            db.hang.clear()
            db.replica_lag_s = 0.2
            for _ in range(100):  # until the released ping has returned
                if checker.run_check("demo_database").status is HealthStatus.HEALTHY:
                    break
                time.sleep(0.02)
            code, body = _get(f"{server.url}/health/ready")
            out.step(f"database back: GET /health/ready -> {code}")
        finally:
            server.stop()

        manual = alerts.raise_alert("Demo error budget burn", "5xx above 2% for 5 minutes",
                                    AlertSeverity.WARNING, "demo_api")
        alerts.raise_alert("Demo error budget burn", "still above 2%", AlertSeverity.WARNING,
                           "demo_api")
        out.step(f"alert raised twice: one alert, {manual.occurrences} occurrences")
        alerts.resolve_alert(manual.id, "error rate back under 1%")
        out.step(f"alert resolved; active now: {len(alerts.get_active_alerts())}, "
                 f"overall status: {checker.overall_status().value}")
    finally:
        db.released.set()
        checker.unregister_check("demo_database")
        checker.unregister_check("demo_cache")
