"""``otelprod run -- uvicorn --workers 2``: an app with no otelprod code in it is traced.

Each worker process (uvicorn spawns them, so each starts Python afresh and the
bootstrap runs in it) traces its own requests under its own
``service.instance.id``, and the system metrics come once per process, from
otelprod (the contrib system-metrics instrumentation is not loaded beside it).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.otlp_receiver import OTLPReceiver
from tests.web_helpers import BIN, Server, export_env, server_spans, wait_quiet

APP = '''
import os
from fastapi import FastAPI

app = FastAPI()


@app.get("/pid")
def pid():
    return {"pid": os.getpid()}


@app.get("/health")
def health():
    return {"status": "ok"}
'''


def test_zero_code_app_under_uvicorn_workers(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(APP)
    with OTLPReceiver() as receiver:
        env = export_env(receiver, tmp_path, OTEL_SERVICE_NAME="plain",
                         OTELPROD_SYSTEM_METRICS="true")
        # uvicorn kills a worker that does not answer its health check within 5 s of being
        # spawned; otelprod's start (every installed instrumentation's library imported) takes
        # a few seconds on a loaded machine: give the workers time (see the README)
        server = Server([str(BIN / "otelprod"), "run", "--", str(BIN / "uvicorn"), "plain:app",
                         "--workers", "2", "--timeout-worker-healthcheck", "60",
                         "--port", "{port}"], env, tmp_path)
        served: Counter[int] = Counter()
        try:
            server.wait_ready("/health")
            deadline = time.monotonic() + 60
            with ThreadPoolExecutor(4) as pool:
                while len(served) < 2 and time.monotonic() < deadline:
                    served.update(pool.map(lambda _: server.get_json("/pid")["pid"], range(12)))
            total = sum(served.values())
            receiver.wait_for(lambda r: len(server_spans(r)) >= total, timeout=20)
            receiver.wait_for(lambda r: len({m["resource"]["process.pid"] for m in r.metrics()
                                             if m["name"] == "process.memory.usage"}) >= 2)
        finally:
            stderr = server.stop()
        wait_quiet(receiver)
    assert len(served) == 2, f"requests reached only {served}: {stderr[-3000:]}"
    spans = server_spans(receiver, "plain")
    assert Counter(s["resource"]["process.pid"] for s in spans) == served
    instance = {s["resource"]["process.pid"]: s["resource"]["service.instance.id"]
                for s in spans}
    assert len(set(instance.values())) == 2
    # system metrics: each name from one scope (otelprod's set, not also the contrib one's)
    scopes: dict[str, set[str]] = {}
    for metric in receiver.metrics():
        if metric["name"].startswith(("system.", "process.")):
            scopes.setdefault(metric["name"], set()).add(metric["scope"])
    assert all(len(found) == 1 for found in scopes.values()), scopes
    assert "system.cpu.utilization" in scopes
    assert not set(scopes) & {"system.cpu.time", "system.network.connections",
                              "process.runtime.cpython.memory", "cpython.gc.collections"}
