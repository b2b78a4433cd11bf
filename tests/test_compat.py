"""Guards for every private part of a dependency that otelprod relies on (``otelprod/_compat``).

Each test uses a compat function on a real object of the installed version.
When an upgrade removes what it needs, the function raises an error naming the
attribute, and the test fails with that message.
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.context import get_current
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otelprod._compat import otel_api, otel_instrumentation, otel_sdk, stdlib
from tests.conftest import run_python
from tests.otlp_receiver import HTTP, OTLPReceiver, free_port


# --- opentelemetry-exporter-otlp-proto-grpc --------------------------------------------------
@pytest.fixture
def grpc_exporter() -> GrpcSpanExporter:
    exporter = GrpcSpanExporter(endpoint=f"localhost:{free_port()}", insecure=True,
                                headers={"x-tenant": "acme"})
    yield exporter
    exporter.shutdown()


def test_grpc_exporter_channel_metadata_and_retryable_codes(grpc_exporter) -> None:
    assert otel_sdk.is_grpc_exporter(grpc_exporter)
    assert isinstance(otel_sdk.grpc_channel(grpc_exporter), grpc.Channel)
    assert ("x-tenant", "acme") in (otel_sdk.grpc_metadata(grpc_exporter) or ())
    assert otel_sdk.grpc_retryable(grpc_exporter, grpc.StatusCode.UNAVAILABLE)
    assert not otel_sdk.grpc_retryable(grpc_exporter, grpc.StatusCode.INVALID_ARGUMENT)


def test_grpc_reconnect_opens_a_new_channel(grpc_exporter) -> None:
    before = otel_sdk.grpc_channel(grpc_exporter)
    otel_sdk.grpc_reconnect(grpc_exporter)
    assert otel_sdk.grpc_channel(grpc_exporter) is not before


def test_a_missing_internal_is_named() -> None:
    with pytest.raises(otel_sdk.MissingInternal, match="has no attribute '_channel'"):
        otel_sdk.grpc_channel(object())
    with pytest.raises(otel_sdk.MissingInternal, match="'_update_resource'"):
        otel_sdk.update_resource(object(), Resource({}))


# --- opentelemetry-exporter-otlp-proto-http --------------------------------------------------
def test_http_post_sends_bytes_with_the_exporters_client() -> None:
    with OTLPReceiver(HTTP) as receiver:
        exporter = HttpSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
        assert not otel_sdk.is_grpc_exporter(exporter)
        status, error = otel_sdk.http_post(exporter, b"", timeout=5)
        exporter.shutdown()
    assert (status, error) == (200, None)
    assert len(receiver.requests("traces")) == 1


def test_http_post_reports_a_refused_connection_as_no_status() -> None:
    exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/traces")
    status, error = otel_sdk.http_post(exporter, b"", timeout=2)
    exporter.shutdown()
    assert status is None and error is not None


# --- opentelemetry-exporter-otlp-proto-common ------------------------------------------------
def test_the_private_log_encoder() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("compat").emit(body="hello")
    request = otel_sdk.encode_logs(exporter.get_finished_logs())
    bodies = [r.body.string_value for rl in request.resource_logs for sl in rl.scope_logs
              for r in sl.log_records]
    assert bodies == ["hello"]


# --- opentelemetry-sdk -----------------------------------------------------------------------
@pytest.mark.parametrize("exporter_class", [GrpcMetricExporter, HttpMetricExporter])
def test_metric_exporter_preferences(exporter_class: type) -> None:
    exporter = exporter_class()
    temporality, aggregation = otel_sdk.metric_preferences(exporter)
    exporter.shutdown()
    assert isinstance(temporality, dict) and temporality
    assert isinstance(aggregation, dict)


def test_update_resource_reaches_every_provider() -> None:
    update = Resource({"process.pid": os.getpid() + 1})
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    for provider in (tracer_provider, logger_provider, meter_provider):
        otel_sdk.update_resource(provider, update)
    assert tracer_provider.resource.attributes["process.pid"] == os.getpid() + 1
    assert logger_provider.resource.attributes["process.pid"] == os.getpid() + 1
    meter_provider.get_meter("compat").create_counter("c").add(1)
    data = reader.get_metrics_data()
    assert data is not None
    assert data.resource_metrics[0].resource.attributes["process.pid"] == os.getpid() + 1


def test_reset_metric_state_keeps_instruments_and_forgets_counts() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    counter = provider.get_meter("compat").create_counter("c")
    counter.add(5)
    assert otel_sdk.reset_metric_state(provider) is True
    counter.add(1)
    data = reader.get_metrics_data()
    assert data is not None
    points = [p.value for rm in data.resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics for p in m.data.data_points]
    assert points == [1]


def test_the_batch_log_processor_queue_reaches_its_exporter() -> None:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    class Collect(InMemoryLogRecordExporter):
        def export(self, batch):  # type: ignore[no-untyped-def]
            self.items = [*getattr(self, "items", []), *batch]
            return super().export([])

    exporter = Collect()
    processor = BatchLogRecordProcessor(exporter, max_queue_size=100, max_export_batch_size=10,
                                        schedule_delay_millis=60_000)
    enqueue = otel_sdk.batch_emitter(processor)
    backlog, queue_size, batch_size = otel_sdk.batch_backlog(processor)
    assert (backlog(), queue_size, batch_size) == (0, 100, 10)
    enqueue(("a", "captured", "item"))
    assert backlog() == 1
    assert processor.force_flush(5_000)
    assert backlog() == 0
    processor.shutdown()
    assert exporter.items == [("a", "captured", "item")]
    for accessor in (otel_sdk.batch_emitter, otel_sdk.batch_backlog):
        with pytest.raises(otel_sdk.MissingInternal, match="'_batch_processor'"):
            accessor(object())


class _StuckExporter:
    """Holds the batch processor's worker in its first export, so the queue fills up."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, batch: list[object]) -> None:
        self.release.wait(10)
        self.exported += len(batch)

    def shutdown(self, *args: object, **kwargs: object) -> None:
        pass

    def force_flush(self, *args: object) -> bool:
        return True


