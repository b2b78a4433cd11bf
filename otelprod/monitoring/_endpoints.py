"""Health endpoints for Kubernetes-style probes, as ASGI and WSGI apps and a tiny server.

* ``/health/live``: 200 while the process can answer at all; runs nothing.
* ``/health/ready``: runs the checks; 503 when a critical one is UNHEALTHY.
* ``/health``: the full status report (503 when the overall status is
  UNHEALTHY): recent errors, breakers, the dead-letter queue, the exporter.

Liveness and readiness are for probes, which carry no credentials: they are
always open and say only ``{"status": ...}``. The report, and the details of
readiness (which checks fail), are served only to who may see them: with a
``token`` set, to a request bearing it; without one, only when the report is
opened explicitly (``open_report=True``), which the background server does by
itself when it is bound to a loopback address. Anyone else gets 401 (a token
is set) or 403 (none is), with how to get access.

The apps also answer on ``/``, ``/live`` and ``/ready``, so they can be mounted
under any prefix. ``serve_health()`` (``otelprod.monitoring._server``) runs
them on a background server for worker processes that have no web framework.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from otelprod.monitoring._model import HealthStatus
from otelprod.monitoring._system import MonitoringSystem, monitoring_system
from otelprod.monitoring._workers import WorkersView

Response = tuple[int, list[tuple[str, str]], bytes]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}
_ROUTES = {"/health": "report", "/health/": "report", "/": "report", "": "report",
           "/health/live": "live", "/live": "live", "/health/ready": "ready", "/ready": "ready"}
FORBIDDEN = ("the detailed health report is only served with a token, on a loopback address, "
             "or when opened explicitly: set OTELPROD_HEALTH_TOKEN (and send it as a bearer "
             "token), bind OTELPROD_HEALTH_HOST=127.0.0.1, or set "
             "OTELPROD_HEALTH_REPORT_OPEN=true")


def _json(status: int, body: Any, extra: Iterable[tuple[str, str]] = ()) -> Response:
    data = json.dumps(body, separators=(",", ":"), default=str).encode()
    headers = [("content-type", "application/json"), ("cache-control", "no-store"),
               ("content-length", str(len(data))), *extra]
    return status, headers, data


def _check_token(token: str | None) -> str | None:
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError(f"token: expected a non-empty str or None, got {type(token).__name__} "
                         f"{token!r}")
    return token


def _check_open(open_report: Any, token: str | None) -> bool:
    if not isinstance(open_report, bool):
        raise ValueError(f"open_report: expected True or False, got "
                         f"{type(open_report).__name__} {open_report!r}")
    if open_report and token is not None:
        raise ValueError("open_report: True opens the report to everyone, so a token would "
                         "protect nothing; give one or the other")
    return open_report


class Probes:
    """The routing and answers, shared by the ASGI, WSGI and background-server front ends."""

    def __init__(self, token: str | None, system: MonitoringSystem | None, *,
                 open_report: bool = False,
                 workers: Callable[[], WorkersView | None] | None = None) -> None:
        self.token = _check_token(token)
        self.open = _check_open(open_report, self.token)
        self.system = system or monitoring_system
        self.workers = workers or (lambda: None)

    def may_see_details(self, authorization: str | None) -> bool:
        return self.open or (self.token is not None and self._authorized(authorization))

    def pre(self, method: str, path: str, authorization: str | None) -> Response | str:
        """Either a finished response, or the route to compute."""
        route = _ROUTES.get(path)
        if route is None:
            return _json(404, {"error": f"no such endpoint: {path[:200]}",
                               "endpoints": ["/health", "/health/live", "/health/ready"]})
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": f"method {method[:20]} not allowed"},
                         [("allow", "GET, HEAD")])
        if route == "report" and not self.may_see_details(authorization):
            if self.token is not None:
                return _json(401, {"error": "a bearer token is required for the full report"},
                             [("www-authenticate", 'Bearer realm="otelprod health"')])
            return _json(403, {"error": FORBIDDEN})
        return route

    def _authorized(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        assert self.token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token.encode())

    def live(self, details: bool) -> Response:
        view = self.workers()
        if view is None or view.alive:
            return _json(200, {"status": "alive"})
        body: dict[str, Any] = {"status": "not_alive"}
        if details:
            body["workers"] = view.to_dict()
        return _json(503, body)

    def ready(self, results: dict[str, Any], details: bool) -> Response:
        checker = self.system.health_checker
        failing = checker.failing_critical(results)
        view = self.workers()
        ok = not failing and (view is None or view.ready)
        body: dict[str, Any] = {"status": "ready" if ok else "not_ready"}
        if details:
            body.update(overall_status=checker.overall_status(results).value, failing=failing,
                        checks={n: r.status.value for n, r in results.items()})
            if view is not None:
                body["workers"] = view.to_dict()
        return _json(200 if ok else 503, body)

    def report(self, report: dict[str, Any]) -> Response:
        view = self.workers()
        if view is not None:
            report = {**report, "workers": view.to_dict()}
        unhealthy = report.get("overall_status") == HealthStatus.UNHEALTHY.value
        return _json(503 if unhealthy or (view is not None and not view.alive) else 200, report)

    def handle(self, method: str, path: str, authorization: str | None) -> Response:
        outcome = self.pre(method, path, authorization)
        if not isinstance(outcome, str):
            return outcome
        details = self.may_see_details(authorization)
        try:
            if outcome == "live":
                return self.live(details)
            if outcome == "ready":
                return self.ready(self.system.health_checker.run_all(), details)
            return self.report(self.system.get_status_report())
        except Exception as exc:  # pragma: no cover - the parts above do not raise
            return _json(500, {"error": type(exc).__name__})

    async def ahandle(self, method: str, path: str, authorization: str | None) -> Response:
        outcome = self.pre(method, path, authorization)
        if not isinstance(outcome, str):
            return outcome
        details = self.may_see_details(authorization)
        try:
            if outcome == "live":
                return self.live(details)
            if outcome == "ready":
                return self.ready(await self.system.health_checker.arun_all(), details)
            return self.report(await self.system.aget_status_report())
        except Exception as exc:  # pragma: no cover
            return _json(500, {"error": type(exc).__name__})


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


def health_asgi_app(token: str | None = None, *, system: MonitoringSystem | None = None,
                    open_report: bool = False) -> ASGIApp:
    """An ASGI app serving the health endpoints (mount it, or run it on its own).

    With FastAPI or Starlette, mount it under a prefix: ``app.mount("/ops",
    health_asgi_app(token))`` serves ``/ops/health``, ``/ops/health/live`` and
    ``/ops/health/ready``. The report needs ``token``, unless ``open_report``.
    """
    probes = Probes(token, system, open_report=open_report)

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


def health_wsgi_app(token: str | None = None, *, system: MonitoringSystem | None = None,
                    open_report: bool = False) -> WSGIApp:
    """A WSGI app serving the health endpoints (Flask, Django, gunicorn, wsgiref).

    The report needs ``token``, unless ``open_report``.
    """
    probes = Probes(token, system, open_report=open_report)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        status, headers, body = probes.handle(method, environ.get("PATH_INFO", "/") or "/",
                                              environ.get("HTTP_AUTHORIZATION"))
        start_response(f"{status} {_REASONS.get(status, '')}", headers)
        return [b"" if method == "HEAD" else body]

    return app


__all__ = ["Probes", "health_asgi_app", "health_wsgi_app"]
