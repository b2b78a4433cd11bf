"""After os.fork: a new instance, its own exporter, and metrics that start from zero."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otelprod._pipeline.fork import reset_metric_state
from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver


def _points(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    assert data is not None
    return {m.name: p.value for rm in data.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics for p in m.data.data_points}


def test_reset_forgets_aggregations_and_keeps_instruments() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("t")
    counter = meter.create_counter("c")

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(42)

    meter.create_observable_gauge("g", callbacks=[observe])
    counter.add(3)
    assert _points(reader) == {"c": 3, "g": 42}
    assert reset_metric_state(provider) is True
    counter.add(2)
    assert _points(reader) == {"c": 2, "g": 42}  # cumulative from the reset, gauge still live
    provider.shutdown()


def test_reset_ignores_what_is_not_an_sdk_provider() -> None:
    assert reset_metric_state(object()) is False


FORKING = """
import os, otelprod
from opentelemetry import metrics, trace
otelprod.init("forking")
counter = metrics.get_meter("forking").create_counter("forked.count")
counter.add(1)
with trace.get_tracer("forking").start_as_current_span("before-fork"):
    pass
pid = os.fork()
if pid == 0:
    counter.add(5)
    with trace.get_tracer("forking").start_as_current_span("in-child"):
        pass
    otelprod.shutdown(timeout=10)
    os._exit(0)
_, status = os.waitpid(pid, 0)
counter.add(1)
otelprod.shutdown(timeout=10)
print(pid, os.getpid(), status)
"""


def test_forked_child_exports_its_own_counts_under_a_new_instance(
        otlp_receiver: OTLPReceiver, tmp_path: object) -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTELPROD_SPOOL_DIR=str(tmp_path),
                     OTELPROD_SYSTEM_METRICS="false", OTEL_METRIC_EXPORT_INTERVAL="60000")
    result = run_python(FORKING, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    child, parent, status = (int(x) for x in result.stdout.split())
    assert status == 0
    totals: dict[int, float] = {}
    instances: dict[int, set[str]] = {}
    for metric in otlp_receiver.metrics():
        if metric["name"] == "forked.count":
            pid = metric["resource"]["process.pid"]
            totals[pid] = max(p["value"] for p in metric["points"])
            instances.setdefault(pid, set()).add(metric["resource"]["service.instance.id"])
    assert totals == {parent: 2, child: 5}  # not 1 + 5: the parent's count stays the parent's
    assert len(instances[parent]) == len(instances[child]) == 1
    assert instances[parent] != instances[child]
    spans = {s["name"]: s["resource"] for s in otlp_receiver.spans()}
    assert spans["in-child"]["process.pid"] == child
    assert spans["before-fork"]["process.pid"] == parent
    assert spans["in-child"]["service.instance.id"] != spans["before-fork"]["service.instance.id"]
