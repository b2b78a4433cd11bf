"""Two services, one trace: a FastAPI frontend calls a Flask backend through requests,
httpx and aiohttp; each call is one trace with spans and log records from both processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.otlp_receiver import OTLPReceiver
from tests.web_helpers import BIN, SERVER, Server, export_env, server_spans, wait_quiet

CLIENT = 3  # SPAN_KIND_CLIENT

FRONTEND = '''
import logging, os
import otelprod

otelprod.init(service_name="frontend")
import aiohttp, httpx, requests
from fastapi import FastAPI

app = FastAPI()
log = logging.getLogger("frontend")
BACKEND = os.environ["BACKEND"]


@app.get("/via/requests")
def via_requests():
    log.warning("calling the backend")
    return requests.get(BACKEND + "/work", timeout=10).json()


@app.get("/via/httpx")
async def via_httpx():
    log.warning("calling the backend")
    async with httpx.AsyncClient() as client:
        return (await client.get(BACKEND + "/work", timeout=10)).json()


@app.get("/via/aiohttp")
async def via_aiohttp():
    log.warning("calling the backend")
    async with aiohttp.ClientSession() as session:
        async with session.get(BACKEND + "/work") as response:
            return await response.json()


@app.get("/health")
def health():
    return {"status": "ok"}
'''

BACKEND = '''
import logging
from flask import Flask, request
import otelprod

otelprod.init(service_name="backend")
app = Flask(__name__)
log = logging.getLogger("backend")


@app.get("/work")
def work():
    log.warning("working")
    return {"traceparent": request.headers.get("traceparent")}


@app.get("/health")
def health():
    return {"status": "ok"}
'''

CLIENTS = ("requests", "httpx", "aiohttp")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[OTLPReceiver, dict[str, Any]]]:
    app_dir: Path = tmp_path_factory.mktemp("services")
    (app_dir / "frontend.py").write_text(FRONTEND)
    (app_dir / "backend.py").write_text(BACKEND)
    with OTLPReceiver() as receiver:
        backend = Server([str(BIN / "gunicorn"), "-w", "1", "-b", "127.0.0.1:{port}",
                          "backend:app"], export_env(receiver, app_dir), app_dir)
        frontend = Server([str(BIN / "uvicorn"), "frontend:app", "--port", "{port}"],
                          export_env(receiver, app_dir, BACKEND=backend.url), app_dir)
        answers = {}
        try:
            backend.wait_ready("/health")
            frontend.wait_ready("/health")
            for client in CLIENTS:
                answers[client] = frontend.get_json(f"/via/{client}")
            receiver.wait_for(lambda r: len(server_spans(r)) >= 2 * len(CLIENTS))
        finally:
            frontend.stop()
            backend.stop()
        wait_quiet(receiver)
        yield receiver, answers


@pytest.mark.parametrize("client", CLIENTS)
def test_one_trace_across_both_services(traced: Any, client: str) -> None:
    receiver, answers = traced
    (front,) = [s for s in server_spans(receiver, "frontend")
                if s["attributes"]["http.route"] == f"/via/{client}"]
    trace = [s for s in receiver.spans() if s["trace_id"] == front["trace_id"]]
    (call,) = [s for s in trace if s["kind"] == CLIENT]
    (back,) = [s for s in trace if s["kind"] == SERVER and s is not front
               and s["resource"]["service.name"] == "backend"]
    assert client.replace("aiohttp", "aiohttp_client") in call["scope"]
    assert call["resource"]["service.name"] == "frontend"
    assert back["parent_span_id"] == call["span_id"]  # W3C traceparent carried it
    assert answers[client]["traceparent"].split("-")[1] == front["trace_id"]
    assert back["resource"]["process.pid"] != front["resource"]["process.pid"]
    logs = {(r["resource"]["service.name"], str(r["body"])) for r in receiver.logs()
            if r["trace_id"] == front["trace_id"]}
    assert {("frontend", "calling the backend"), ("backend", "working")} <= logs


def test_no_trace_has_more_than_its_three_spans(traced: Any) -> None:
    receiver, _ = traced
    by_trace: dict[str, int] = {}
    for span in receiver.spans():
        by_trace[span["trace_id"]] = by_trace.get(span["trace_id"], 0) + 1
    assert sorted(by_trace.values()) == [3] * len(CLIENTS)
