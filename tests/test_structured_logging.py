"""Structured logging: the seed's example and format, context, the OTel bridge, tracing."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import _logs
from opentelemetry.trace import StatusCode

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.errors import ConfigurationError
from otelprod.structured_logging import (
    ContextFilter,
    JsonQueueHandler,
    ObservabilitySystem,
    bound_context,
    clear_context,
    flush_logging,
    get_context,
    get_logger,
    get_observability_system,
    initialize_observability,
    set_context,
    setup_json_logging,
    trace_request,
)
from tests.conftest import Telemetry, python_env, run_python
from tests.otlp_receiver import OTLPReceiver

SEED_LOGGING = """
from otelprod.structured_logging import initialize_observability, setup_json_logging

# Initialize observability
obs_system = initialize_observability("TGE_Monitor")

# Setup JSON logging
setup_json_logging(level="INFO", log_file="logs/app.log")

# Get structured logger
logger = obs_system.get_logger("my_module")

# Log with context
logger.set_context(user_id="123", request_id="abc")
logger.info("Processing request", extra_field="value")

# Trace requests
with obs_system.trace_request("process_data", user_id="123") as ctx:
    logger = ctx['logger']
    logger.info("Starting data processing")

    # Your code here

    logger.info("Data processing complete")

# Get performance report
report = obs_system.get_performance_report()
"""

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _clean_context() -> Iterator[None]:
    clear_context()
    yield
    clear_context()


@pytest.fixture
def json_lines() -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """Sets up JSON logging into a buffer; calling the result flushes and parses the lines."""
    root = logging.getLogger()
    level = root.level
    handlers: list[logging.Handler] = []
    buffer = io.StringIO()

    def setup(**kwargs: Any) -> JsonQueueHandler:
        kwargs.setdefault("stream", buffer)
        handlers.append(setup_json_logging(**kwargs))
        return handlers[-1]

    def read() -> list[dict[str, Any]]:
        if not handlers:
            setup()
        assert flush_logging(10)
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    read.setup = setup  # type: ignore[attr-defined]
    yield read
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


# --- the seed ---------------------------------------------------------------------------
def test_seed_example_runs_as_written_and_writes_the_seed_format(tmp_path: Path) -> None:
    check = """
