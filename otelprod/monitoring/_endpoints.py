"""Health endpoints for Kubernetes-style probes, as ASGI and WSGI apps and a tiny server.

* ``/health/live``: 200 while the process can answer at all; runs nothing.
* ``/health/ready``: runs the checks; 503 when a critical one is UNHEALTHY.
* ``/health``: the full status report (503 when the overall status is
  UNHEALTHY), behind a bearer token when one is set.

The apps also answer on ``/``, ``/live`` and ``/ready``, so they can be mounted
under any prefix. ``serve_health()`` runs them on a background thread for
worker processes that have no web framework.
"""

from __future__ import annotations

import hmac
import http.server
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from otelprod.monitoring._model import HealthStatus
from otelprod.monitoring._system import MonitoringSystem, monitoring_system

Response = tuple[int, list[tuple[str, str]], bytes]

_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}
_ROUTES = {"/health": "report", "/health/": "report", "/": "report", "": "report",
           "/health/live": "live", "/live": "live", "/health/ready": "ready", "/ready": "ready"}


def _json(status: int, body: Any, extra: Iterable[tuple[str, str]] = ()) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [("content-type", "application/json"), ("cache-control", "no-store"),
               ("content-length", str(len(data))), *extra]
    return status, headers, data


def _check_token(token: str | None) -> str | None:
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError(f"token: expected a non-empty str or None, got {type(token).__name__}")
    return token


class _Probes:
    """The routing and answers, shared by the ASGI, WSGI and background-server front ends."""

    def __init__(self, token: str | None, system: MonitoringSystem | None) -> None:
        self.token = _check_token(token)
        self.system = system or monitoring_system

    def pre(self, method: str, path: str, authorization: str | None) -> Response | str:
        """Either a finished response, or the route to compute."""
        route = _ROUTES.get(path)
        if route is None:
            return _json(404, {"error": f"no such endpoint: {path}",
                               "endpoints": ["/health", "/health/live", "/health/ready"]})
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": f"method {method} not allowed"},
                         [("allow", "GET, HEAD")])
        if route == "report" and self.token is not None and not self._authorized(authorization):
            return _json(401, {"error": "a bearer token is required for the full report"},
                         [("www-authenticate", 'Bearer realm="otelprod health"')])
        return route

    def _authorized(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        assert self.token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token.encode())

    def live(self) -> Response:
        return _json(200, {"status": "alive"})

    def ready(self, results: dict[str, Any]) -> Response:
        checker = self.system.health_checker
        failing = checker.failing_critical(results)
        body = {"status": "not_ready" if failing else "ready",
                "overall_status": checker.overall_status(results).value,
                "failing": failing,
                "checks": {n: r.status.value for n, r in results.items()}}
        return _json(503 if failing else 200, body)

    def report(self, report: dict[str, Any]) -> Response:
        unhealthy = report.get("overall_status") == HealthStatus.UNHEALTHY.value
        return _json(503 if unhealthy else 200, report)

    def handle(self, method: str, path: str, authorization: str | None) -> Response:
        outcome = self.pre(method, path, authorization)
        if not isinstance(outcome, str):
            return outcome
        try:
            if outcome == "live":
                return self.live()
            if outcome == "ready":
                return self.ready(self.system.health_checker.run_all())
            return self.report(self.system.get_status_report())
        except Exception as exc:  # pragma: no cover - the parts above do not raise
            return _json(500, {"error": type(exc).__name__})

    async def ahandle(self, method: str, path: str, authorization: str | None) -> Response:
        outcome = self.pre(method, path, authorization)
        if not isinstance(outcome, str):
            return outcome
        try:
            if outcome == "live":
                return self.live()
            if outcome == "ready":
                return self.ready(await self.system.health_checker.arun_all())
            return self.report(await self.system.aget_status_report())
        except Exception as exc:  # pragma: no cover
            return _json(500, {"error": type(exc).__name__})


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


def health_asgi_app(token: str | None = None, *,
                    system: MonitoringSystem | None = None) -> ASGIApp:
    """An ASGI app serving the health endpoints (mount it, or run it on its own).

    With FastAPI or Starlette, mount it under a prefix: ``app.mount("/ops",
    health_asgi_app())`` serves ``/ops/health``, ``/ops/health/live`` and
    ``/ops/health/ready``.
    """
    probes = _Probes(token, system)

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        authorization = None
        for key, value in scope.get("headers", ()):
            if key.lower() == b"authorization":
                authorization = value.decode("latin-1")
        method = scope.get("method", "GET")
        status, headers, body = await probes.ahandle(method, path, authorization)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers]})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return app


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def health_wsgi_app(token: str | None = None, *,
                    system: MonitoringSystem | None = None) -> WSGIApp:
    """A WSGI app serving the health endpoints (Flask, Django, gunicorn, wsgiref)."""
    probes = _Probes(token, system)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        status, headers, body = probes.handle(method, environ.get("PATH_INFO", "/") or "/",
                                              environ.get("HTTP_AUTHORIZATION"))
        start_response(f"{status} {_REASONS.get(status, '')}", headers)
        return [b"" if method == "HEAD" else body]

    return app


class HealthServer:
    """The health endpoints on a background thread; ``stop()`` ends it."""

    def __init__(self, port: int = 0, host: str = "0.0.0.0", token: str | None = None, *,
                 system: MonitoringSystem | None = None) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port: expected an int in [0, 65535], got {type(port).__name__} "
                             f"{port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host: expected a non-empty str, got {host!r}")
        probes = _Probes(token, system)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "otelprod-health"

            def _serve(self) -> None:
                path = self.path.split("?", 1)[0]
                status, headers, body = probes.handle(self.command, path,
                                                      self.headers.get("Authorization"))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would flood the logs

        server_class = _DualStackServer if ":" in host else http.server.ThreadingHTTPServer
        self._server = server_class((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.25}, daemon=True,
                                        name="otelprod-health-server")
        self._thread.start()

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HealthServer {self.url}>"


class _DualStackServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve_health(port: int, host: str = "0.0.0.0", token: str | None = None, *,
                 system: MonitoringSystem | None = None) -> HealthServer:
    """Serve the health endpoints from a background thread (``port=0``: any free port)."""
    return HealthServer(port, host, token, system=system)


__all__ = ["HealthServer", "health_asgi_app", "health_wsgi_app", "serve_health"]
