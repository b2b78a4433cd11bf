"""The background health server under clients that misbehave, and who may see what.

One server on loopback serves the module. Slow clients (a byte a second) hold
no thread and are dropped after the read timeout while ``/health/live`` keeps
answering; clients that vanish mid-answer leave nothing on stderr; past the
connection limit a client gets 503. Probes are open with a minimal body; the
report and the readiness details are served only with the token, on a
loopback bind, or when opened explicitly.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from otelprod.monitoring import (
    HealthStatus,
    MonitoringSystem,
    health_asgi_app,
    health_wsgi_app,
    serve_health,
)
from otelprod.monitoring._endpoints import FORBIDDEN
from otelprod.monitoring._server import HealthServer, is_loopback

SLOW_CLIENTS = 200
READ_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def system() -> MonitoringSystem:
    system = MonitoringSystem()
    system.health_checker.register_check("db", lambda: True)
    return system


@pytest.fixture(scope="module")
def server(system: MonitoringSystem) -> Iterator[HealthServer]:
    server = serve_health(0, "127.0.0.1", system=system, read_timeout=READ_TIMEOUT)
    yield server
    server.stop()


def _get(server: HealthServer, path: str, **headers: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def test_slow_clients_hold_no_thread_and_live_keeps_answering(server: HealthServer) -> None:
    assert _get(server, "/health/live") == (200, {"status": "alive"})
    threads_before = threading.active_count()
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=30)
               for _ in range(SLOW_CLIENTS)]
    try:
        request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        answered = 0
        most_threads = 0
        for second in range(int(READ_TIMEOUT) + 2):  # a byte a second, past the read timeout
            for client in clients:
                try:
                    client.sendall(request[second:second + 1])
                except OSError:
                    pass  # dropped already
            status, body = _get(server, "/health/live")
            answered += (status, body) == (200, {"status": "alive"})
            most_threads = max(most_threads, threading.active_count() - threads_before)
            time.sleep(1.0)
        assert answered == int(READ_TIMEOUT) + 2
        assert most_threads <= 2, f"{most_threads} threads more with {SLOW_CLIENTS} clients"
        # each slow client was told why and dropped, none answered as if complete
        verdicts = []
        for client in clients:
            data = b""
            while chunk := client.recv(4096):
                data += chunk
            verdicts.append(data.split(b"\r\n", 1)[0])
        assert verdicts == [b"HTTP/1.1 408 Request Timeout"] * SLOW_CLIENTS
    finally:
        for client in clients:
            client.close()


def test_clients_that_vanish_leave_nothing_on_stderr(
        server: HealthServer, capfd: pytest.CaptureFixture[str]) -> None:
    for path in ("/health", "/health/ready", "/health/live") * 20:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        client.close()  # a reset, before the answer is read
    assert _get(server, "/health/ready")[0] == 200
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_http_edge_cases(server: HealthServer) -> None:
    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
            client.sendall(data)
            out = b""
            while chunk := client.recv(65536):
                out += chunk
            return out

    assert raw(b"GET /health/live HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw(b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(b"GET / HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n").startswith(
        b"HTTP/1.1 431 ")
    head = raw(b"HEAD /health/live HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    # two requests on one connection, the second with a query string
    two = raw(b"GET /health/live HTTP/1.1\r\n\r\nGET /health/ready?x=1 HTTP/1.1\r\n"
              b"Connection: close\r\n\r\n")
    assert two.count(b"HTTP/1.1 200 OK") == 2
    # a request with a body is answered, then the connection is closed
    body = raw(b"POST /health/ready HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert body.startswith(b"HTTP/1.1 405 ") and b"connection: close" in body


def test_past_the_connection_limit_a_client_gets_503(system: MonitoringSystem) -> None:
    with serve_health(0, "127.0.0.1", system=system, max_connections=3) as small:
        idle = [socket.create_connection(("127.0.0.1", small.port), timeout=30)
                for _ in range(3)]
        try:
            time.sleep(0.2)  # the server has taken them
            status, body = _get(small, "/health/live")
            assert (status, body) == (503, {"error": "too many connections"})
        finally:
            for client in idle:
                client.close()
        deadline = time.monotonic() + 10
        while _get(small, "/health/live")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _get(small, "/health/live") == (200, {"status": "alive"})


# --- who may see what ------------------------------------------------------------------------
@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("pod.local", False)])
def test_which_binds_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_on_a_loopback_bind_without_a_token_the_report_is_open(server: HealthServer) -> None:
    status, body = _get(server, "/health")
    assert status == 200 and body["checks"]["db"]["status"] == "healthy"
    assert _get(server, "/health/ready")[1]["checks"] == {"db": "healthy"}


def test_with_a_token_the_report_needs_it_even_on_loopback(system: MonitoringSystem) -> None:
    with serve_health(0, "127.0.0.1", "tok-3b1d9e", system=system) as guarded:
        assert _get(guarded, "/health")[0] == 401
        assert _get(guarded, "/health/ready") == (200, {"status": "ready"})
        assert _get(guarded, "/health/live") == (200, {"status": "alive"})
        status, body = _get(guarded, "/health", Authorization="Bearer tok-3b1d9e")
        assert status == 200 and "checks" in body


@pytest.fixture(params=["asgi", "wsgi"])
def app_client(request: pytest.FixtureRequest, system: MonitoringSystem):
    """The apps stand for a non-loopback bind: they cannot know where they are served."""
    def client(**kwargs: object) -> httpx.Client:
        if request.param == "asgi":
            transport: httpx.BaseTransport = httpx.ASGITransport(
                app=health_asgi_app(system=system, **kwargs))  # type: ignore[arg-type]
            return httpx.AsyncClient(transport=transport, base_url="http://pod")  # type: ignore
        return httpx.Client(transport=httpx.WSGITransport(
            app=health_wsgi_app(system=system, **kwargs)), base_url="http://pod")
    return client


async def _fetch(client, path: str, **headers: str) -> tuple[int, dict]:
    response = client.get(path, headers=headers)
    if not isinstance(response, httpx.Response):
        response = await response
    return response.status_code, response.json()


@pytest.mark.parametrize(("kwargs", "headers", "report", "ready_detail"), [
    ({}, {}, 403, False),
    ({"token": "tok-77"}, {}, 401, False),
    ({"token": "tok-77"}, {"Authorization": "Bearer wrong"}, 401, False),
    ({"token": "tok-77"}, {"Authorization": "Bearer tok-77"}, 200, True),
    ({"open_report": True}, {}, 200, True),
])
def test_who_may_see_the_report_and_the_readiness_details(
        app_client, kwargs: dict, headers: dict, report: int, ready_detail: bool) -> None:
    import asyncio

    client = app_client(**kwargs)

    async def check() -> None:
        status, body = await _fetch(client, "/health", **headers)
        assert status == report
        if report == 403:
            assert body == {"error": FORBIDDEN}
        assert await _fetch(client, "/health/live", **headers) == (200, {"status": "alive"})
        status, body = await _fetch(client, "/health/ready", **headers)
        assert status == 200 and body["status"] == "ready"
        assert ("checks" in body) is ready_detail
        assert set(body) == ({"status", "overall_status", "failing", "checks"} if ready_detail
                             else {"status"})

    asyncio.run(check())


def test_a_failing_probe_says_only_not_ready(system: MonitoringSystem) -> None:
    system.health_checker.register_check("db", lambda: (HealthStatus.UNHEALTHY, "secret dsn"))
    try:
        app = health_wsgi_app(system=system)
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://pod") as c:
            ready = c.get("/health/ready")
            assert (ready.status_code, ready.json()) == (503, {"status": "not_ready"})
    finally:
        system.health_checker.register_check("db", lambda: True)


def test_bad_arguments_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match=r"open_report: True opens the report to everyone"):
        serve_health(0, "127.0.0.1", "tok-1234", open_report=True)
    with pytest.raises(ValueError, match=r"open_report: expected True or False, got str 'yes'"):
        health_asgi_app(open_report="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"read_timeout: expected a finite number of seconds "
                                         r"> 0, got int 0"):
        serve_health(0, "127.0.0.1", read_timeout=0)
    with pytest.raises(ValueError, match=r"max_connections: expected an int >= 1, got int 0"):
        serve_health(0, "127.0.0.1", max_connections=0)
    with pytest.raises(ValueError, match=r"host: expected a non-empty str, got int 5"):
        serve_health(0, 5)  # type: ignore[arg-type]
