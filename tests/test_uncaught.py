"""Uncaught exceptions reach the collector: a child that dies of one delivers the record first.

Each test runs a child interpreter that calls ``otelprod.init()`` against a real
OTLP receiver on loopback, lets an exception go uncaught (the main thread, a
thread, an asyncio task, a ``__del__``) and checks what arrived over the wire.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any

import pytest

from otelprod import _uncaught, semconv
from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver

FATAL, ERROR, STATUS_ERROR = 21, 17, 2
SECRET = "s3cr3t-tok-4242"


def _env(receiver: OTLPReceiver) -> dict[str, str]:
    return python_env(OTELPROD_SYSTEM_METRICS="false",
                      OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                      OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol)


def uncaught_records(receiver: OTLPReceiver) -> list[dict[str, Any]]:
    return [r for r in receiver.logs() if r["scope"] == "otelprod.uncaught"]


def _handled(receiver: OTLPReceiver) -> dict[str, float]:
    """errors.handled by error.context, summed over every export (they are cumulative: last)."""
    last: dict[str, float] = {}
    for metric in receiver.metrics():
        if metric["name"] == semconv.METRIC_ERRORS_HANDLED:
            for point in metric["points"]:
                attrs = point["attributes"]
                assert attrs[semconv.ERROR_SEVERITY] == "critical", attrs
                last[attrs[semconv.ERROR_CONTEXT]] = point["value"]
    return last


MAIN = f"""
import sys, otelprod
from opentelemetry import trace
from otelprod._scrub import scrubber

def previous_hook(exc_type, exc, tb):
    sys.stderr.write(f"previous hook saw {{exc_type.__name__}}\\n")

sys.excepthook = previous_hook  # the application's own hook, installed before init()
otelprod.init("crashing")
scrubber.register_secret("{SECRET}")

def charge():
    raise ValueError("card declined for token {SECRET}")

with trace.get_tracer("app").start_as_current_span("job"):
    charge()
"""


def test_the_main_thread_dying_delivers_a_fatal_record_before_exit(
        otlp_receiver: OTLPReceiver) -> None:
    result = run_python(MAIN, env=_env(otlp_receiver))
    assert result.returncode == 1, result.stderr
    # the hook that was there before still ran, once
    assert result.stderr.count("previous hook saw ValueError") == 1, result.stderr

    [job] = [s for s in otlp_receiver.spans() if s["name"] == "job"]
    assert job["status_code"] == STATUS_ERROR
    [record] = uncaught_records(otlp_receiver)
    assert record["severity_number"] == FATAL and record["severity_text"] == "FATAL"
    attrs = record["attributes"]
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"].startswith("card declined for token ")
    assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert ", in charge\n" in attrs["exception.stacktrace"]
    assert attrs["exception.stacktrace"].endswith("\nValueError: card declined for token "
                                                  "[REDACTED]\n")
    assert attrs[semconv.ERROR_CONTEXT] == semconv.UncaughtContext.MAIN_THREAD
    # the span the exception ended, though it had ended before the hook ran
    assert (record["trace_id"], record["span_id"]) == (job["trace_id"], job["span_id"])
    assert _handled(otlp_receiver) == {semconv.UncaughtContext.MAIN_THREAD: 1}
    alerts = [r for r in otlp_receiver.logs() if r["scope"] == "otelprod.alerts"]
    assert [a["body"].split(" - ")[0] for a in alerts] == [
        "alert raised: Uncaught exception: ValueError"]
    assert alerts[0]["attributes"][semconv.ALERT_SEVERITY] == "critical"
    # scrubbed like everything else
    assert SECRET not in repr(otlp_receiver.logs()) + repr(otlp_receiver.spans())
    assert "[REDACTED]" in attrs["exception.message"]


OTHERS = """
import asyncio, gc, sys, threading, otelprod
from opentelemetry import trace

tracer = trace.get_tracer("app")
early_loop = asyncio.new_event_loop()  # a loop created before init()
otelprod.init("crashing")

