"""A FastAPI + SQLAlchemy app under uvicorn, traced by one init() line, over the wire.

The app imports ``FastAPI`` before calling ``otelprod.init()`` and builds its
app after it (the order that defeats contrib's class replacement), queries
SQLite through SQLAlchemy and through ``sqlite3``, logs, and has a route that
raises. The same app runs three ways, each against its own loopback receiver:
plain ``uvicorn`` (init() does everything), ``otelprod run -- uvicorn`` and
``opentelemetry-instrument uvicorn`` (otelprod's distro and configurator);
every count must be exactly what was sent, so nothing is exported twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.otlp_receiver import GRPC, HTTP, OTLPReceiver
from tests.web_helpers import BIN, STATUS_ERROR, Server, export_env, server_spans, wait_quiet

APP = '''
import logging, os, sqlite3
import sqlalchemy
from fastapi import FastAPI          # before init(): the original class
from sqlalchemy import text
import otelprod

otelprod.init(service_name="shop-fastapi")
# (an engine from a create_engine imported before init() is not traced: see the README)
engine = sqlalchemy.create_engine("sqlite:///" + os.environ["APP_DB"])
with engine.begin() as conn:
    conn.execute(text("create table if not exists items (id integer primary key, name text)"))
    conn.execute(text("insert or replace into items values (1, 'one'), (2, 'two')"))
app = FastAPI()
log = logging.getLogger("shop")


@app.get("/items/{item_id}")
def item(item_id: int):
    with engine.connect() as conn:
        name = conn.execute(text("select name from items where id = :id"),
                            {"id": item_id}).scalar()
    db = sqlite3.connect(os.environ["APP_DB"])
    try:
        count = db.cursor().execute("select count(*) from items").fetchone()[0]
    finally:
        db.close()
    log.warning("item %s looked up", item_id, extra={"password": "hunter2"})
    return {"id": item_id, "name": name, "count": count}


@app.get("/fail")
def fail():
    raise RuntimeError("the database is on fire")


@app.get("/health")
@app.get("/health/live")
@app.get("/health/ready")
def health():
    return {"status": "ok"}
'''

ITEMS = (1, 2, 1, 2, 1, 2)
PROBES = ("/health", "/health/live", "/health/ready", "/health?verbose=1")
MODES = ("init", "otelprod run", "opentelemetry-instrument")


@pytest.fixture(scope="module", params=MODES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, OTLPReceiver, str]]:
    """The app served in one mode, sent ITEMS, the probes and one failing request."""
    mode = request.param
    app_dir = tmp_path_factory.mktemp("fastapi")
    (app_dir / "shop.py").write_text(APP)
    protocol = HTTP if mode == "otelprod run" else GRPC  # both exporters, over the wire
    with OTLPReceiver(protocol) as receiver:
        env = export_env(receiver, app_dir, APP_DB=str(app_dir / "shop.db"))
        uvicorn = [str(BIN / "uvicorn"), "shop:app", "--port", "{port}"]
        command = {"init": uvicorn,
                   "otelprod run": [str(BIN / "otelprod"), "run", "--", *uvicorn],
                   "opentelemetry-instrument": [str(BIN / "opentelemetry-instrument"),
                                                *uvicorn]}[mode]
        server = Server(command, env, app_dir)
        try:
            server.wait_ready("/health")
            for item_id in ITEMS:
                assert server.get_json(f"/items/{item_id}")["id"] == item_id
            for probe in PROBES:
                assert server.get(probe)[0] == 200
            status, _ = server.get("/fail")
            assert status == 500
            # uvicorn ends on SIGTERM by raising it again, with no exit handlers: what is
            # asserted below must have been exported while it ran
            receiver.wait_for(lambda r: sum(_routes(r).values()) == len(ITEMS) + 1)
        finally:
            stderr = server.stop()
        wait_quiet(receiver)
        yield mode, receiver, stderr


def _requests(spans: list[dict[str, Any]]) -> Counter[str]:
    return Counter(s["name"] for s in spans)


def test_one_server_span_per_request_and_none_for_probes(served: Any) -> None:
    _, receiver, stderr = served
    spans = server_spans(receiver)
    assert _requests(spans) == {"GET /items/{item_id}": len(ITEMS), "GET /fail": 1}, stderr
    assert all(s["resource"]["service.name"] == "shop-fastapi" for s in spans)
    assert all(s["scope"] == "opentelemetry.instrumentation.fastapi" for s in spans)
    for span in spans:  # the stable HTTP conventions
        attributes = span["attributes"]
        assert attributes["http.route"] in ("/items/{item_id}", "/fail")
        assert attributes["http.request.method"] == "GET"
        assert attributes["url.path"].startswith(("/items/", "/fail"))
        assert attributes["http.response.status_code"] in (200, 500)
        assert "http.target" not in attributes and "http.status_code" not in attributes
    # the per-message send/receive spans are left out
    assert not [s for s in receiver.spans() if s["name"].endswith((" send", " receive"))]


def test_database_spans_are_children_of_the_request(served: Any) -> None:
    _, receiver, _ = served
    spans = receiver.spans()
    by_id = {s["span_id"]: s for s in spans}
    requests = {s["trace_id"]: s for s in server_spans(receiver) if s["name"].startswith(
        "GET /items")}
    by_scope: Counter[str] = Counter()
    for span in spans:
        scope = span["scope"].rsplit(".", 1)[-1]
        if scope not in ("sqlalchemy", "sqlite3") or span["trace_id"] not in requests:
            continue
        attributes = span["attributes"]
        statement = attributes.get("db.statement") or attributes.get("db.query.text") or ""
        by_scope[f"{scope}: {statement}"] += 1
        parent = by_id[span["parent_span_id"]]
        while parent["kind"] != 2:  # up to the server span
            parent = by_id[parent["parent_span_id"]]
        assert parent["span_id"] == requests[span["trace_id"]]["span_id"]
    assert by_scope["sqlalchemy: select name from items where id = ?"] == len(ITEMS), by_scope
    assert by_scope["sqlite3: select count(*) from items"] == len(ITEMS), by_scope


def test_each_log_record_once_with_its_request_trace_and_scrubbed(served: Any) -> None:
    _, receiver, _ = served
    traces = {s["trace_id"] for s in server_spans(receiver)}
    records = [r for r in receiver.logs() if str(r["body"]).endswith("looked up")]
    assert len(records) == len(ITEMS)  # never twice: one bridge
    assert {r["trace_id"] for r in records} <= traces
    assert len({r["trace_id"] for r in records}) == len(ITEMS)
    assert {r["attributes"].get("password") for r in records} == {"[REDACTED]"}


def test_a_failing_request_is_an_error_span_and_one_correlated_error_record(served: Any
                                                                            ) -> None:
    _, receiver, _ = served
    (failed,) = [s for s in server_spans(receiver) if s["name"] == "GET /fail"]
    assert failed["status_code"] == STATUS_ERROR
    (event,) = [e for e in failed["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.type"] == "RuntimeError"
    assert "on fire" in event["attributes"]["exception.message"]
    errors = [r for r in receiver.logs() if r["severity_text"] == "ERROR"]
    assert len(errors) == 1, errors
    (error,) = errors
    assert error["scope"] == "uvicorn.error"  # the server's own logger, tapped
    assert error["trace_id"] == failed["trace_id"]
    assert error["attributes"]["exception.type"] == "RuntimeError"


def test_the_servers_own_logs_arrive(served: Any) -> None:
    _, receiver, _ = served
    bodies = Counter(str(r["body"]) for r in receiver.logs() if r["scope"] == "uvicorn.error")
    assert bodies["Application startup complete."] == 1


def _routes(receiver: OTLPReceiver) -> Counter[str]:
    """Requests per http.route, from the last export of http.server.request.duration."""
    last: dict[tuple[Any, ...], dict[str, Any]] = {}
    for metric in receiver.metrics():
        if metric["name"] == "http.server.request.duration":
            assert metric["unit"] == "s"
            for point in metric["points"]:
                last[tuple(sorted(point["attributes"].items()))] = point
    routes: Counter[str] = Counter()
    for point in last.values():
        attributes = point["attributes"]
        routes[attributes["http.route"]] += point["count"]
        assert attributes["http.response.status_code"] in (200, 500)
    return routes


def test_http_metrics_in_seconds_per_route_without_probes(served: Any) -> None:
    _, receiver, _ = served
    assert _routes(receiver) == {"/items/{item_id}": len(ITEMS), "/fail": 1}
    assert "http.server.duration" not in receiver.metric_names()  # the old name is not sent


def test_otelprods_pipeline_runs_once(served: Any) -> None:
    """Under the distro too: otelprod's own exporter metrics, one stream per instance."""
    mode, receiver, _ = served
    scopes = Counter((m["scope"], m["resource"]["service.instance.id"])
                     for m in receiver.metrics() if m["name"].startswith("otelprod.export"))
    assert scopes, f"{mode}: otelprod's pipeline did not run"
    assert len({instance for _, instance in scopes}) == 1


