"""Real web servers in child processes, and what their telemetry said, for the web tests.

A :class:`Server` runs a command (uvicorn, gunicorn, ``otelprod run``,
``opentelemetry-instrument``) that serves an app written to a temporary
directory, exporting to a loopback OTLP receiver; it is stopped with SIGTERM so
each process flushes on its way out.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import python_env
from tests.otlp_receiver import OTLPReceiver, free_port

BIN = Path(sys.executable).parent
SERVER = 2  # SpanKind.SERVER in OTLP (SPAN_KIND_SERVER)
STATUS_ERROR = 2


def export_env(receiver: OTLPReceiver, app_dir: Path, **extra: str) -> dict[str, str]:
    """A child's environment: export quickly to ``receiver``, import the app from ``app_dir``."""
    settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": receiver.protocol,
                "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "500",
                "OTELPROD_SPOOL_DIR": str(app_dir / "spool"),
                "OTELPROD_SYSTEM_METRICS": "false"}
    env = python_env(**{**settings, **extra})
    env["PYTHONPATH"] = f"{app_dir}{os.pathsep}{env['PYTHONPATH']}"
    return env


class Server:
    """One server process on a free loopback port; ``{port}`` in the command is replaced."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.proc = subprocess.Popen(self.command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.output = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str = "/ready", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _, err = self.proc.communicate()
                raise AssertionError(f"{self.command} exited {self.proc.returncode}:\n"
                                     f"{err[-4000:]}")
            try:
                self.get(path)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"{self.command} did not answer within {timeout} s: "
                             f"{self.output[-4000:]}")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def stop(self) -> str:
        """SIGTERM, wait for a graceful exit; returns stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.output = err
        return err


def server_spans(receiver: OTLPReceiver, service: str | None = None) -> list[dict[str, Any]]:
    return [s for s in receiver.spans() if s["kind"] == SERVER
            and (service is None or s["resource"].get("service.name") == service)]


def count_by(items: list[dict[str, Any]], key: str) -> Counter[Any]:
    return Counter(item["attributes"].get(key) for item in items)


def wait_quiet(receiver: OTLPReceiver, seconds: float = 0.5, timeout: float = 15) -> None:
    """Until nothing new has arrived for ``seconds`` (the children flushed at exit)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        now = sum(len(receiver.requests(signal)) for signal in ("traces", "logs", "metrics"))
        if now == last:
            return
        last = now
        time.sleep(seconds)


__all__ = ["BIN", "SERVER", "STATUS_ERROR", "Server", "count_by", "export_env",
           "server_spans", "wait_quiet"]