import json
from otelprod.structured_logging import flush_logging
flush_logging()
print("REPORT", json.dumps(report))
"""
    with OTLPReceiver() as receiver:  # on its own, the example starts otelprod's pipeline
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
        result = run_python(SEED_LOGGING + check, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.split("REPORT ", 1)[1].splitlines()[0])
    assert report["process_data"]["count"] == 1
    assert report["process_data"]["success_rate"] == 1.0

    lines = (tmp_path / "logs" / "app.log").read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    # field by field, in the seed's order
    assert list(first) == ["timestamp", "level", "message", "logger", "user_id",
                           "request_id", "extra"]
    assert TIMESTAMP.match(first["timestamp"])
    assert first["level"] == "INFO"
    assert first["message"] == "Processing request"
    assert first["logger"] == "TGE_Monitor.my_module"
    assert first["user_id"] == "123"
    assert first["request_id"] == "abc"
    assert first["extra"] == {"extra_field": "value"}
    inside = [json.loads(line) for line in lines[1:]]
    assert [e["message"] for e in inside] == ["Starting data processing",
                                              "Data processing complete"]
    assert all(e["logger"] == "TGE_Monitor.process_data" and e["user_id"] == "123"
               for e in inside)
    # the same lines went to stdout
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()[:3]] == [
        "Processing request", "Starting data processing", "Data processing complete"]


def test_seed_example_with_init_carries_otel_trace_ids(tmp_path: Path,
                                                      otlp_receiver: OTLPReceiver) -> None:
    code = "import otelprod\notelprod.init('seed')\n" + SEED_LOGGING + \
        "otelprod.shutdown(timeout=5)\n"
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    result = run_python(code, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(x) for x in (tmp_path / "logs" / "app.log").read_text().splitlines()]
    inside = [e for e in entries if e["logger"] == "TGE_Monitor.process_data"]
    assert len(inside) == 2
    assert re.fullmatch(r"[0-9a-f]{32}", inside[0]["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", inside[0]["span_id"])
    assert inside[0]["trace_id"] == inside[1]["trace_id"]
    assert "trace_id" not in entries[0]  # logged outside any span


# --- the line format ------------------------------------------------------------------
def test_line_format_field_by_field(json_lines: Any) -> None:
    system = ObservabilitySystem("TGE_Monitor")
    logger = system.get_logger("my_module")
    json_lines.setup(level="DEBUG")
    logger.set_context(user_id="123")
    before = datetime.now(timezone.utc)
    with tracer.start_as_current_span("op") as span:
        logger.info("Processing request", extra_field="value")
        ids = span.get_span_context()
    after = datetime.now(timezone.utc)
    [entry] = json_lines()
    assert list(entry) == ["timestamp", "level", "message", "logger", "trace_id", "span_id",
                           "user_id", "extra"]
    stamp = datetime.strptime(entry["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc)
    assert TIMESTAMP.match(entry["timestamp"])
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamp <= after
    assert entry["level"] == "INFO"
    assert entry["message"] == "Processing request"
    assert entry["logger"] == "TGE_Monitor.my_module"
    assert entry["trace_id"] == format(ids.trace_id, "032x")
    assert entry["span_id"] == format(ids.span_id, "016x")
    assert entry["user_id"] == "123"
    assert entry["extra"] == {"extra_field": "value"}


def test_levels_args_exceptions_and_odd_fields(json_lines: Any) -> None:
    logger = ObservabilitySystem("S").get_logger("m")
    json_lines.setup(level="INFO")
    logger.debug("hidden")
    logger.warning("%d items", 3, name="reserved-name", message="clash", obj=object(),
                   items=[1, {"a": 2}])
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("failed")
    logger.critical("fatal", extra={"via_extra": True})
    entries = json_lines()
    assert [e["level"] for e in entries] == ["WARNING", "ERROR", "CRITICAL"]
    warning = entries[0]
    assert warning["message"] == "3 items"
    assert warning["extra"]["name"] == "reserved-name"
    assert warning["extra"]["message"] == "clash"
    assert warning["extra"]["obj"].startswith("<object object")
    assert warning["extra"]["items"] == [1, {"a": 2}]
    error = entries[1]
    assert error["exception"]["type"] == "KeyError"
    assert "Traceback" in error["exception"]["stacktrace"]
    assert entries[2]["extra"] == {"via_extra": True}


def test_records_point_at_the_callers_line() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = ObservabilitySystem("S").get_logger("where")
    logger.logger.addHandler(keep := Keep())
    logger.logger.setLevel(logging.DEBUG)

    def helper() -> None:
        logger.warning("via a helper", stacklevel=2)

    try:
        first = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        logger.info("info")
        logger.log(logging.INFO, "log")
        logger.bind(k=1).error("bound")
        try:
            raise ValueError("x")
        except ValueError:
            logger.exception("exception")
        helper()
    finally:
        logger.logger.removeHandler(keep)
    here = test_records_point_at_the_callers_line.__name__
    assert [(r.funcName, r.lineno) for r in seen] == [
        (here, first), (here, first + 1), (here, first + 2), (here, first + 6),
        (here, first + 7)]
    assert {r.filename for r in seen} == {Path(__file__).name}


def test_what_a_filter_adds_to_a_structured_record_is_scrubbed(json_lines: Any) -> None:
    handler = json_lines.setup()

    def add_key(record: logging.LogRecord) -> bool:
        record.api_key = "k-123456"
        return True

    handler.addFilter(add_key)
    ObservabilitySystem("S").get_logger("f").info("hi", password="pw-1", user="bob")
    [entry] = json_lines()
    assert entry["extra"] == {"password": "[REDACTED]", "user": "bob", "api_key": "[REDACTED]"}


def test_plain_stdlib_loggers_get_json_lines_with_context(json_lines: Any) -> None:
    json_lines.setup()
    set_context(request_id="r-1")
    logging.getLogger("thirdparty").info("hello %s", "there", extra={"k": 1})
    [entry] = json_lines()
    assert entry["message"] == "hello there"
    assert entry["logger"] == "thirdparty"
    assert entry["request_id"] == "r-1"
    assert entry["extra"] == {"k": 1}


def test_bad_level_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"level: must be one of .* got str 'LOUD'"):
        setup_json_logging(level="LOUD", stream=io.StringIO())


def test_setting_up_twice_replaces_the_handler(json_lines: Any) -> None:
    json_lines.setup()
    json_lines.setup()
    assert sum(isinstance(h, JsonQueueHandler) for h in logging.getLogger().handlers) == 1


# --- context ----------------------------------------------------------------------------
def test_context_does_not_leak_between_threads(json_lines: Any) -> None:
    json_lines.setup()
    logger = ObservabilitySystem("S").get_logger("threads")
    set_context(origin="main")
    barrier = threading.Barrier(4)
    seen: dict[str, dict[str, Any]] = {}

    def work(n: int) -> None:
        seen[f"start-{n}"] = get_context()
        logger.set_context(worker=n)
        barrier.wait()  # everyone has set a value before anyone logs
        logger.info("from worker", n=n)
        barrier.wait()
        seen[f"end-{n}"] = get_context()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(4):
        assert seen[f"start-{n}"] == {}, "a new thread starts with an empty context"
        assert seen[f"end-{n}"] == {"worker": n}
    entries = json_lines()
    assert sorted((e["worker"], e["extra"]["n"]) for e in entries) == [(n, n) for n in range(4)]
    assert all("origin" not in e for e in entries)
    assert get_context() == {"origin": "main"}


def test_context_does_not_leak_between_asyncio_tasks(json_lines: Any) -> None:
    json_lines.setup()
    logger = ObservabilitySystem("S").get_logger("tasks")

    async def handle(request_id: str, started: asyncio.Event, go: asyncio.Event) -> dict:
        logger.set_context(request_id=request_id)
        started.set()
        await go.wait()  # interleave: the other task sets its own value meanwhile
        logger.info("handled")
        return get_context()

    async def main() -> tuple[dict, dict, dict]:
        set_context(app="svc")
        s1, s2, go = asyncio.Event(), asyncio.Event(), asyncio.Event()
        t1 = asyncio.create_task(handle("req-1", s1, go))
        t2 = asyncio.create_task(handle("req-2", s2, go))
        await s1.wait()
        await s2.wait()
        go.set()
        c1, c2 = await asyncio.gather(t1, t2)
        return c1, c2, get_context()

    c1, c2, outer = asyncio.run(main())
    assert c1 == {"app": "svc", "request_id": "req-1"}
    assert c2 == {"app": "svc", "request_id": "req-2"}
    assert outer == {"app": "svc"}, "a task's changes must not leak into its creator"
    entries = json_lines()
    assert sorted(e["request_id"] for e in entries) == ["req-1", "req-2"]


def test_clear_and_bound_context() -> None:
    set_context(a=1, b=2)
    clear_context("a")
    assert get_context() == {"b": 2}
    with bound_context(c=3):
        assert get_context() == {"b": 2, "c": 3}
    assert get_context() == {"b": 2}
    logger = ObservabilitySystem("S").get_logger("x")
    logger.clear_context()
    assert logger.get_context() == {}
    assert logger.bind(k="v").get_context() == {"k": "v"}


def test_context_filter_puts_the_context_on_any_handlers_records() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("ctxfilter")
    logger.addHandler(handler)
    try:
        set_context(request_id="r-7", name="clash")
        logger.warning("x", extra={"request_id": "own"})
    finally:
        logger.removeHandler(handler)
    [record] = seen
    assert record.request_id == "own"  # the record's own value wins
    assert record.name_ == "clash" and record.name == "ctxfilter"  # never clobbers the record


# --- the OpenTelemetry bridge ---------------------------------------------------------
@pytest.fixture
def otel_bridge() -> Iterator[logging.Handler]:
    from otelprod._pipeline.log_bridge import LogBridge

    handler = LogBridge(_logs.get_logger_provider())  # type: ignore[arg-type]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_records_reach_the_otel_bridge_with_context_and_fields(
        telemetry: Telemetry, otel_bridge: logging.Handler, json_lines: Any) -> None:
    json_lines.setup()
    logger = ObservabilitySystem("Sys").get_logger("mod")
    logger.set_context(user_id="u-9")
    with tracer.start_as_current_span("op") as span:
        logger.info("charged %s", "card", amount=12.5, tags=["a", "b"])
        logging.getLogger("plain").warning("plain one")
    records = {r.log_record.body: r.log_record for r in telemetry.logs()}
    charged = records["charged card"]
    assert charged.attributes["user_id"] == "u-9"
    assert charged.attributes["amount"] == 12.5
    assert tuple(charged.attributes["tags"]) == ("a", "b")
    assert charged.trace_id == span.get_span_context().trace_id
    assert records["plain one"].attributes["user_id"] == "u-9"  # via ContextFilter
    assert [e["message"] for e in json_lines()] == ["charged card", "plain one"]


# --- trace_request and the performance report ---------------------------------------------
def test_trace_request_yields_the_context_dict_and_records_the_span(
        telemetry: Telemetry) -> None:
    system = ObservabilitySystem("Sys")
    with system.trace_request("process_data", user_id="123", size=3) as ctx:
        assert set(ctx) >= {"span", "trace_id", "span_id", "logger", "operation"}
        sc = ctx["span"].get_span_context()
        assert ctx["trace_id"] == format(sc.trace_id, "032x")
        assert ctx["span_id"] == format(sc.span_id, "016x")
        assert ctx["logger"].name == "Sys.process_data"
        assert ctx["logger"].get_context() == {"user_id": "123", "size": 3}
    [span] = telemetry.spans("process_data")
    assert dict(span.attributes) == {"user_id": "123", "size": 3}
    assert span.status.status_code is StatusCode.UNSET
    points = telemetry.metrics()[semconv.METRIC_OPERATION_DURATION]
    assert [attrs for attrs, _ in points] == [
        {semconv.OPERATION_NAME: "process_data", semconv.OPERATION_RESULT: "success"}]
    assert points[0][1].count == 1


def test_trace_request_records_errors_and_reraises(telemetry: Telemetry) -> None:
    system = ObservabilitySystem("Sys")
    with pytest.raises(ValueError, match="bad input"), system.trace_request("parse"):
        raise ValueError("bad input")
    [span] = telemetry.spans("parse")
    assert span.status.status_code is StatusCode.ERROR
    assert "ValueError" in span.status.description
    assert [e.name for e in span.events] == ["exception"]
    points = telemetry.metrics()[semconv.METRIC_OPERATION_DURATION]
    assert points[0][0] == {semconv.OPERATION_NAME: "parse", semconv.OPERATION_RESULT: "error",
                            semconv.ERROR_TYPE: "ValueError"}
    report = system.get_performance_report()["parse"]
    assert report["count"] == 1 and report["error_count"] == 1
    assert report["success_rate"] == 0.0
    assert report["last_error"] == "ValueError: bad input"


def test_performance_report_percentiles_and_bounds() -> None:
    system = ObservabilitySystem("Sys", window=100, max_operations=3)
    tracker = system.performance
    for i in range(1, 201):  # 1..200 ms; the window keeps the last 100
        tracker.record("db", i / 1000, success=i % 10 != 0)
    report = system.get_performance_report()["db"]
    assert report["count"] == 200 and report["error_count"] == 20
    assert report["success_rate"] == 0.9
    assert report["window"] == 100
    assert report["p50_ms"] == 150.0
    assert report["p95_ms"] == 195.0
    assert report["p99_ms"] == 199.0
    assert report["min_ms"] == 1.0 and report["max_ms"] == 200.0
    for name in ("a", "b", "c", "d", "e"):
        tracker.record(name, 0.001, True)
    assert set(system.get_performance_report()) == {"db", "a", "b", "(other)"}
    assert system.get_performance_report()["(other)"]["count"] == 3


def test_module_level_functions_use_the_global_system(telemetry: Telemetry) -> None:
    system = initialize_observability("Global")
    assert get_observability_system() is system
    assert initialize_observability("Global") is system
    assert get_logger("mod").name == "Global.mod"
    with trace_request("work") as ctx:
        ctx["logger"].info("x")
    assert "work" in system.get_performance_report()


def test_telemetry_trouble_never_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    from otelprod.structured_logging import _tracing

    class Broken:
        def record(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("metrics backend exploded")

    monkeypatch.setattr(_tracing, "_duration", Broken())
    with ObservabilitySystem("S").trace_request("op") as ctx:
        result = ctx["operation"]
    assert result == "op"


# --- non-blocking output, flushing and exit ------------------------------------------------
class GatedStream(io.StringIO):
    """A stream whose writes wait until released (or a generous bound passes)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(30)
        return super().write(text)


