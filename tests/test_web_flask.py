"""A Flask app on SQLite under gunicorn, 2 workers, with and without --preload, one init() line.

Each worker traces its own requests under its own ``service.instance.id``;
probe routes are untraced; the failing request is an ERROR server span with
its exception and Flask's ERROR record under the same trace; gunicorn's own
``gunicorn.error`` records (which do not propagate to the root logger) arrive.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.otlp_receiver import OTLPReceiver
from tests.web_helpers import BIN, STATUS_ERROR, Server, export_env, server_spans, wait_quiet

APP = '''
import logging, os, sqlite3
from flask import Flask
import otelprod

otelprod.init(service_name="shop-flask")
app = Flask(__name__)
log = logging.getLogger("shop")
DB = os.environ["APP_DB"]


@app.get("/items/<int:item_id>")
def item(item_id):
    db = sqlite3.connect(DB)
    try:
        cursor = db.cursor()
        cursor.execute("create table if not exists seen (id integer)")
        cursor.execute("insert into seen values (?)", (item_id,))
        db.commit()
    finally:
        db.close()
    log.warning("item %s seen", item_id)
    return {"id": item_id, "pid": os.getpid()}


@app.get("/fail")
def fail():
    raise ValueError("no such item")


@app.get("/health")
@app.get("/health/live")
def health():
    return {"status": "ok"}
'''


@pytest.fixture(scope="module", params=[True, False], ids=["preload", "no-preload"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[OTLPReceiver, Counter[int], str, bool]]:
    preload = request.param
    app_dir = tmp_path_factory.mktemp("flask")
    (app_dir / "shop.py").write_text(APP)
    with OTLPReceiver() as receiver:
        command = [str(BIN / "gunicorn"), "-w", "2", "-b", "127.0.0.1:{port}",
                   "--graceful-timeout", "20", "shop:app"] + (["--preload"] if preload else [])
        server = Server(command, export_env(receiver, app_dir, APP_DB=str(app_dir / "s.db")),
                        app_dir)
        served: Counter[int] = Counter()
        try:
            server.wait_ready("/health")
            # both workers take requests once both have booted: ask until they have
            deadline = time.monotonic() + 60
            item = iter(range(10_000))
            with ThreadPoolExecutor(4) as pool:
                while len(served) < 2 and time.monotonic() < deadline:
                    served.update(pool.map(
                        lambda i: server.get_json(f"/items/{i}")["pid"],
                        [next(item) for _ in range(8)]))
            for probe in ("/health", "/health/live", "/health/live?x=1"):
                assert server.get(probe)[0] == 200
            assert server.get("/fail")[0] == 500
            receiver.wait_for(lambda r: len(server_spans(r)) >= sum(served.values()) + 1)
        finally:
            stderr = server.stop()
        wait_quiet(receiver)
        assert len(served) == 2, f"requests reached only {served}: {stderr[-2000:]}"
        yield receiver, served, stderr, preload


def test_each_worker_traces_its_requests_as_its_own_instance(served: Any) -> None:
    receiver, sent, stderr, _ = served
    spans = [s for s in server_spans(receiver) if s["name"] == "GET /items/<int:item_id>"]
    per_pid = Counter(s["resource"]["process.pid"] for s in spans)
    assert per_pid == sent, stderr[-2000:]
    instances = {pid: {s["resource"]["service.instance.id"] for s in spans
                       if s["resource"]["process.pid"] == pid} for pid in sent}
    assert all(len(ids) == 1 for ids in instances.values()), instances
    assert len({next(iter(ids)) for ids in instances.values()}) == 2
    assert {s["attributes"]["http.route"] for s in spans} == {"/items/<int:item_id>"}
    assert not [s for s in server_spans(receiver) if "/health" in s["attributes"]["url.path"]]
    db = [s for s in receiver.spans() if s["scope"].endswith("sqlite3")
          and "insert into seen" in s["attributes"].get("db.statement", "")]
    assert len(db) == sum(sent.values())
    assert {s["trace_id"] for s in db} == {s["trace_id"] for s in spans}


def test_the_failing_request_and_its_error_record(served: Any) -> None:
    receiver, _, _, _ = served
    (failed,) = [s for s in server_spans(receiver) if s["name"] == "GET /fail"]
    assert failed["status_code"] == STATUS_ERROR
    assert [e["attributes"]["exception.type"] for e in failed["events"]
            if e["name"] == "exception"] == ["ValueError"]
    errors = [r for r in receiver.logs() if r["severity_text"] == "ERROR"]
    assert [(r["body"], r["trace_id"]) for r in errors] == [
        ("Exception on /fail [GET]", failed["trace_id"])]


def test_application_logs_once_each_with_their_trace(served: Any) -> None:
    receiver, sent, _, _ = served
    records = [r for r in receiver.logs() if str(r["body"]).endswith(" seen")]
    assert len(records) == sum(sent.values())
    traces = {s["trace_id"] for s in server_spans(receiver)}
    assert all(r["trace_id"] in traces for r in records)


def test_gunicorns_own_logs_arrive_from_each_worker(served: Any) -> None:
    receiver, sent, _, preload = served
    records = [(r["resource"]["process.pid"], str(r["body"])) for r in receiver.logs()
               if r["scope"] == "gunicorn.error"]
    if preload:  # otelprod runs in the arbiter: each worker says it boots, after the fork
        assert {pid: body for pid, body in records if body.startswith("Booting worker")} == {
            pid: f"Booting worker with pid: {pid}" for pid in sent}
    # a worker's last words, sent by its exit flush (on a loaded machine one may be left
    # in the spool when the flush runs out of time: never twice, never another's)
    exiting = Counter(pid for pid, body in records if body == f"Worker exiting (pid: {pid})")
    assert exiting and set(exiting) <= set(sent) and max(exiting.values()) == 1, records
