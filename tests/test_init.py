"""otelprod.init() end to end: a child process exports to a real OTLP receiver on loopback."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import python_env, run_python
from tests.otlp_receiver import GRPC, HTTP, OTLPReceiver, free_port

FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500"}

PROGRAM = """
import logging, otelprod
from opentelemetry import trace, metrics
system = otelprod.init("checkout", environment="staging", service_version="1.4.2")
assert otelprod.init("ignored") is system, "a second init() must return the same system"
tracer = trace.get_tracer("app")
counter = metrics.get_meter("app").create_counter("app.orders", unit="{order}")
with tracer.start_as_current_span("place-order", attributes={"order.id": 7}):
    logging.getLogger("app.orders").warning("order %s placed", 7)
    counter.add(2, {"kind": "web"})
logging.getLogger("opentelemetry.exporter.test").warning("plumbing must not be exported")
assert otelprod.shutdown(timeout=10)
"""


def _env(receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    return python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                      OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol, **FAST, **extra)


@pytest.mark.parametrize("protocol", [GRPC, HTTP])
def test_all_three_signals_arrive_over_the_wire(protocol: str) -> None:
    with OTLPReceiver(protocol) as receiver:
        result = run_python(PROGRAM, env=_env(receiver))
        assert result.returncode == 0, result.stderr

        spans = [s for s in receiver.spans() if s["name"] == "place-order"]
        assert len(spans) == 1
        span = spans[0]
        resource = span["resource"]
        assert resource["service.name"] == "checkout"
        assert resource["service.version"] == "1.4.2"
        assert resource["deployment.environment.name"] == "staging"
        assert resource["host.name"]
        assert isinstance(resource["process.pid"], int)
        assert len(resource["service.instance.id"]) == 36
        assert span["attributes"]["order.id"] == 7

        logs = [r for r in receiver.logs() if r["body"] == "order 7 placed"]
        assert len(logs) == 1
        assert logs[0]["trace_id"] == span["trace_id"]
        assert logs[0]["span_id"] == span["span_id"]
        assert logs[0]["severity_text"] == "WARN"
        assert not [r for r in receiver.logs() if "plumbing" in str(r["body"])]

        orders = [m for m in receiver.metrics() if m["name"] == "app.orders"]
        assert orders and orders[-1]["points"][0]["value"] == 2
        assert orders[-1]["resource"]["service.instance.id"] == resource["service.instance.id"]


def test_standard_otel_variables_are_honoured(otlp_receiver: OTLPReceiver) -> None:
    code = """
    import otelprod
    from opentelemetry import trace
    otelprod.init()
    with trace.get_tracer("app").start_as_current_span("op"):
        pass
    otelprod.shutdown(timeout=10)
    """
    env = _env(otlp_receiver, OTEL_SERVICE_NAME="from-env",
               OTEL_RESOURCE_ATTRIBUTES="team=payments,deployment.environment.name=prod")
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr
    (span,) = otlp_receiver.spans()
    assert span["resource"]["service.name"] == "from-env"
    assert span["resource"]["team"] == "payments"
    assert span["resource"]["deployment.environment.name"] == "prod"


def test_per_signal_protocol_and_endpoint_variables() -> None:
    with OTLPReceiver(GRPC) as grpc_receiver, OTLPReceiver(HTTP) as http_receiver:
        env = python_env(
            **FAST,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_ENDPOINT=grpc_receiver.endpoint,
            OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=http_receiver.endpoint + "/v1/logs",
        )
        result = run_python(PROGRAM, env=env)
        assert result.returncode == 0, result.stderr
        assert [s["name"] for s in grpc_receiver.spans()] == ["place-order"]
        assert not grpc_receiver.logs()
        assert [r["body"] for r in http_receiver.logs()] == ["order 7 placed"]


def test_sampler_from_environment(otlp_receiver: OTLPReceiver) -> None:
    result = run_python(PROGRAM, env=_env(otlp_receiver, OTEL_TRACES_SAMPLER="always_off"))
    assert result.returncode == 0, result.stderr
    assert otlp_receiver.spans() == []
    # logs still flow, just without a sampled span to point at
    assert [r["body"] for r in otlp_receiver.logs()] == ["order 7 placed"]


def test_sdk_disabled_gives_no_op_telemetry_and_working_features(
        otlp_receiver: OTLPReceiver) -> None:
    code = """
    import json, otelprod
    from opentelemetry import trace
    system = otelprod.init("svc")
    with trace.get_tracer("app").start_as_current_span("op") as span:
        recording = span.is_recording()
    print(json.dumps({"recording": recording, "status": system.get_system_status()}))
    assert otelprod.shutdown(timeout=5)
    """
    result = run_python(code, env=_env(otlp_receiver, OTEL_SDK_DISABLED="true"))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["recording"] is False
    assert out["status"]["telemetry"]["mode"] == "disabled"
    time.sleep(0.5)
    assert otlp_receiver.spans() == [] and otlp_receiver.logs() == []


def test_collector_down_neither_raises_nor_blocks() -> None:
    code = """
    import logging, time, otelprod
    from opentelemetry import trace
    otelprod.init("svc", shutdown_timeout=2, export_timeout=1)
    tracer = trace.get_tracer("app")
    for i in range(1000):
        with tracer.start_as_current_span("op"):
            logging.getLogger("app").warning("call %d", i)
    started = time.monotonic()
    otelprod.shutdown()
    print(time.monotonic() - started)
    """
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", **FAST)
    result = run_python(code, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    took = float(result.stdout.strip().splitlines()[-1])
    assert took < 2 + 3, f"shutdown took {took:.1f}s against a 2 s deadline"
    assert "Traceback" not in result.stderr


def test_forked_child_exports_with_its_own_instance_id(otlp_receiver: OTLPReceiver) -> None:
    code = """
    import logging, os, otelprod
    from opentelemetry import trace
    otelprod.init("forky")
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("in-parent"):
        pass
    pid = os.fork()
    if pid == 0:
        with tracer.start_as_current_span("in-child"):
            logging.getLogger("app").warning("child log")
        os._exit(0 if otelprod.shutdown(timeout=10) else 3)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    assert otelprod.shutdown(timeout=10)
    """
    result = run_python(code, env=_env(otlp_receiver))
    assert result.returncode == 0, result.stderr
    by_name = {s["name"]: s["resource"] for s in otlp_receiver.spans()}
    parent, child = by_name["in-parent"], by_name["in-child"]
    assert parent["service.instance.id"] != child["service.instance.id"]
    assert parent["process.pid"] != child["process.pid"]
    (log,) = otlp_receiver.logs()
    assert log["resource"]["service.instance.id"] == child["service.instance.id"]


def test_reuses_sdk_providers_installed_by_another_tool() -> None:
    code = """
    import threading, otelprod
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    theirs = TracerProvider(), MeterProvider(), LoggerProvider()
    trace.set_tracer_provider(theirs[0])
    metrics.set_meter_provider(theirs[1])
    _logs.set_logger_provider(theirs[2])
    otelprod.init("svc")
    assert trace.get_tracer_provider() is theirs[0]
    assert metrics.get_meter_provider() is theirs[1]
    assert _logs.get_logger_provider() is theirs[2]
    print(otelprod.get_production_system().get_system_status()["telemetry"]["mode"])
    print(sorted(t.name for t in threading.enumerate() if "spool" in t.name.lower()))
    otelprod.shutdown(timeout=5)
    """
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr
    mode, spool_threads = result.stdout.strip().splitlines()[-2:]
    assert mode == "reused"
    assert spool_threads == "[]", "no exporter of ours may run when every provider is reused"


def test_partly_installed_providers_are_completed_with_ours(otlp_receiver) -> None:
    code = """
    import logging, otelprod
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    theirs = TracerProvider()
    trace.set_tracer_provider(theirs)
    otelprod.init("svc")
    assert trace.get_tracer_provider() is theirs
    logging.getLogger("app").warning("ours carries the logs")
    otelprod.shutdown(timeout=10)
    """
    result = run_python(code, env=_env(otlp_receiver))
    assert result.returncode == 0, result.stderr
    assert otlp_receiver.spans() == []  # their provider has no exporter: nothing of ours
    assert [r["body"] for r in otlp_receiver.logs()] == ["ours carries the logs"]


def test_bad_settings_name_the_key_and_value() -> None:
    code = """
    import otelprod
    try:
        otelprod.init("svc", protocol="carrier-pigeon")
    except ValueError as exc:
        print(exc)
    try:
        otelprod.init("svc", health_port="eighty", shutdown_timeout=-1)
    except ValueError as exc:
        print(exc)
    """
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "protocol" in result.stdout and "carrier-pigeon" in result.stdout
    assert "health_port" in result.stdout and "'eighty'" in result.stdout
    assert "shutdown_timeout" in result.stdout
