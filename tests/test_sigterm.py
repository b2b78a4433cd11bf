"""SIGTERM flushes before the process ends, and then does what it did without otelprod.

Every child here holds its spans in memory (a batch delay of a minute, fewer
spans than a batch) until the SIGTERM: whatever arrives was sent by the flush
the signal caused. A plain script must still end *by* SIGTERM (its exit
status says so); an application's own handler must still run; uvicorn and
gunicorn (real servers) must still shut down gracefully, and what their
requests and shutdown hooks emitted must arrive.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import python_env
from tests.otlp_receiver import OTLPReceiver, free_port

HOLD = {"OTELPROD_BATCH_DELAY": "60", "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTELPROD_SYSTEM_METRICS": "false", "OTELPROD_SHUTDOWN_TIMEOUT": "10"}

SCRIPT = """
import signal, sys, time
{before}
import otelprod
from opentelemetry import trace
otelprod.init("sigterm-app")
{after}
tracer = trace.get_tracer("app")
for i in range(300):
    tracer.start_span("unit", attributes={{"unit.seq": i}}).end()
print("emitted", flush=True)
while True:  # a main thread that wakes up now and then, as servers' do (see sigterm.py)
    time.sleep(0.1)
"""

APP_HANDLER = """
def on_term(signum, frame):
    print("application handler ran", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
"""


def _units(receiver: OTLPReceiver, name: str = "unit") -> Counter[int]:
    return Counter(s["attributes"].get("unit.seq", -1) for s in receiver.spans()
                   if s["name"] == name)


@pytest.mark.parametrize("handler", ["none", "app-before-init", "app-after-init"])
def test_sigterm_flushes_then_does_what_the_process_did(otlp_receiver: OTLPReceiver,
                                                        handler: str) -> None:
    code = SCRIPT.format(before=APP_HANDLER if handler == "app-before-init" else "",
                         after=APP_HANDLER if handler == "app-after-init" else "")
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", **HOLD)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "emitted"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    units = _units(otlp_receiver)
    assert set(units) == set(range(300)) and max(units.values()) == 1, err[-2000:]
    if handler == "none":
        assert proc.returncode == -signal.SIGTERM  # still ended by the signal
    else:
        assert proc.returncode == 0 and "application handler ran" in out, err[-2000:]


ASGI_APP = """
import otelprod
from opentelemetry import trace

otelprod.init("uvicorn-app")
tracer = trace.get_tracer("app")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                tracer.start_span("lifespan-shutdown").end()  # after the SIGTERM
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        tracer.start_span("request").end()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
"""

WSGI_APP = """
import otelprod
from opentelemetry import trace

otelprod.init("gunicorn-app")  # in the worker: gunicorn's handlers are in place already
tracer = trace.get_tracer("app")


def app(environ, start_response):
    tracer.start_span("request").end()
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def _get(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
    finally:
        conn.close()


def _serve(argv: list[str], app: str, tmp_path: Path, receiver: OTLPReceiver,
           port: int) -> tuple[subprocess.Popen[str], int]:
    (tmp_path / "app.py").write_text(app)
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", **HOLD)
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            _get(port)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"no answer: {proc.communicate()[1]}") from None
            time.sleep(0.1)
    for _ in range(19):
        _get(port)
    return proc, 20


def test_uvicorn_sigterm_delivers_requests_and_the_lifespan_shutdown(
        otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    port = free_port()
    proc, requests = _serve(["uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
                             "--lifespan", "on"], ASGI_APP, tmp_path, otlp_receiver, port)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    names = Counter(s["name"] for s in otlp_receiver.spans())
    # uvicorn shuts down gracefully, puts back the handler it found (otelprod's) and
    # raises SIGTERM again: otelprod flushes everything, then the process ends by it
    assert names == {"request": requests, "lifespan-shutdown": 1}, err[-3000:]
    assert proc.returncode == -signal.SIGTERM, err[-3000:]


def test_gunicorn_worker_sigterm_delivers_its_requests(otlp_receiver: OTLPReceiver,
                                                       tmp_path: Path) -> None:
    port = free_port()
    proc, requests = _serve(["gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
                             "--graceful-timeout", "20", "app:app"],
                            WSGI_APP, tmp_path, otlp_receiver, port)
    proc.send_signal(signal.SIGTERM)  # the arbiter passes it on to the worker
    _, err = proc.communicate(timeout=30)
    names = Counter(s["name"] for s in otlp_receiver.spans())
    assert names == {"request": requests}, err[-3000:]
    assert proc.returncode == 0, err[-3000:]
