"""The background health server: one event-loop thread, whatever the clients do.

Probes must keep answering however many clients are connected and however
slowly they send. So the server reads requests on one asyncio event loop in
a daemon thread: a connection costs a few kilobytes, not a thread, and each
must send its whole request head within ``read_timeout`` seconds (a client
sending a byte a second is dropped, not waited for). Liveness is answered on
the loop; readiness and the report run the checks on a small pool of daemon
threads, one run at a time however many requests ask (they share its answer).
Clients that go away mid-answer are not worth a traceback.

Kubernetes: the kubelet probes the pod's IP, so the default bind is
``0.0.0.0`` and liveness and readiness answer there, with a minimal body. The
detailed report is served on a non-loopback bind only with a token (or when
opened explicitly); bound to a loopback address, the report is open to the
processes of the host or pod.

Pre-fork servers (gunicorn): see ``_workers``. A forked child of the serving
process closes its copy of the listening socket and reports to it with
heartbeats; a process that finds the port taken by another process of the
group (gunicorn without ``preload_app``) does the same, and says so at INFO. A
port taken by anything else is the caller's ``OSError``.
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import io
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from otelprod import _forks
from otelprod.monitoring._endpoints import _REASONS, Probes, Response, _json
from otelprod.monitoring._pool import DaemonPool
from otelprod.monitoring._system import MonitoringSystem
from otelprod.monitoring._workers import (
    DEFAULT_STALE_AFTER,
    HEARTBEAT_INTERVAL,
    WorkerGroup,
    WorkersView,
)

_log = logging.getLogger("otelprod.monitoring.health")

#: seconds a client has to send its request head (and an idle keep-alive lasts)
DEFAULT_READ_TIMEOUT = 5.0
#: connections served at once; more are answered 503 and closed
DEFAULT_MAX_CONNECTIONS = 512
_MAX_HEAD = 16 * 1024


class _TooLarge(Exception):
    """A request head longer than ``_MAX_HEAD``."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    dualstack = family == socket.AF_INET6 and host.strip("[]") == "::" \
        and socket.has_dualstack_ipv6()
    try:
        return socket.create_server((host.strip("[]"), port), family=family, backlog=128,
                                    dualstack_ipv6=dualstack)
    except OSError as exc:  # its message repeats the address; the caller names it
        if exc.errno is None:
            raise
        raise OSError(exc.errno, os.strerror(exc.errno)) from None


def _check(host: Any, port: Any, read_timeout: Any, max_connections: Any,
           stale_after: Any) -> None:
    problems = []
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        problems.append(f"port: expected an int in [0, 65535], got {type(port).__name__} "
                        f"{port!r}")
    if not isinstance(host, str) or not host:
        problems.append(f"host: expected a non-empty str, got {type(host).__name__} {host!r}")
    for name, value in (("read_timeout", read_timeout), ("stale_after", stale_after)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (0 < value < float("inf")):
            problems.append(f"{name}: expected a finite number of seconds > 0, got "
                            f"{type(value).__name__} {value!r}")
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) \
            or max_connections < 1:
        problems.append(f"max_connections: expected an int >= 1, got "
                        f"{type(max_connections).__name__} {max_connections!r}")
    if problems:
        raise ValueError("; ".join(problems))


