"""init(sample_rate=...): parent-based ratio sampling; OTEL_TRACES_SAMPLER still wins."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, ParentBased

from otelprod._pipeline.providers import sampler
from otelprod._pipeline.settings import load_settings
from otelprod.errors import ConfigurationError
from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver


def test_sample_rate_keeps_that_share_of_new_traces_and_follows_the_parent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    chosen = sampler(load_settings(sample_rate=0.25))
    assert isinstance(chosen, ParentBased)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=chosen, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for _ in range(4000):
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
            pass
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name == "root"]
    children = [s for s in spans if s.name == "child"]
    # 4000 draws at p=0.25: 1000 expected, sd ~27; a miss by 200 is a 7-sigma event
    assert 800 <= len(roots) <= 1200, len(roots)
    # a child follows its parent's decision, so traces are whole
    assert len(children) == len(roots)
    assert {c.context.trace_id for c in children} == {r.context.trace_id for r in roots}
    # a sampled remote parent is followed at rate 0
    never = TracerProvider(sampler=sampler(load_settings(sample_rate=0.0)), shutdown_on_exit=False)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))))
    assert never.get_tracer("t").start_span("s", context=parent).is_recording()
    assert not never.get_tracer("t").start_span("s").is_recording()


def test_the_default_keeps_everything_and_the_variable_wins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    assert load_settings().sample_rate == 1.0
    assert sampler(load_settings()) is DEFAULT_ON  # the SDK's own default: keep every trace
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    assert sampler(load_settings(sample_rate=0.5)) is None  # the SDK reads the variable


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True, float("nan")])
def test_a_sample_rate_outside_0_1_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(sample_rate=bad)
    assert "sample_rate" in str(refused.value) and repr(bad)[:4] in str(refused.value)


PROGRAM = """
import logging, otelprod
from opentelemetry import trace
otelprod.init("sampled", sample_rate={rate})
with trace.get_tracer("app").start_as_current_span("work"):
    logging.getLogger("app").warning("did work")
assert otelprod.shutdown(timeout=10)
"""


@pytest.mark.parametrize("rate,sampler_variable,spans", [
    (0.0, None, 0), (0.0, "always_on", 1)], ids=["rate-0", "variable-wins"])
def test_init_sample_rate_over_the_wire(otlp_receiver: OTLPReceiver, rate: float,
                                        sampler_variable: str | None, spans: int) -> None:
    extra = {"OTEL_TRACES_SAMPLER": sampler_variable} if sampler_variable else {}
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL=otlp_receiver.protocol,
                     OTELPROD_SYSTEM_METRICS="false", **extra)
    result = run_python(PROGRAM.format(rate=rate), env=env)
    assert result.returncode == 0, result.stderr
    assert len([s for s in otlp_receiver.spans() if s["name"] == "work"]) == spans
    # logs flow either way
    assert [r["body"] for r in otlp_receiver.logs()] == ["did work"]
