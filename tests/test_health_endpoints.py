"""The health endpoints over real HTTP servers and a real client on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import wsgiref.simple_server
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from otelprod.monitoring import (
    HealthStatus,
    MonitoringSystem,
    health_asgi_app,
    health_wsgi_app,
    serve_health,
)
from tests.conftest import python_env
from tests.otlp_receiver import free_port

TOKEN = "probe-token-1234"


@pytest.fixture
def system() -> MonitoringSystem:
    system = MonitoringSystem()
    system.health_checker.register_check("db", lambda: True)
    system.health_checker.register_check("cache", lambda: True, critical=False)
    return system


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


# --- the three front ends, each behind a real server -------------------------------------
def _background_server(system: MonitoringSystem, token: str | None) -> Iterator[str]:
    server = serve_health(0, "127.0.0.1", token, system=system)
    try:
        yield server.url
    finally:
        server.stop()


def _uvicorn(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _asgi_server(system: MonitoringSystem, token: str | None) -> Iterator[str]:
    # the apps serve the report to anyone only when told to (the server does on loopback)
    yield from _uvicorn(health_asgi_app(token, system=system, open_report=token is None))


def _wsgi_server(system: MonitoringSystem, token: str | None) -> Iterator[str]:
    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    app = health_wsgi_app(token, system=system, open_report=token is None)
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


FRONTS: dict[str, Callable[[MonitoringSystem, str | None], Iterator[str]]] = {
    "background": _background_server, "asgi": _asgi_server, "wsgi": _wsgi_server}


@pytest.fixture(params=list(FRONTS))
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    started: list[Iterator[str]] = []

    def start(system: MonitoringSystem, token: str | None = None) -> str:
        gen = FRONTS[request.param](system, token)
        started.append(gen)
        return next(gen)

    yield start
    for gen in started:
        for _ in gen:
            pass


def test_live_ready_and_report_when_all_is_well(serve, system: MonitoringSystem) -> None:
    url = serve(system)
    with httpx.Client(base_url=url, timeout=30) as client:
        live = client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        assert live.headers["content-type"] == "application/json"
        assert live.headers["cache-control"] == "no-store"
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "overall_status": "healthy", "failing": [],
                                "checks": {"db": "healthy", "cache": "healthy"}}
        report = client.get("/health")
        assert report.status_code == 200
        body = report.json()
        assert body["overall_status"] == "healthy" and body["ready"] is True
        assert set(body["checks"]) == {"db", "cache"}
        assert {"alerts", "system", "circuit_breakers", "rate_limiters", "dead_letter_queue",
                "exporter"} <= set(body)
        head = client.head("/health/live")
        assert head.status_code == 200 and head.content == b""


def test_503_when_a_critical_check_fails(serve, system: MonitoringSystem) -> None:
    system.health_checker.register_check("db", lambda: (HealthStatus.UNHEALTHY, "refused"))
    url = serve(system)
    with httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not_ready" and ready.json()["failing"] == ["db"]
        report = client.get("/health")
        assert report.status_code == 503
        assert report.json()["overall_status"] == "unhealthy"
        assert report.json()["checks"]["db"]["message"] == "refused"
        assert client.get("/health/live").status_code == 200  # alive all the same


def test_a_failing_non_critical_check_degrades_but_stays_ready(
        serve, system: MonitoringSystem) -> None:
    system.health_checker.register_check("cache", lambda: False, critical=False)
    url = serve(system)
    with httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["overall_status"] == "degraded"
        assert client.get("/health").status_code == 200


def test_a_hung_critical_check_gives_503_not_a_hung_probe(
        serve, system: MonitoringSystem, release: threading.Event) -> None:
    async def hung_async() -> bool:
        await asyncio.sleep(60)
        return True

    system.health_checker.register_check("stuck", lambda: release.wait(60), timeout=0.3)
    system.health_checker.register_check("stuck_async", hung_async, timeout=0.3)
    url = serve(system)
    with httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["stuck", "stuck_async"]
        assert not release.is_set()


def test_the_report_needs_the_bearer_token(serve, system: MonitoringSystem) -> None:
    url = serve(system, TOKEN)
    with httpx.Client(base_url=url, timeout=30) as client:
        missing = client.get("/health")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "checks" not in missing.json()
        wrong = client.get("/health", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        basic = client.get("/health", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        ok = client.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["overall_status"] == "healthy"
        # probes stay open: a kubelet has no token
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200


def test_unknown_paths_and_methods(serve, system: MonitoringSystem) -> None:
    url = serve(system)
    with httpx.Client(base_url=url, timeout=30) as client:
        missing = client.get("/metrics")
        assert missing.status_code == 404 and "/health/ready" in missing.json()["endpoints"]
        post = client.post("/health/ready")
        assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


def test_the_asgi_app_mounted_in_fastapi(system: MonitoringSystem) -> None:
    from fastapi import FastAPI

    app = FastAPI()
    app.mount("/ops", health_asgi_app(TOKEN, system=system))

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    system.health_checker.register_check("db", lambda: (HealthStatus.UNHEALTHY, "down"))
    gen = _uvicorn(app)
    url = next(gen)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/hello").json() == {"hello": "world"}
            assert client.get("/ops/health/live").status_code == 200
            assert client.get("/ops/health/ready").status_code == 503
            assert client.get("/ops/health").status_code == 401
            authorized = client.get("/ops/health", headers={"Authorization": f"Bearer {TOKEN}"})
            assert authorized.status_code == 503
            assert authorized.json()["failing_critical_checks"] == ["db"]
    finally:
        for _ in gen:
            pass


def test_bad_server_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="port: expected an int in \\[0, 65535\\], got int 70000"):
        serve_health(70000)
    with pytest.raises(ValueError, match="token: expected a non-empty str or None"):
        serve_health(0, "127.0.0.1", "")
    with pytest.raises(ValueError, match="token"):
        health_asgi_app(token="")


def test_the_background_server_reports_its_url_and_stops(system: MonitoringSystem) -> None:
    server = serve_health(0, "127.0.0.1", system=system)
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{server.url}/health/live", timeout=30).status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health/live", timeout=5)


INIT_WITH_HEALTH_PORT = """
import sys
import otelprod
from otelprod.monitoring import monitoring_system, HealthStatus

system = otelprod.init("health-port-test", health_port=int(sys.argv[1]), health_host="127.0.0.1",
                       health_token="init-token-5678")
monitoring_system.health_checker.register_check(
    "payments_db", lambda: (HealthStatus.UNHEALTHY, "connection refused"))
print(system.health_server.url, flush=True)
sys.stdin.readline()
otelprod.shutdown(timeout=5)
print("stopped", flush=True)
"""


def test_init_serves_the_endpoints_from_a_background_server(tmp_path) -> None:
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", INIT_WITH_HEALTH_PORT, str(port)],
                             env=python_env(OTEL_SDK_DISABLED="true"), cwd=tmp_path,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        url = child.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}", child.stderr.read() if child.stderr else ""
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/health/live").status_code == 200
            ready = client.get("/health/ready")  # a probe: the status only
            assert (ready.status_code, ready.json()) == (503, {"status": "not_ready"})
            detailed = client.get("/health/ready",
                                  headers={"Authorization": "Bearer init-token-5678"})
            assert detailed.json()["failing"] == ["payments_db"]
            assert client.get("/health").status_code == 401
            report = client.get("/health", headers={"Authorization": "Bearer init-token-5678"})
            assert report.status_code == 503
            assert report.json()["checks"]["payments_db"]["message"] == "connection refused"
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "stopped"
        assert child.wait(30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health/live", timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
