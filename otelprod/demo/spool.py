"""Demo scene: the collector goes away, telemetry waits on disk, and arrives when it is back.

The scene runs its own small pipeline against a deliberately flaky fake
collector (OTLP/HTTP on loopback that counts the spans it is sent), so the
outage can be staged without touching the real collector the rest of the
demo exports to.
"""

from __future__ import annotations

import http.server
import tempfile
import threading
import time
from typing import Any

TITLE = "spool: a collector outage loses nothing"


class _FlakyCollector:
    """OTLP/HTTP traces endpoint that can be taken down and brought back on one port."""

    def __init__(self) -> None:
        self.spans = 0
        self._server: Any = None
        self.port = 0

    def start(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so stop() really is an outage

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                collector.spans += sum(len(ss.spans) for rs in request.resource_spans
                                       for ss in rs.scope_spans)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def run(out) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otelprod._pipeline.exporters import build_otlp_exporters
    from otelprod._pipeline.settings import load_settings

    collector = _FlakyCollector()
    collector.start()
    with tempfile.TemporaryDirectory() as spool:
        settings = load_settings(service_name="spool-demo", protocol="http/protobuf",
                                 endpoint=f"http://127.0.0.1:{collector.port}",
                                 spool_dir=spool, spool_retry_initial=0.1, spool_retry_max=0.3,
                                 export_timeout=1.0)
        exporter: Any = build_otlp_exporters(settings).traces
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
        tracer = provider.get_tracer("otelprod.demo.spool")

        def emit(count: int) -> float:
            started = time.perf_counter()
            for n in range(count):
                with tracer.start_as_current_span("checkout", attributes={"order.id": n}):
                    pass
            spent = (time.perf_counter() - started) / count * 1e6
            provider.force_flush()
            return spent

        emit(20)
        out.step(f"collector up: 20 spans sent, the collector has {collector.spans}")
        collector.stop()
        cost = emit(200)
        status = exporter.spool_status()
        out.step(f"collector down: 200 spans at {cost:.0f} µs a call, none blocked; "
                 f"spooled to disk: {status['segments']} segments, {status['spool_bytes']} "
                 f"bytes (spooling={status['spooling']})")
        collector.start()
        started = time.monotonic()
        while collector.spans < 220 and time.monotonic() - started < 10:
            time.sleep(0.05)
        out.step(f"collector back: the spool was replayed in {time.monotonic() - started:.1f} s;"
                 f" the collector has {collector.spans} of 220 spans, "
                 f"{exporter.spool_status()['segments']} segments left")
        provider.shutdown()
    collector.stop()
    _bounded_outage(out, collector.port)


def _bounded_outage(out, port: int) -> None:  # type: ignore[no-untyped-def]
    """The spool is bounded: past the bound the oldest data goes, and is counted."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otelprod._pipeline.exporters import build_otlp_exporters
    from otelprod._pipeline.settings import load_settings

    with tempfile.TemporaryDirectory() as spool:
        settings = load_settings(service_name="spool-demo-bounded", protocol="http/protobuf",
                                 endpoint=f"http://127.0.0.1:{port}", spool_dir=spool,
                                 spool_max_bytes=8192, export_timeout=0.5)
        exporters = build_otlp_exporters(settings)
        exporter: Any = exporters.traces
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50,
                                                       max_export_batch_size=50))
        tracer = provider.get_tracer("otelprod.demo.spool")
        for n in range(500):
            with tracer.start_as_current_span("checkout", attributes={"order.id": n}):
                pass
        provider.force_flush()
        status = exporters.signal_status("traces")
        out.step(f"an outage against an 8 KiB spool bound: {status.spool_bytes} bytes kept, "
                 f"the oldest {status.dropped} spans dropped and counted in "
                 "otelprod.export.dropped{reason=spool_full}; the application never noticed")
        provider.shutdown()