def test_logging_does_not_wait_for_slow_output(json_lines: Any) -> None:
    stream = GatedStream()
    json_lines.setup(stream=stream)
    logger = ObservabilitySystem("S").get_logger("slow")
    for i in range(5):
        logger.info("line", i=i)
    written_while_blocked = stream.getvalue()
    stream.release.set()
    assert flush_logging(10)
    assert written_while_blocked == ""  # the caller returned before any write finished
    assert len(stream.getvalue().splitlines()) == 5


def test_a_full_queue_drops_instead_of_blocking(json_lines: Any) -> None:
    stream = GatedStream()
    handler = json_lines.setup(stream=stream, queue_size=2)
    logger = ObservabilitySystem("S").get_logger("full")
    for i in range(10):
        logger.info("line", i=i)
    dropped = handler.dropped
    stream.release.set()
    assert flush_logging(10)
    assert dropped >= 7  # at most one line in the writer's hands and two queued
    assert len(stream.getvalue().splitlines()) == 10 - dropped


def test_rotation(tmp_path: Path, json_lines: Any) -> None:
    log_file = tmp_path / "nested" / "app.log"
    json_lines.setup(console=False, log_file=log_file, max_bytes=2000, backup_count=2)
    logger = ObservabilitySystem("S").get_logger("rot")
    for i in range(100):
        logger.info("a line that takes some room", i=i)
    json_lines()
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["app.log", "app.log.1", "app.log.2"]
    assert all(p.stat().st_size <= 2000 for p in log_file.parent.iterdir())


