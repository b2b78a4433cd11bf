"""The health port under a real gunicorn: one process answers, for every worker.

With ``preload_app`` the arbiter ran ``init()`` and serves the port; each
worker reports to it with heartbeats. Without it, the first worker to bind
serves and the other reports to it, quietly (no warning: nothing is wrong);
when the serving worker dies, the port is served again (by the survivor, or
by gunicorn's replacement worker if it binds first). Workers that
all stop sending heartbeats (here: SIGSTOP) make liveness fail; they are
seen fresh again once they resume. A port taken by something else is a
warning on stderr.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import python_env, run_python
from tests.otlp_receiver import free_port

APP = """
import otelprod

otelprod.init("prefork-app", health_host="127.0.0.1", health_worker_timeout=1.5)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
"""


def _get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _status(port: int, path: str) -> tuple[int, str]:
    status, body = _get(port, path)
    return status, body["status"]


def _until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return {int(p) for p in out.split()}


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], int]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*, preload: bool) -> tuple[subprocess.Popen[str], int]:
        health = free_port()
        (tmp_path / "app.py").write_text(APP)
        env = python_env(OTEL_SDK_DISABLED="true", OTELPROD_HEALTH_PORT=str(health))
        env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
        args = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind",
                f"127.0.0.1:{free_port()}", *(["--preload"] if preload else []), "app:app"]
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc, health

    yield start
    for proc in started:
        for pid in _children(proc.pid):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _report(port: int) -> dict:
    """The workers section (absent until a worker reports)."""
    return _get(port, "/health")[1].get("workers", {"served_by": None, "workers": []})


def test_with_preload_the_arbiter_serves_and_reflects_its_workers(gunicorn) -> None:
    proc, port = gunicorn(preload=True)
    _until(lambda: len(_children(proc.pid)) == 2 and {
        w["pid"] for w in _report(port)["workers"]} == _children(proc.pid),
        "both workers report to the arbiter")
    workers = _report(port)
    assert workers["served_by"] == proc.pid
    assert all(w["fresh"] and w["ready"] for w in workers["workers"])
    assert _status(port, "/health/live") == (200, "alive")

    pids = _children(proc.pid)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # every worker hung
    _until(lambda: _status(port, "/health/live") == (503, "not_alive"),
           "liveness fails once every worker is silent")
    assert _get(port, "/health/ready")[0] == 503
    assert not any(w["fresh"] for w in _report(port)["workers"])
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    _until(lambda: _get(port, "/health/live")[0] == 200, "alive again once they resume")


def test_without_preload_one_worker_serves_the_other_reports_and_takes_over(gunicorn) -> None:
    proc, port = gunicorn(preload=False)
    _until(lambda: len(_children(proc.pid)) == 2 and len(_report(port)["workers"]) == 1,
           "one worker serves, the other reports to it")
    workers = _report(port)
    serving, reporting = workers["served_by"], workers["workers"][0]["pid"]
    assert {serving, reporting} == _children(proc.pid)
    assert proc.pid not in (serving, reporting)

    os.kill(reporting, signal.SIGSTOP)  # one worker hung, one fine: still alive
    _until(lambda: not _report(port)["workers"][0]["fresh"], "the stopped worker goes stale")
    assert _status(port, "/health/live") == (200, "alive")
    os.kill(reporting, signal.SIGCONT)
    _until(lambda: _report(port)["workers"][0]["fresh"], "fresh again")

    os.kill(serving, signal.SIGKILL)
    # the survivor takes the port over at its next heartbeat, unless gunicorn's replacement
    # worker binds it first; either way one serves and the other reports to it

    def one_serves_one_reports() -> bool:
        workers, children = _report(port), _children(proc.pid)
        return (len(children) == 2 and serving not in children
                and {workers["served_by"], *(w["pid"] for w in workers["workers"])} == children)

    _until(one_serves_one_reports, "the port is served again, for both workers")

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert "cannot serve the health endpoints" not in stderr, stderr
    assert "Traceback" not in stderr, stderr


def test_a_port_taken_by_something_else_is_a_warning_a_person_sees() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_python(f"""
            import otelprod
            system = otelprod.init("squatted", health_port={port}, health_host="127.0.0.1")
            print(system.health_server)
            otelprod.shutdown(timeout=2)
            """, env=python_env(OTEL_SDK_DISABLED="true"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
    assert (f"otelprod: cannot serve the health endpoints on 127.0.0.1:{port} "
            "(Address already in use); probes to that port do not reach this process"
            ) in result.stderr