class HealthServer:
    """The health endpoints on a background thread; ``stop()`` ends it.

    ``role`` is ``"server"`` when this process answers on the port, or
    ``"worker"`` when another process of a pre-fork group does and this one
    reports to it (see ``_workers``).
    """

    def __init__(self, port: int = 0, host: str = "0.0.0.0", token: str | None = None, *,
                 system: MonitoringSystem | None = None, open_report: bool = False,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 stale_after: float = DEFAULT_STALE_AFTER) -> None:
        _check(host, port, read_timeout, max_connections, stale_after)
        self.host = host
        self.read_timeout = float(read_timeout)
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._probes = Probes(token, system, open_report=open_report, workers=self._workers)
        if token is None and is_loopback(host):
            self._probes.open = True  # only this host (or pod) can connect
        self._pool = DaemonPool(2, "otelprod-health-run")
        self._thread: threading.Thread | None = None
        self._beating: threading.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._sock: socket.socket | None = None
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._connections = 0
        self.serving_pid: int | None = None
        try:
            sock = _bind(host, port)
        except OSError as exc:
            group = WorkerGroup(port, stale_after) if port else None
            owner = group.server_pid() if group is not None \
                and exc.errno == errno.EADDRINUSE else None
            if group is None or owner is None:
                raise
            self.port = port
            self._group = group
            self._become_worker(owner)
            _log.info("otelprod: the health port %s is served by process %s; this process "
                      "reports to it", port, owner)
        else:
            self.port = sock.getsockname()[1]
            self._group = WorkerGroup(self.port, stale_after)
            self._serve(sock)
        _forks.register(self, after_in_child=HealthServer._after_fork)

    # --- roles ------------------------------------------------------------------------------
    @property
    def role(self) -> str:
        return "server" if self._sock is not None else "worker"

    def _serve(self, sock: socket.socket) -> None:
        self._sock = sock
        self.serving_pid = None
        try:
            self._group.claim()
        except OSError as exc:
            _log.debug("otelprod: no worker group for port %s (%s)", self.port, exc)
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sock, started), daemon=True,
                                        name="otelprod-health-server")
        self._thread.start()
        started.wait(10)

    def _become_worker(self, owner: int | None) -> None:
        self.serving_pid = owner
        self._beating = threading.Event()
        threading.Thread(target=self._beat, args=(self._beating,), daemon=True,
                         name="otelprod-health-heartbeat").start()

    def _after_fork(self) -> None:
        """In a forked child: the parent serves; this process reports to it."""
        self._lock = threading.Lock()
        self._loop = self._stopping = self._thread = None
        self._inflight = {}
        if self._sock is not None:
            self._sock.close()  # the child's copy only: the parent keeps serving
            self._sock = None
            self._become_worker(os.getppid())
        elif self._beating is not None and not self._beating.is_set():
            self._become_worker(self.serving_pid)

    def _beat(self, stop: threading.Event) -> None:
        checker = self._probes.system.health_checker
        while not stop.is_set():
            try:
                failing = checker.failing_critical(checker.last_results())
                self._group.beat(not failing, failing)
                if self._group.server_pid() is None and self._take_over():
                    return
            except Exception:
                _log.debug("otelprod: health heartbeat failed", exc_info=True)
            stop.wait(HEARTBEAT_INTERVAL)

    def _take_over(self) -> bool:
        """The serving process is gone: serve the port from here, if it is free."""
        try:
            sock = _bind(self.host, self.port)
        except OSError:
            return False
        with self._lock:
            if self._beating is not None:
                self._beating.set()
                self._beating = None
            self._group.leave()
            self._serve(sock)
        _log.info("otelprod: the health port %s is served by this process now", self.port)
        return True

    def _workers(self) -> WorkersView | None:
        beats = self._group.beats()
        return WorkersView(tuple(beats)) if beats else None

    # --- the event loop -----------------------------------------------------------------------
    def _run(self, sock: socket.socket, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet)
        self._loop = loop
        try:
            loop.run_until_complete(self._main(sock, started))
        except Exception:
            _log.warning("otelprod: the health server stopped", exc_info=True)
        finally:
            started.set()
            loop.close()

    async def _main(self, sock: socket.socket, started: threading.Event) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=sock)
        started.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for running in self._inflight.values():  # a check still running reports to no one
                running.cancel()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            if self._connections > self.max_connections:
                await self._send(writer, _json(503, {"error": "too many connections"}),
                                 head_only=False, keep_alive=False)
                return
            buffer = bytearray()
            while await self._one_request(reader, writer, buffer):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                asyncio.CancelledError):
            pass  # the client went away or was too slow: nothing to say about it
        finally:
            self._connections -= 1
            writer.close()

    async def _read_head(self, reader: asyncio.StreamReader, buffer: bytearray) -> bytes:
        """The next request head, read within ``read_timeout`` however it trickles in."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end > _MAX_HEAD:
                raise _TooLarge
            if end >= 0:
                head = bytes(buffer[:end + 4])
                del buffer[:end + 4]
                return head
            if len(buffer) > _MAX_HEAD:
                raise _TooLarge
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            chunk = await asyncio.wait_for(reader.read(4096), remaining)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(buffer), None)
            buffer += chunk

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           buffer: bytearray) -> bool:
        """Serve one request; whether the connection stays open for another."""
        try:
            head = await self._read_head(reader, buffer)
        except _TooLarge:
            await self._send(writer, _json(431, {"error": "request head too large"}),
                             head_only=False, keep_alive=False)
            return False
        except asyncio.TimeoutError:
            if buffer:  # a request was begun: say why it is not answered
                await self._send(writer, _json(408, {"error": "request timeout"}),
                                 head_only=False, keep_alive=False)
            return False
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._send(writer, _json(400, {"error": "bad request"}), head_only=False,
                             keep_alive=False)
            return False
        method, target, version = parts
        try:
            headers = http.client.parse_headers(io.BytesIO(rest))
        except http.client.HTTPException:
            await self._send(writer, _json(400, {"error": "bad headers"}), head_only=False,
                             keep_alive=False)
            return False
        has_body = headers.get("content-length", "0").strip() not in ("", "0") \
            or "transfer-encoding" in headers
        keep_alive = (version == "HTTP/1.1" and not has_body
                      and headers.get("connection", "").lower() != "close")
        response = await self._answer(method, target.split("?", 1)[0],
                                      headers.get("authorization"))
        await self._send(writer, response, head_only=method == "HEAD", keep_alive=keep_alive)
        return keep_alive

    async def _answer(self, method: str, path: str, authorization: str | None) -> Response:
        probes = self._probes
        outcome = probes.pre(method, path, authorization)
        if not isinstance(outcome, str):
            return outcome
        details = probes.may_see_details(authorization)
        try:
            if outcome == "live":
                return probes.live(details)
            if outcome == "ready":
                results = await self._shared("ready", probes.system.health_checker.run_all)
                return probes.ready(results, details)
            return probes.report(await self._shared("report", probes.system.get_status_report))
        except Exception as exc:
            _log.debug("otelprod: health endpoint %s failed", path, exc_info=True)
            return _json(500, {"error": type(exc).__name__})

    async def _shared(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the pool; requests arriving meanwhile share the same run."""
        running = self._inflight.get(name)
        if running is None or running.done():
            future: Future[Any] = self._pool.submit(fn)
            running = self._inflight[name] = asyncio.wrap_future(future)
        return await asyncio.shield(running)

    async def _send(self, writer: asyncio.StreamWriter, response: Response, *,
                    head_only: bool, keep_alive: bool) -> None:
        status, headers, body = response
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
                 *(f"{key}: {value}" for key, value in headers),
                 f"connection: {'keep-alive' if keep_alive else 'close'}", "", ""]
        writer.write("\r\n".join(lines).encode("latin-1") + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), self.read_timeout)

    # --- the outside --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving (or reporting); idempotent, never raises."""
        with self._lock:
            beating, self._beating = self._beating, None
            loop, stopping, thread = self._loop, self._stopping, self._thread
            sock, self._sock = self._sock, None
        if beating is not None:
            beating.set()
            self._group.leave()
        if sock is None:
            return
        self._group.release()
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop has just closed
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        sock.close()

    close = stop

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HealthServer {self.url} ({self.role})>"


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's own complaints (a reset connection, mostly) are debug lines, not tracebacks."""
    _log.debug("otelprod health server: %s", context.get("message"),
               exc_info=context.get("exception"))


def serve_health(port: int, host: str = "0.0.0.0", token: str | None = None, *,
                 system: MonitoringSystem | None = None, open_report: bool = False,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 stale_after: float = DEFAULT_STALE_AFTER) -> HealthServer:
    """Serve the health endpoints from a background thread (``port=0``: any free port).

    Bound to a loopback address without a token, the detailed report is open
    (only this host or pod can connect); elsewhere it needs ``token``, unless
    ``open_report=True``. Liveness and readiness are always open.
    """
    return HealthServer(port, host, token, system=system, open_report=open_report,
                        read_timeout=read_timeout, max_connections=max_connections,
                        stale_after=stale_after)


__all__ = ["HealthServer", "is_loopback", "serve_health"]