def work():
    with tracer.start_as_current_span("thread-work"):
        raise RuntimeError("thread gave up")

thread = threading.Thread(target=work, name="worker-1")
thread.start()
thread.join()

async def boom(n):
    with tracer.start_as_current_span(f"task-work-{n}"):
        raise KeyError(f"task {n} lost")

async def main(n):
    task = asyncio.ensure_future(boom(n))
    await asyncio.sleep(0.01)
    del task  # nobody retrieves its exception
    gc.collect()

early_loop.run_until_complete(main(1))
early_loop.close()
asyncio.run(main(2))

class Leaky:
    def __del__(self):
        raise OSError("closing a handle failed")

Leaky()
gc.collect()
print("still running")
"""


def test_threads_tasks_and_finalizers_deliver_error_records(otlp_receiver: OTLPReceiver) -> None:
    result = run_python(OTHERS, env=_env(otlp_receiver))
    assert result.returncode == 0, result.stderr
    assert "still running" in result.stdout
    # the previous hooks ran: Python's own thread and unraisable hooks print to stderr
    assert "RuntimeError: thread gave up" in result.stderr, result.stderr
    assert "OSError: closing a handle failed" in result.stderr, result.stderr

    spans = {s["name"]: s for s in otlp_receiver.spans()}
    every = uncaught_records(otlp_receiver)
    records = {r["attributes"]["exception.type"]: r for r in every}
    assert sorted(records) == ["KeyError", "OSError", "RuntimeError"]
    assert len(every) == 4, every  # two KeyErrors
    assert {r["severity_number"] for r in every} == {ERROR}

    thread = records["RuntimeError"]
    assert thread["attributes"][semconv.ERROR_CONTEXT] == semconv.UncaughtContext.THREAD
    assert thread["attributes"][semconv.THREAD_NAME] == "worker-1"
    assert thread["trace_id"] == spans["thread-work"]["trace_id"]
    assert thread["span_id"] == spans["thread-work"]["span_id"]

    tasks = [r for r in uncaught_records(otlp_receiver)
             if r["attributes"][semconv.ERROR_CONTEXT] == semconv.UncaughtContext.ASYNCIO]
    assert len(tasks) == 2  # the loop made before init() and the one made after
    for record in tasks:
        n = record["attributes"]["exception.message"].split()[1]
        assert record["trace_id"] == spans[f"task-work-{n}"]["trace_id"]
        assert record["attributes"][semconv.ERROR_DETAIL] == "Task exception was never retrieved"
        assert "in boom" in record["attributes"]["exception.stacktrace"]
    # asyncio's own record of the same exception is not sent a second time
    assert not [r for r in otlp_receiver.logs() if r["scope"] == "asyncio"]

    unraisable = records["OSError"]
    assert unraisable["attributes"][semconv.ERROR_CONTEXT] == semconv.UncaughtContext.UNRAISABLE
    assert "Leaky" in unraisable["attributes"][semconv.ERROR_DETAIL]
    assert _handled(otlp_receiver) == {semconv.UncaughtContext.THREAD: 1,
                                       semconv.UncaughtContext.ASYNCIO: 2,
                                       semconv.UncaughtContext.UNRAISABLE: 1}
    # no alert: only the main thread dying is one
    assert not [r for r in otlp_receiver.logs() if r["scope"] == "otelprod.alerts"]


LIVE_SPAN = """
import threading, otelprod
from opentelemetry import context, trace
otelprod.init("crashing")
tracer = trace.get_tracer("app")

def work():
    span = tracer.start_span("open-work")
    context.attach(trace.set_span_in_context(span))  # active, never ended by a with block
    try:
        raise LookupError("nothing there")
    finally:
        holder.append(span)

