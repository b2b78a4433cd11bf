"""What tracing costs a FastAPI endpoint: none, ``otelprod.init()``, ``opentelemetry-instrument``.

Three uvicorn servers run the same trivial endpoint side by side, all
exporting to one loopback OTLP receiver:

* none: no telemetry at all;
* otelprod: the app calls ``otelprod.init()`` (its defaults: every installed
  instrumentation, system metrics, log bridge, spool);
* opentelemetry-instrument: the stock setup, ``opentelemetry-instrument`` with
  the SDK's configurator (what ``opentelemetry-distro`` installs: OTLP
  exporters for the three signals) and every installed instrumentation,
  opted into the same stable HTTP conventions.

Requests go one at a time over a keep-alive connection per server, taking
turns between the servers (so the machine's noise falls on all three alike);
the median and p99 latency of each are compared. Target: otelprod's added
latency (over none) no more than opentelemetry-instrument's.

    python -m benchmarks.bench_http [--quick]
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, print_table
from benchmarks.bench_pipeline import child_env, receiver

APP = '''
import os
if os.environ["BENCH_SIDE"] == "otelprod":
    import otelprod
    otelprod.init(service_name="bench-http")
from fastapi import FastAPI

app = FastAPI()


@app.get("/items/{item_id}")
def item(item_id: int):
    return {"id": item_id, "name": "widget"}
'''

# The stock configurator and distro, registered as entry points the way opentelemetry-distro
# does it (a dist-info directory on the path): the SDK's _OTelSDKConfigurator, which
# opentelemetry-distro's configurator is a subclass of, and the default distro.
STOCK = "bench-stock"
ENTRY_POINTS = f"""[opentelemetry_configurator]
{STOCK} = opentelemetry.sdk._configuration:_OTelSDKConfigurator

[opentelemetry_distro]
{STOCK} = opentelemetry.instrumentation.distro:DefaultDistro
"""


def _free_port() -> int:
    from tests.otlp_receiver import free_port

    return free_port()


def _start(side: str, app_dir: Path, endpoint: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = child_env(BENCH_SIDE=side, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                    OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTELPROD_SYSTEM_METRICS="true",
                    OTEL_SEMCONV_STABILITY_OPT_IN="http",
                    OTELPROD_SPOOL_DIR=str(app_dir / "spool" / side))
    env["PYTHONPATH"] = f"{app_dir}:{env['PYTHONPATH']}"
    uvicorn = [str(Path(sys.executable).parent / "uvicorn"), "benchapp:app", "--port",
               str(port), "--log-level", "warning", "--no-access-log",
               "--timeout-keep-alive", "600"]
    if side == "opentelemetry-instrument":
        env.update(OTEL_PYTHON_DISTRO=STOCK, OTEL_PYTHON_CONFIGURATOR=STOCK,
                   OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp",
                   OTEL_LOGS_EXPORTER="otlp", OTEL_SERVICE_NAME="bench-http-stock")
        uvicorn = [str(Path(sys.executable).parent / "opentelemetry-instrument"), *uvicorn]
    proc = subprocess.Popen(uvicorn, env=env, cwd=app_dir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    return proc, port


def _connect(port: int, proc: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}"
                               if proc.stderr else "server exited")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            _get(conn, 0)
            return conn
        except OSError:
            conn.close()
            time.sleep(0.1)
    raise RuntimeError("server did not answer within 60 s")


def _get(conn: http.client.HTTPConnection, i: int) -> float:
    start = time.perf_counter()
    conn.request("GET", f"/items/{i}")
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return elapsed * 1e3


def _count(collector: Any, traced: dict[str, int]) -> bool:
    """Server spans received per traced side (into ``traced``); always True."""
    for service in traced:
        traced[service] = sum(1 for span in collector.spans() if span["kind"] == 2
                              and span["resource"].get("service.name") == service)
    return True


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def run(quick: bool = False) -> list[Result]:
    n = 300 if quick else 3_000
    sides = ("none", "otelprod", "opentelemetry-instrument")
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        (app_dir / "benchapp.py").write_text(APP)
        info = app_dir / "bench_stock-0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-stock\nVersion: 0\n")
        (info / "entry_points.txt").write_text(ENTRY_POINTS)
        collector = receiver()
        servers = {side: _start(side, app_dir, collector.endpoint) for side in sides}
        try:
            conns = {side: _connect(port, proc) for side, (proc, port) in servers.items()}
            for i in range(100 if quick else 300):  # warm up
                for conn in conns.values():
                    _get(conn, i)
            times: dict[str, list[float]] = {side: [] for side in sides}
            for i in range(n):
                for side in (sides if i % 2 else reversed(sides)):
                    try:
                        times[side].append(_get(conns[side], i))
                    except OSError as exc:
                        proc = servers[side][0]
                        proc.terminate()
                        err = proc.stderr.read().decode() if proc.stderr else ""
                        raise RuntimeError(f"{side}: {exc!r}: {err[-3000:]}") from None
            for conn in conns.values():
                conn.close()
            # both traced sides really traced (and exported) every request
            traced = {"bench-http": 0, "bench-http-stock": 0}
            collector.wait_for(lambda r: _count(r, traced) and min(traced.values()) >= n,
                               timeout=60)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
            for proc, _ in servers.values():
                proc.wait(timeout=60)
            collector.stop()
    if min(traced.values()) < n:
        raise RuntimeError(f"server spans received: {traced}, expected at least {n} each")
    median = {side: statistics.median(times[side]) for side in sides}
    p99 = {side: _p99(times[side]) for side in sides}
    base, ours, theirs = "none", "otelprod", "opentelemetry-instrument"
    note = f"{n} requests each, interleaved"
    return [
        Result("FastAPI request median, otelprod.init()", "ms", median[ours],
               "no telemetry", median[base], note=note),
        Result("FastAPI request median, opentelemetry-instrument", "ms", median[theirs],
               "no telemetry", median[base], note="for reference"),
        Result("FastAPI request p99, otelprod.init()", "ms", p99[ours], "no telemetry",
               p99[base]),
        Result("FastAPI request p99, opentelemetry-instrument", "ms", p99[theirs],
               "no telemetry", p99[base], note="for reference"),
        Result("added median latency: otelprod", "ms", median[ours] - median[base],
               "opentelemetry-instrument", median[theirs] - median[base], target="<= 1.0x"),
        Result("added p99 latency: otelprod", "ms", p99[ours] - p99[base],
               "opentelemetry-instrument", p99[theirs] - p99[base], target="<= 1.0x"),
    ]


if __name__ == "__main__":
    print_table(run("--quick" in sys.argv))
