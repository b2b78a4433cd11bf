"""The flush at interpreter exit: everything arrives, on every Python, within its deadline.

A child process calls ``otelprod.init()``, emits more than one export batch of
spans, log records and metric points, and simply ends: no ``shutdown()``. The
atexit hook must deliver all of it. Python 3.12 refuses to start threads at
interpreter exit, so this is also the test that the exit path starts none
(CI runs the suite on 3.10 to 3.13, and the child runs on the same Python).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import python_env, run_python
from tests.otlp_receiver import GRPC, HTTP, OTLPReceiver

SPANS = LOGS = 1_100  # more than two of the SDK's 512-item export batches
COUNTER_ADDS = 700

EMIT = f"""
import logging
import otelprod
from opentelemetry import metrics, trace

otelprod.init(service_name="exit-flush", system_metrics=False)
tracer = trace.get_tracer("exit-test")
counter = metrics.get_meter("exit-test").create_counter("exit.test.calls")
for i in range({SPANS}):
    with tracer.start_as_current_span(f"work-{{i}}"):
        logging.getLogger("exit-test").warning("line %d", i)
for i in range({COUNTER_ADDS}):
    counter.add(1, {{"shard": str(i % 7)}})
print("emitted", flush=True)
"""  # ...and no shutdown(): the process just ends


def _bodies(receiver: OTLPReceiver) -> list[str]:
    return [str(r["body"]) for r in receiver.logs() if str(r.get("body", "")).startswith("line ")]


def _counter_total(receiver: OTLPReceiver) -> float:
    # cumulative temporality: the last point of each attribute set holds its total
    last: dict[str, float] = {}
    for metric in receiver.metrics():
        if metric["name"] == "exit.test.calls":
            for point in metric["points"]:
                last[point["attributes"]["shard"]] = point["value"]
    return sum(last.values())


@pytest.mark.parametrize("protocol", [GRPC, HTTP])
def test_a_process_that_just_exits_delivers_everything(protocol: str) -> None:
    with OTLPReceiver(protocol) as receiver:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                         # nothing is exported on a timer before exit: the exit flush does it
                         OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_BLRP_SCHEDULE_DELAY="60000",
                         OTEL_METRIC_EXPORT_INTERVAL="60000")
        result = run_python(EMIT, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "emitted" in result.stdout
        assert "can't create new thread" not in result.stderr, result.stderr
        assert "Exception ignored" not in result.stderr, result.stderr
        receiver.wait_for(lambda r: len(r.spans()) >= SPANS and len(_bodies(r)) >= LOGS,
                          timeout=10)
        names = [s["name"] for s in receiver.spans() if s["name"].startswith("work-")]
        assert len(names) == SPANS, f"{len(names)} of {SPANS} spans delivered"
        assert len(set(names)) == SPANS, "a span was delivered twice"
        bodies = _bodies(receiver)
        assert len(bodies) == LOGS and len(set(bodies)) == LOGS, \
            f"{len(bodies)} log records delivered ({len(set(bodies))} distinct) of {LOGS}"
        assert _counter_total(receiver) == COUNTER_ADDS


@pytest.fixture
def hung_collector() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a collector that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize("protocol", [GRPC, HTTP])
def test_the_exit_flush_keeps_its_deadline_when_the_collector_hangs_and_loses_nothing(
        protocol: str, hung_collector: str) -> None:
    # One export attempt may wait 30 s; the shutdown deadline is 1 s. Nothing is
    # exported before exit (long schedule delays, fewer than a batch), so the
    # exit flush alone meets the hung collector.
    spans = 300
    code = f"""
    import otelprod
    from opentelemetry import trace

    otelprod.init(service_name="exit-hung", system_metrics=False,
                  export_timeout=30, shutdown_timeout=1)
    tracer = trace.get_tracer("exit-test")
    for i in range({spans}):
        tracer.start_span(f"work-{{i}}").end()
    """
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=hung_collector,
                     OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                     OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_BLRP_SCHEDULE_DELAY="60000",
                     OTEL_METRIC_EXPORT_INTERVAL="60000")
    began = time.monotonic()
    result = run_python(code, env=env, timeout=120)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert "can't create new thread" not in result.stderr, result.stderr
    # 1 s of deadline, plus interpreter start and init(); far below one 30 s attempt
    assert took < 20, f"the process took {took:.1f}s to exit against a 1 s flush deadline"

    # What the hung collector never took is on disk: the next process delivers it.
    with OTLPReceiver(protocol) as receiver:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
        later = run_python("""
        import otelprod
        otelprod.init(service_name="exit-hung", system_metrics=False)
        otelprod.shutdown(timeout=20)
        """, env=env, timeout=120)
        assert later.returncode == 0, later.stderr
        receiver.wait_for(lambda r: len(r.spans()) >= spans, timeout=15)
        names = [s["name"] for s in receiver.spans() if s["name"].startswith("work-")]
        assert len(names) == spans and len(set(names)) == spans, \
            f"{len(names)} delivered ({len(set(names))} distinct) of {spans}"