@pytest.mark.parametrize("kind", ["spans", "logs"])
def test_batch_processor_queue_drops_are_counted_exactly(kind: str) -> None:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = _StuckExporter()
    cls: Any = BatchSpanProcessor if kind == "spans" else BatchLogRecordProcessor
    processor = cls(exporter, max_queue_size=10, max_export_batch_size=5,
                    schedule_delay_millis=60_000)
    told: list[tuple[int, str]] = []
    reconcile = otel_sdk.count_queue_drops(processor, lambda n, why: told.append((n, why)))
    batch = processor._batch_processor
    for i in range(25):  # the worker takes one batch and is stuck: most do not fit
        batch.emit(i)
    reconcile()
    assert otel_sdk.queued(processor) == 10
    exporter.release.set()
    processor.shutdown()
    reconcile()
    dropped = sum(n for n, why in told if why == "queue_full")
    assert dropped > 0 and dropped + exporter.exported == 25  # exact, whatever the timing
    batch.emit(99)  # after the shutdown: refused, and told so
    assert told[-1] == (1, "already_shutdown")


def test_a_reading_taken_while_a_batch_is_taken_counts_nothing_twice() -> None:
    """The worker counts a take just before it takes the item: a reading in the middle
    of a batch is smaller than the truth for a moment. It must not pass for the queue
    starting over (a forked child's), or the drops before it are counted again."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    processor = BatchSpanProcessor(_StuckExporter(), max_queue_size=10,
                                   max_export_batch_size=5, schedule_delay_millis=60_000)
    told: list[int] = []
    reconcile = otel_sdk.count_queue_drops(processor, lambda n, why: told.append(n))
    queue = processor._batch_processor._queue
    for reading in (5, 2, 6):  # 2: taken mid-batch
        queue.lost = lambda reading=reading: reading
        reconcile()
    assert sum(told) == 6
    queue.clear()  # what the SDK does in a forked child: the count starts over
    queue.lost = lambda: 1
    reconcile()
    assert sum(told) == 7
    processor._batch_processor._exporter.release.set()
    processor.shutdown()


def test_a_batch_processor_without_its_internals_is_named() -> None:
    with pytest.raises(otel_sdk.MissingInternal, match="'_batch_processor'"):
        otel_sdk.count_queue_drops(object(), lambda n, why: None)
    with pytest.raises(otel_sdk.MissingInternal, match="'_batch_processor'"):
        otel_sdk.queued(object())


# --- opentelemetry-api -------------------------------------------------------------------------
def test_the_current_span_key_finds_the_current_span() -> None:
    key = otel_api.current_span_key()
    assert key is not None, "opentelemetry.trace.propagation._SPAN_KEY is gone"
    span = TracerProvider().get_tracer("compat").start_span("s")
    with trace.use_span(span, end_on_exit=True):
        assert get_current().get(key) is span


# --- opentelemetry-instrumentation(-system-metrics) -------------------------------------------
def test_the_instrumentor_singleton_and_its_process() -> None:
    class Probe(SystemMetricsInstrumentor):
        _instance = None  # a singleton of its own, whatever the test process made before

    assert otel_instrumentation.existing_instance(Probe) is None
    probe = Probe()
    assert otel_instrumentation.existing_instance(Probe) is probe
    process = object()
    otel_instrumentation.follow_process(probe, process)
    assert probe._proc is process


# --- the standard library --------------------------------------------------------------------
def test_threading_says_when_the_interpreter_exits() -> None:
    assert stdlib.threads_refused() is False
    result = run_python("""
    import atexit
    from otelprod._compat import stdlib
    atexit.register(lambda: print("at exit:", stdlib.threads_refused()))
    """)
    assert result.returncode == 0 and result.stdout.strip() == "at exit: True", result.stderr


def test_itertools_count_repr_gives_the_calls() -> None:
    counter = itertools.count()
    for _ in range(42):
        next(counter)
    assert stdlib.count_value(counter) == 42


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_contribs_instrument_app_marks_the_app(framework: str) -> None:
    """otelprod hands each app to instrument_app once, by contrib's flag on the app."""
    if framework == "fastapi":
        from fastapi import FastAPI
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        app: object = FastAPI()
        instrument = FastAPIInstrumentor.instrument_app
    else:
        from flask import Flask
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        app = Flask("compat")
        instrument = FlaskInstrumentor.instrument_app
    assert not otel_instrumentation.app_instrumented(app)
    instrument(app)
    assert otel_instrumentation.app_instrumented(app), (
        f"contrib's {framework} instrument_app no longer sets _is_instrumented_by_opentelemetry "
        "on the app, which otelprod reads (otelprod/_compat/otel_instrumentation.py)")


def test_queue_listener_stops_on_its_sentinel() -> None:
    import logging.handlers
    import queue

    lines: queue.SimpleQueue[object] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines)
    listener.enqueue_sentinel()
    assert lines.get_nowait() is stdlib.queue_listener_sentinel(listener)
    with pytest.raises(AttributeError, match="'_sentinel'"):
        stdlib.queue_listener_sentinel(object())  # type: ignore[arg-type]