SEED_SERVE = """
{seed}

import otelprod
otelprod.init("seed-fastapi")
"""


@pytest.mark.parametrize("excluded,expected", [(None, 0), ("/metrics", 3)],
                         ids=["probes-untraced", "probes-traced"])
def test_the_seed_fastapi_health_example(tmp_path: Path, excluded: str | None,
                                         expected: int) -> None:
    """The seed's app is built at import, before init(): its /health still gets server
    spans when asked to (and by default, as a probe route, none)."""
    from tests.conftest import seed_example

    (tmp_path / "seedapp.py").write_text(SEED_SERVE.format(seed=seed_example("FastAPI()")))
    with OTLPReceiver() as receiver:
        extra = {} if excluded is None else {"OTELPROD_EXCLUDED_URLS": excluded}
        server = Server([str(BIN / "uvicorn"), "seedapp:app", "--port", "{port}"],
                        export_env(receiver, tmp_path, **extra), tmp_path)
        try:
            server.wait_ready("/health")
            for _ in range(3):
                assert server.get_json("/health")["service"] == "seed-fastapi"
            if expected:
                receiver.wait_for(lambda r: len(server_spans(r)) >= expected + 1)
            else:
                receiver.wait_for(lambda r: bool(r.logs()))  # it exported, just no spans
        finally:
            stderr = server.stop()
        wait_quiet(receiver)
        spans = [s for s in server_spans(receiver) if s["name"] == "GET /health"]
        # wait_ready's own first request is traced too when probes are
        assert len(spans) == (expected + 1 if expected else 0), stderr