EXIT_PROGRAM = """
import sys
from otelprod.structured_logging import get_logger, setup_json_logging, shutdown_logging
setup_json_logging(log_file="out/app.log", console=False)
log = get_logger("exit")
for i in range(3000):
    log.info("line", i=i)
if MODE == "shutdown":
    shutdown_logging()
    log.info("after shutdown")
if MODE == "sys.exit":
    sys.exit(3)
"""


@pytest.mark.parametrize("mode", ["fall-off", "sys.exit", "shutdown"])
def test_lines_written_before_exit_are_not_lost(tmp_path: Path, mode: str) -> None:
    result = run_python(f"MODE = {mode!r}\n" + EXIT_PROGRAM, env=python_env(), cwd=tmp_path)
    assert result.returncode == (3 if mode == "sys.exit" else 0), result.stderr
    lines = (tmp_path / "out" / "app.log").read_text().splitlines()
    expected = 3001 if mode == "shutdown" else 3000
    assert len(lines) == expected
    assert json.loads(lines[2999])["extra"] == {"i": 2999}
    if mode == "shutdown":
        assert json.loads(lines[-1])["message"] == "after shutdown"


FORK_PROGRAM = """
import os, json
from otelprod.structured_logging import flush_logging, get_logger, setup_json_logging
setup_json_logging(log_file="app.log", console=False)
log = get_logger("fork")
log.info("before fork")
flush_logging()
pid = os.fork()
if pid == 0:
    log.info("in child", pid=os.getpid())
    ok = flush_logging(10)
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
log.info("in parent")
print(json.dumps({"child": pid, "status": status}))
"""


def test_a_forked_child_gets_its_own_writer(tmp_path: Path) -> None:
    result = run_python(FORK_PROGRAM, env=python_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["status"] == 0
    entries = [json.loads(x) for x in (tmp_path / "app.log").read_text().splitlines()]
    assert [e["message"] for e in entries] == ["before fork", "in child", "in parent"]
    assert entries[1]["extra"]["pid"] == info["child"]


def test_a_slow_writer_does_not_hold_up_many_callers(json_lines: Any) -> None:
    stream = GatedStream()
    json_lines.setup(stream=stream)
    logger = ObservabilitySystem("S").get_logger("many")
    done = []

    def worker() -> None:
        for i in range(50):
            logger.info("x", i=i)
        done.append(True)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    finished_before_release = len(done)
    stream.release.set()
    assert flush_logging(10)
    assert finished_before_release == 4
    assert len(stream.getvalue().splitlines()) == 200
