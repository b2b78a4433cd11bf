"""Under gunicorn with preload_app, each worker is its own instance with its own streams.

A real gunicorn (2 sync workers, ``preload_app``) serves an app that calls
``otelprod.init()`` at import, i.e. once in the arbiter before the fork. Each
request emits a span, a log record and a counter increment. The workers'
telemetry must arrive under distinct ``service.instance.id`` values, each
worker's counter must count exactly the requests that worker served (the
arbiter's pre-fork counts are not copied into the workers), and a graceful
stop must flush the workers through gunicorn's ``worker_exit`` hook.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import python_env
from tests.otlp_receiver import OTLPReceiver, free_port

APP = """
import logging, os
import otelprod
from opentelemetry import metrics, trace

otelprod.init("gunicorn-app")
_tracer = trace.get_tracer("app")
_meter = metrics.get_meter("app")
_requests = _meter.create_counter("app.requests")
_meter.create_counter("app.preloaded").add(1)  # in the arbiter, before the fork
_log = logging.getLogger("app")


def app(environ, start_response):
    with _tracer.start_as_current_span("request"):
        _requests.add(1)
        _log.warning("handled", extra={"worker_pid": os.getpid()})
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""

CONFIG = """
workers = 2
preload_app = True
bind = "127.0.0.1:{port}"
graceful_timeout = 20
"""

# The documented belt and braces: a worker that leaves through sys.exit runs
# otelprod's atexit flush anyway, but worker_exit is called on every way out.
HOOK = """

def worker_exit(server, worker):
    import otelprod
    otelprod.shutdown()
"""


def _get(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        return int(response.read())
    finally:
        conn.close()


def _wait_listening(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> int:
    """The pid of the worker that answered first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited: {proc.communicate()[1][-3000:]}")
        try:
            return _get(port)
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not answer within 30 s")


@pytest.mark.parametrize("hook", [True, False], ids=["worker_exit-hook", "atexit-only"])
def test_two_preloaded_workers_export_all_signals_as_distinct_instances(
        otlp_receiver: OTLPReceiver, tmp_path: Path, hook: bool) -> None:
    port = free_port()
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "gunicorn.conf.py").write_text(CONFIG.format(port=port) + (HOOK if hook else ""))
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                     OTEL_BSP_SCHEDULE_DELAY="200", OTEL_BLRP_SCHEDULE_DELAY="200",
                     OTEL_METRIC_EXPORT_INTERVAL="1000",
                     OTELPROD_SPOOL_DIR=str(tmp_path / "spool"),
                     OTELPROD_SYSTEM_METRICS="false")
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gunicorn.conf.py"), "app:app"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served: Counter[int] = Counter()
    try:
        served[_wait_listening(port, proc)] += 1
        # Concurrent requests reach both workers once both have booted; on a loaded
        # machine the second one can take a while, so keep asking until a deadline.
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(4) as pool:
            while len(served) < 2 and time.monotonic() < deadline:
                served.update(pool.map(lambda _: _get(port), range(20)))
                if len(served) < 2:
                    time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful: workers finish, worker_exit runs
        _, stderr = proc.communicate(timeout=60)
    workers = set(served)
    assert len(workers) == 2, f"requests reached only {workers}: {stderr[-2000:]}"

    spans = Counter(s["resource"]["process.pid"] for s in otlp_receiver.spans()
                    if s["name"] == "request")
    logs = Counter(r["resource"]["process.pid"] for r in otlp_receiver.logs()
                   if r["body"] == "handled")
    assert {pid: spans[pid] for pid in workers} == dict(served)
    assert {pid: logs[pid] for pid in workers} == {pid: spans[pid] for pid in workers}

    instance_of: dict[int, set[str]] = {}
    totals: dict[str, float] = {}
    preloaded = 0.0
    for metric in otlp_receiver.metrics():
        resource = metric["resource"]
        instance_of.setdefault(resource["process.pid"], set()).add(resource["service.instance.id"])
        if metric["name"] == "app.requests":
            iid = resource["service.instance.id"]
            totals[iid] = max([totals.get(iid, 0)] + [p["value"] for p in metric["points"]])
        if metric["name"] == "app.preloaded":
            preloaded = max([preloaded] + [p["value"] for p in metric["points"]])
    worker_ids = [instance_of[pid] for pid in workers]
    assert all(len(ids) == 1 for ids in worker_ids), instance_of
    (first,), (second,) = worker_ids
    assert first != second
    # each worker's stream counts exactly its own requests: no collision, no inherited counts
    assert {totals[first], totals[second]} == {spans[pid] for pid in workers}
    preloaded_streams = [m for m in otlp_receiver.metrics() if m["name"] == "app.preloaded"]
    assert {m["resource"]["process.pid"] for m in preloaded_streams} <= set(instance_of) - workers
    assert preloaded == 1