holder = []
thread = threading.Thread(target=work)
thread.start()
thread.join()
holder[0].end()
"""


def test_a_span_still_active_gets_the_error_status(otlp_receiver: OTLPReceiver) -> None:
    result = run_python(LIVE_SPAN, env=_env(otlp_receiver))
    assert result.returncode == 0, result.stderr
    [span] = otlp_receiver.spans()
    assert span["name"] == "open-work" and span["status_code"] == STATUS_ERROR
    assert [e["attributes"]["exception.type"] for e in span["events"]] == ["LookupError"]
    [record] = uncaught_records(otlp_receiver)
    assert (record["trace_id"], record["span_id"]) == (span["trace_id"], span["span_id"])


@pytest.mark.parametrize("how", ["keyword", "variable"])
def test_capture_uncaught_false_turns_it_off(otlp_receiver: OTLPReceiver, how: str) -> None:
    code = MAIN.replace('otelprod.init("crashing")',
                        'otelprod.init("crashing", capture_uncaught=False)'
                        if how == "keyword" else 'otelprod.init("crashing")')
    env = _env(otlp_receiver)
    if how == "variable":
        env["OTELPROD_CAPTURE_UNCAUGHT"] = "false"
    result = run_python(code, env=env)
    assert result.returncode == 1
    assert result.stderr.count("previous hook saw ValueError") == 1
    assert [s["name"] for s in otlp_receiver.spans()] == ["job"]  # the rest still flows
    assert uncaught_records(otlp_receiver) == []
    assert _handled(otlp_receiver) == {}


# --- in-process: the chain holds whatever happens --------------------------------------------
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


def _hooks(handler: logging.Handler) -> _uncaught.UncaughtHooks:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource

    from otelprod._pipeline.providers import Pipeline, PipelineMode
    from otelprod._pipeline.settings import Settings

    pipeline = Pipeline(Settings(), Resource({}), PipelineMode.REUSED,
                        tracer_provider=trace.get_tracer_provider(),  # type: ignore[arg-type]
                        log_handler=handler)
    return _uncaught.UncaughtHooks(pipeline)


def test_the_previous_hook_runs_even_when_reporting_fails(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda t, e, tb: seen.append(t.__name__))
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append("thread"))
    records = _Records()
    hooks = _hooks(records)
    hooks.install()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(hooks.logger, "log", _raise)  # the bridge itself blows up
            sys.excepthook(ValueError, ValueError("x"), None)
    finally:
        hooks.uninstall()
    assert seen == ["ValueError"]
    assert "reporting an uncaught ValueError failed" in caplog.text
    hooks = _hooks(records)
    hooks.install()
    try:
        sys.excepthook(_BadStr, _BadStr(), None)  # str() fails: still reported, still chained
    finally:
        hooks.uninstall()
        from otelprod.monitoring import monitoring_system
        monitoring_system.alert_manager.clear()
    assert seen == ["ValueError", "_BadStr"]
    assert [r.name for r in records.records] == [_uncaught.LOGGER_NAME]


def _raise(*args: object, **kwargs: object) -> None:
    raise OSError("the log bridge is broken")


def test_uninstall_restores_the_previous_hooks_and_leaves_later_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def mine(*args: object) -> None: ...

    monkeypatch.setattr(sys, "excepthook", mine)
    monkeypatch.setattr(sys, "unraisablehook", mine)
    handler = _Records()
    hooks = _hooks(handler)
    original_asyncio = asyncio.BaseEventLoop.call_exception_handler
    hooks.install()
    assert sys.excepthook != mine and asyncio.BaseEventLoop.call_exception_handler is not \
        original_asyncio
    later = sys.unraisablehook  # someone wraps ours after init()

    def wrapper(u: object) -> None:
        later(u)

    sys.unraisablehook = wrapper
    hooks.uninstall()
    assert sys.excepthook is mine
    assert asyncio.BaseEventLoop.call_exception_handler is original_asyncio
    assert sys.unraisablehook is wrapper  # left in place; ours inside it now only chains
    assert not hooks.active
    assert handler not in logging.getLogger(_uncaught.LOGGER_NAME).handlers
