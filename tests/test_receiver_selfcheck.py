"""The loopback OTLP receiver itself works with the SDK's own exporters."""

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def _send(exporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("hello", attributes={"k": 1}):
        pass
    provider.shutdown()


def test_grpc_receiver_gets_spans(otlp_receiver):
    _send(GrpcSpans(endpoint=otlp_receiver.endpoint, insecure=True))
    spans = otlp_receiver.spans()
    assert [s["name"] for s in spans] == ["hello"]
    assert spans[0]["attributes"] == {"k": 1}


def test_http_receiver_gets_spans(otlp_http_receiver):
    _send(HttpSpans(endpoint=otlp_http_receiver.endpoint + "/v1/traces"))
    assert [s["name"] for s in otlp_http_receiver.spans()] == ["hello"]
