"""The bytes of an OTLP export request, and the ways to send them.

Each batch is encoded once, by the SDK's own encoders. The bytes are sent
through the SDK exporter's own connection (its gRPC channel, headers and
credentials, or its HTTP client with headers, compression and TLS), so every
``OTEL_EXPORTER_OTLP_*`` setting applies to a replay exactly as to a live
export.

A sender sends in two ways:

* :meth:`Sender.send` blocks until the answer or the timeout. The spool's
  replay and the probe use it, in the link's own thread, and so does the
  shutdown (its timeout is then cut to the deadline).
* :meth:`Sender.start` hands the send to a long-lived thread of the sender's
  own and returns at once; an :class:`InFlight` is finished with the answer
  later. The live export waits on it only as long as it chooses, so a
  collector that accepts a connection and never answers holds the SDK's
  batch thread for the short ``hang_timeout``, not for the whole export
  timeout, and the shutdown deadline can cut that wait too. The thread is
  started on the first live send; ``start`` declines (returns False) when it
  is not running and Python may refuse a new one (the interpreter exits).

Not gRPC futures: a future starts gRPC's polling thread whenever the channel
was idle, and on Python 3.12, where the interpreter refuses new threads a
moment before ``threading`` says it is shutting down, a refused polling
thread leaves the call started and never polled: closing that channel then
hangs the exit. A blocking call needs no thread of gRPC's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from opentelemetry.instrumentation.utils import suppress_instrumentation

from otelprod._compat import otel_sdk, stdlib

_GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
_HTTP_RETRYABLE = frozenset({408, 429, 502, 503, 504})


class SendError(Exception):
    """One send failed; ``retryable`` says whether the same bytes may succeed later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def encode(signal: str, batch: Any) -> tuple[bytes, int]:
    """The OTLP request bytes of ``batch`` and its item count, by the SDK's encoders."""
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        return encode_spans(batch).SerializeToString(), len(batch)
    if signal == "logs":
        return otel_sdk.encode_logs(batch).SerializeToString(), len(batch)
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    request = encode_metrics(batch)
    points = sum(len(getattr(m, kind).data_points)
                 for rm in request.resource_metrics for sm in rm.scope_metrics
                 for m in sm.metrics if (kind := m.WhichOneof("data")))
    return request.SerializeToString(), points


def item_count(signal: str, batch: Any) -> int:
    """How many items ``batch`` holds (metric data points for metrics), never raising."""
    try:
        if signal != "metrics":
            return len(batch)
        return sum(len(m.data.data_points) for rm in batch.resource_metrics
                   for sm in rm.scope_metrics for m in sm.metrics)
    except Exception:
        return 0


class InFlight:
    """One send under way, finished with its answer: None (taken) or a :class:`SendError`.

    ``wake`` is the condition its waiters wait on (the link's, which the
    shutdown deadline also notifies).
    """

    def __init__(self, wake: threading.Condition) -> None:
        self._wake = wake
        self.done = False
        self.error: SendError | None = None
        self._then: list[Callable[[SendError | None], None]] = []

    def finish(self, error: SendError | None) -> None:
        with self._wake:
            if self.done:
                return
            self.done, self.error = True, error
            then, self._then = self._then, []
            self._wake.notify_all()
        for callback in then:
            callback(error)

    def then(self, callback: Callable[[SendError | None], None]) -> None:
        """Call ``callback(error)`` once the answer is in (now, if it is in already)."""
        with self._wake:
            if not self.done:
                self._then.append(callback)
                return
        callback(self.error)

    def cancel(self) -> None:
        """Give up on the answer: a send not begun is skipped; one under way ends at its
        own timeout, unheard (the request may still reach the collector)."""
        self.finish(SendError("cancelled", retryable=True))


class Sender(Protocol):
    """Sends the bytes of one export request."""

    def send(self, data: bytes, timeout: float) -> None:
        """Send and wait for the answer; raises :class:`SendError`."""

    def start(self, data: bytes, timeout: float, inflight: InFlight) -> bool:
        """Begin a send that finishes ``inflight``; False when it cannot begin now."""

    def close(self) -> None: ...


