"""A real OTLP receiver on loopback, for end-to-end tests over the wire.

It speaks gRPC (the service definitions of ``opentelemetry-proto`` on
``grpcio``) or HTTP/protobuf (``http.server``), keeps every request it got,
and flattens them into plain dicts that tests can assert on. It can be
stopped and started again on the same port to simulate a collector outage,
and made to hang: :meth:`OTLPReceiver.hang` keeps accepting connections and
requests but answers none (a collector that stalled), until :meth:`unhang`;
the requests it held are then dropped unanswered and never recorded.
"""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

GRPC = "grpc"
HTTP = "http/protobuf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return bytes(value.bytes_value)
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


class OTLPReceiver:
    """Collects what an OTLP exporter sends. ``endpoint`` is what to point it at."""

    def __init__(self, protocol: str = GRPC, port: int | None = None) -> None:
        if protocol not in (GRPC, HTTP):
            raise ValueError(f"protocol must be {GRPC!r} or {HTTP!r}, got {protocol!r}")
        self.protocol = protocol
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._requests: dict[str, list[Message]] = {"traces": [], "metrics": [], "logs": []}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        #: When set, every export is answered with this failure (gRPC status or HTTP code).
        self.fail_with: int | None = None
        self._answering = threading.Event()  # cleared while hung
        self._answering.set()
        self.held = 0  # requests that arrived while hung (never answered, never recorded)

    # --- lifecycle --------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPReceiver:
        if self.protocol == GRPC:
            self._start_grpc()
        else:
            self._start_http()
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop listening. ``grace``: let requests under way finish first (a collector
        that restarts cleanly); None drops them (a crash: one may be recorded while its
        answer is lost, and sent again)."""
        if self._server is None:
            return
        self.unhang()
        if self.protocol == GRPC:
            self._server.stop(grace=grace).wait()
        else:
            self._server.shutdown()
            self._server.server_close()
        self._server = None

    def hang(self) -> None:
        """Accept connections and requests from now on, and answer none."""
        self._answering.clear()

    def unhang(self) -> None:
        """Answer again; the requests held meanwhile are dropped without an answer."""
        self._answering.set()

    def _stall(self) -> bool:
        """In a request: True when it arrived while hung (it was held, then dropped)."""
        if self._answering.is_set():
            return False
        with self._lock:
            self.held += 1
        self._answering.wait()
        return True

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, signal: str, request: Message) -> None:
        with self._lock:
            self._requests[signal].append(request)

    def _start_grpc(self) -> None:
        receiver = self

        def servicer(base: type, signal: str, response: type) -> Any:
            """An instance of ``base`` whose Export records under ``signal``."""

            class Servicer(base):  # type: ignore[misc, valid-type]
                def Export(self, request, context):
                    if receiver._stall():
                        context.abort(grpc.StatusCode.UNAVAILABLE, "held while hung")
                    if receiver.fail_with is not None:
                        context.abort(grpc.StatusCode(receiver.fail_with), "failing on purpose")
                    if not context.is_active():  # the client gave up while it was queued
                        context.abort(grpc.StatusCode.CANCELLED, "the client gave up")
                    receiver._record(signal, request)
                    return response()

            return Servicer()

        # enough workers that requests held while hung do not starve the others
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            servicer(trace_service_pb2_grpc.TraceServiceServicer, "traces",
                     trace_service_pb2.ExportTraceServiceResponse), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            servicer(metrics_service_pb2_grpc.MetricsServiceServicer, "metrics",
                     metrics_service_pb2.ExportMetricsServiceResponse), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            servicer(logs_service_pb2_grpc.LogsServiceServicer, "logs",
                     logs_service_pb2.ExportLogsServiceResponse), server)
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def _start_http(self) -> None:
        receiver = self
        routes = {
            "/v1/traces": ("traces", trace_service_pb2.ExportTraceServiceRequest,
                           trace_service_pb2.ExportTraceServiceResponse),
            "/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest,
                            metrics_service_pb2.ExportMetricsServiceResponse),
            "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest,
                         logs_service_pb2.ExportLogsServiceResponse),
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver._stall():
                    self.close_connection = True  # no answer at all
                    return
                route = routes.get(self.path)
                if route is None:
                    self._reply(404, b"")
                    return
                if receiver.fail_with is not None:
                    self._reply(receiver.fail_with, b"")
                    return
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                signal, request_type, response_type = route
                request = request_type()
                request.ParseFromString(body)
                receiver._record(signal, request)
                self._reply(200, response_type().SerializeToString())

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        self._server = server

    # --- what arrived ------------------------------------------------------------
    def clear(self) -> None:
        with self._lock:
            for requests in self._requests.values():
                requests.clear()

    def requests(self, signal: str) -> list[Message]:
        with self._lock:
            return list(self._requests[signal])

    def spans(self) -> list[dict[str, Any]]:
        out = []
        for request in self.requests("traces"):
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append({
                            "name": span.name,
                            "kind": span.kind,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "attributes": attributes(span.attributes),
                            "events": [
                                {"name": e.name, "attributes": attributes(e.attributes)}
                                for e in span.events
                            ],
                            "status_code": span.status.code,
                            "scope": ss.scope.name,
                            "resource": resource,
                        })
        return out

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for request in self.requests("logs"):
            for rl in request.resource_logs:
                resource = attributes(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        out.append({
                            "body": any_value(record.body),
                            "severity_text": record.severity_text,
                            "severity_number": record.severity_number,
                            "trace_id": record.trace_id.hex(),
                            "span_id": record.span_id.hex(),
                            "attributes": attributes(record.attributes),
                            "scope": sl.scope.name,
                            "resource": resource,
                        })
        return out

    def metrics(self) -> list[dict[str, Any]]:
        """One dict per metric per request: name, unit, kind, resource, points."""
        out = []
        for request in self.requests("metrics"):
            for rm in request.resource_metrics:
                resource = attributes(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        data = getattr(metric, kind)
                        points = []
                        for p in data.data_points:
                            point: dict[str, Any] = {"attributes": attributes(p.attributes)}
                            if kind in ("sum", "gauge"):
                                point["value"] = getattr(p, p.WhichOneof("value"))
                            else:
                                point["count"] = p.count
                                point["sum"] = p.sum
                                if kind == "histogram":
                                    point["bounds"] = list(p.explicit_bounds)
                            points.append(point)
                        out.append({
                            "name": metric.name,
                            "unit": metric.unit,
                            "kind": kind,
                            "monotonic": getattr(data, "is_monotonic", None),
                            "scope": sm.scope.name,
                            "resource": resource,
                            "points": points,
                        })
        return out

    def metric_names(self) -> set[str]:
        return {m["name"] for m in self.metrics()}

    def wait_for(self, predicate: Callable[[OTLPReceiver], bool], timeout: float = 15.0) -> bool:
        """Poll until ``predicate(self)`` holds; returns whether it did in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)
