"""The Alertmanager webhook notifier against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from otelprod.error_handling import unregister_circuit_breaker
from otelprod.monitoring import AlertManager, WebhookNotifier, alertmanager_payload


class Receiver:
    """An Alertmanager stand-in: records every POST; can fail, or hang until released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.always_fail: int | None = None
        self.hang = threading.Event()
        self.hang.set()
        self.hanging = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not receiver.hang.is_set():
                    receiver.hanging.set()
                    receiver.hang.wait(30)
                status = 200
                if receiver.always_fail is not None:
                    status = receiver.always_fail
                elif receiver.fail_next:
                    receiver.fail_next -= 1
                    status = 503
                receiver.requests.append({"path": self.path, "status": status,
                                          "headers": dict(self.headers),
                                          "body": json.loads(body)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        return [a for r in self.requests if r["status"] == 200 for a in r["body"]]

    def close(self) -> None:
        self.hang.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def notifier_name() -> Iterator[str]:
    name = f"webhook-{uuid.uuid4().hex[:8]}"
    yield name
    unregister_circuit_breaker(name)


def test_alerts_arrive_in_alertmanager_format(receiver: Receiver, notifier_name: str) -> None:
    notifier = WebhookNotifier(receiver.url, name=notifier_name, base_delay=0.01,
                               headers={"Authorization": "Bearer am-token"})
    manager = AlertManager()
    manager.add_notifier(notifier)
    alert = manager.raise_alert("Disk almost full", "95% used", "critical", "host",
                                {"mount": "/", "password": "hunter2hunter2"})
    manager.resolve_alert(alert.id)
    assert notifier.flush(30)
    sent = receiver.alerts()
    assert [r["path"] for r in receiver.requests] == ["/api/v2/alerts"] * len(receiver.requests)
    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer am-token"
    firing, resolved = sent
    assert firing["labels"]["alertname"] == "Disk almost full"
    assert firing["labels"]["severity"] == "critical"
    assert firing["labels"]["component"] == "host"
    assert firing["labels"]["mount"] == "/"
    assert firing["labels"]["password"] != "hunter2hunter2"  # scrubbed on the way out
    assert firing["annotations"]["summary"] == "Disk almost full"
    assert firing["annotations"]["description"] == "95% used"
    assert firing["startsAt"].endswith("Z") and "endsAt" not in firing
    assert resolved["endsAt"].endswith("Z") and resolved["startsAt"] == firing["startsAt"]
    assert notifier.stats()["sent"] == 2 and notifier.stats()["failed"] == 0
    notifier.close()


def test_server_errors_are_retried(receiver: Receiver, notifier_name: str) -> None:
    receiver.fail_next = 2
    notifier = WebhookNotifier(receiver.url, name=notifier_name, base_delay=0.01, max_delay=0.05,
                               max_attempts=3)
    notifier.notify(AlertManager().raise_alert("Retry me", "", "error", "svc"))
    assert notifier.flush(30)
    assert [r["status"] for r in receiver.requests] == [503, 503, 200]
    assert [a["labels"]["alertname"] for a in receiver.alerts()] == ["Retry me"]
    assert notifier.stats()["sent"] == 1


def test_client_errors_are_not_retried(receiver: Receiver, notifier_name: str) -> None:
    receiver.always_fail = 400
    notifier = WebhookNotifier(receiver.url, name=notifier_name, base_delay=0.01)
    notifier.notify(AlertManager().raise_alert("Bad", "", "error", "svc"))
    assert notifier.flush(30)
    assert [r["status"] for r in receiver.requests] == [400]
    assert notifier.stats()["failed"] == 1


def test_a_dead_receiver_opens_the_breaker(receiver: Receiver, notifier_name: str) -> None:
    receiver.always_fail = 500
    notifier = WebhookNotifier(receiver.url, name=notifier_name, base_delay=0.01, max_delay=0.02,
                               max_attempts=2, failure_threshold=3, reset_timeout=600,
                               batch_size=1)
    manager = AlertManager()
    manager.add_notifier(notifier)
    for n in range(6):
        manager.raise_alert(f"alert {n}", "", "warning", "svc")
    assert notifier.flush(30)
    assert notifier.breaker.state == "open"
    assert len(receiver.requests) == 3  # then the breaker rejected without calling
    assert notifier.stats()["failed"] == 6


def test_notify_never_blocks_the_caller(receiver: Receiver, notifier_name: str) -> None:
    receiver.hang.clear()
    notifier = WebhookNotifier(receiver.url, name=notifier_name, timeout=30, max_queue=2)
    manager = AlertManager()
    manager.add_notifier(notifier)
    manager.raise_alert("first", "", "error", "svc")
    assert receiver.hanging.wait(30)  # the receiver holds the first request
    for n in range(5):  # returns at once, though nothing can be sent now
        manager.raise_alert(f"more {n}", "", "error", "svc")
    assert not notifier.flush(0.05)
    assert notifier.stats()["dropped"] == 3  # bounded queue: the oldest went
    receiver.hang.set()
    assert notifier.flush(30)
    assert [a["labels"]["alertname"] for a in receiver.alerts()] == ["first", "more 3", "more 4"]


def test_bad_configuration_is_refused(notifier_name: str) -> None:
    with pytest.raises(ValueError, match="url: expected an http:// or https:// URL"):
        WebhookNotifier("ftp://example.com", name=notifier_name)
    with pytest.raises(ValueError, match="max_queue: expected an int >= 1, got 0"):
        WebhookNotifier("http://127.0.0.1:9/", max_queue=0, name=notifier_name)


def test_payload_shape_without_a_server() -> None:
    alert = AlertManager().raise_alert("t", "m", "info", "c", {"team": "core"})
    body = alertmanager_payload(alert, "http://grafana/d/1")
    assert body["labels"] == {"team": "core", "alertname": "t", "severity": "info",
                              "component": "c"}
    assert body["generatorURL"] == "http://grafana/d/1"