class _Sending:
    """What both senders share: :meth:`start` through a thread of their own."""

    exporter: Any
    _signal: str

    def _setup_sending(self, signal: str) -> None:
        self._signal = signal
        self._jobs: queue.SimpleQueue[tuple[bytes, float, InFlight] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def send(self, data: bytes, timeout: float) -> None:
        # Our own export requests are never traced: with requests/urllib3/grpc
        # instrumented, each one would make a span, exported by another request...
        with suppress_instrumentation():
            self._post(data, timeout)

    def _post(self, data: bytes, timeout: float) -> None:
        raise NotImplementedError

    def start(self, data: bytes, timeout: float, inflight: InFlight) -> bool:
        if not self._running():
            return False
        self._jobs.put((data, timeout, inflight))  # cancelling it before it begins skips it
        return True

    def _running(self) -> bool:
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return True
            if stdlib.threads_refused():
                return False
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"otelprod-send-{self._signal}")
            try:
                thread.start()
            except RuntimeError:  # e.g. refused a moment before threading says it exits
                return False
            self._thread = thread
            return True

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            data, timeout, inflight = job
            if inflight.done:  # cancelled before it began
                continue
            try:
                self.send(data, timeout)
            except SendError as error:
                inflight.finish(error)
            except Exception as error:  # the thread must outlive any surprise
                inflight.finish(SendError(repr(error), retryable=True))
            else:
                inflight.finish(None)

    def close(self) -> None:
        self._jobs.put(None)  # the thread ends after the send it may be in
        self.exporter.shutdown()


class GrpcSender(_Sending):
    """Sends request bytes over the SDK gRPC exporter's channel, with its metadata."""

    def __init__(self, exporter: Any, signal: str) -> None:
        self.exporter = exporter
        self._method = _GRPC_METHODS[signal]
        self._lock = threading.Lock()
        self._channel: Any = None
        self._rpc: Any = None
        self._setup_sending(signal)

    def _callable(self, reconnect: bool = False) -> Any:
        with self._lock:
            if reconnect:
                otel_sdk.grpc_reconnect(self.exporter)
            channel = otel_sdk.grpc_channel(self.exporter)
            if channel is not self._channel:
                self._channel = channel
                # no serializer: the request is already bytes, sent as they are
                self._rpc = channel.unary_unary(self._method)
            return self._rpc

    def _post(self, data: bytes, timeout: float) -> None:
        import grpc

        try:
            self._callable()(data, metadata=otel_sdk.grpc_metadata(self.exporter),
                             timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            if code == grpc.StatusCode.UNAVAILABLE:
                self._callable(reconnect=True)  # a new channel skips gRPC's reconnect backoff
            details = error.details() if callable(getattr(error, "details", None)) else ""
            raise SendError(f"{getattr(code, 'name', code)}: {details}",
                            retryable=otel_sdk.grpc_retryable(self.exporter, code)) from None
        except Exception as error:  # e.g. a closed channel
            raise SendError(repr(error), retryable=True) from None


class HttpSender(_Sending):
    """Sends request bytes with the SDK HTTP exporter's client (headers, compression, TLS)."""

    def __init__(self, exporter: Any, signal: str) -> None:
        self.exporter = exporter
        self._setup_sending(signal)

    def _post(self, data: bytes, timeout: float) -> None:
        try:
            status, error = otel_sdk.http_post(self.exporter, data, timeout)
        except Exception as exc:
            raise SendError(repr(exc), retryable=True) from None
        if status is not None and 200 <= status < 300:
            return
        if status is None:  # no response at all: connection refused, timeout, ...
            raise SendError(repr(error), retryable=True)
        raise SendError(f"HTTP {status}", retryable=status in _HTTP_RETRYABLE)


def sender_for(exporter: Any, signal: str) -> Sender:
    if otel_sdk.is_grpc_exporter(exporter):
        return GrpcSender(exporter, signal)
    return HttpSender(exporter, signal)
