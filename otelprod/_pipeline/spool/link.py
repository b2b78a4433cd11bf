"""One signal's way to the collector, with the spool behind it.

Each batch is encoded once, by the SDK's own encoders, into the bytes of an
OTLP export request. Those bytes are either sent at once (one attempt,
bounded by the export timeout) or, when that attempt fails or the collector
is already known to be down, written to the spool. While the collector is
down nothing waits on it: the batch thread spools each batch directly, so the
SDK's in-memory queue keeps draining and never drops. A sender thread probes
with exponential backoff (tenacity) and, once the collector answers, replays
the spool oldest first; the next live batch then goes straight out again.

The bytes are sent through the SDK exporter's own connection (its gRPC
channel, headers and credentials, or its HTTP client with headers,
compression and TLS), so every ``OTEL_EXPORTER_OTLP_*`` setting applies to the
replay exactly as to a normal export.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

import tenacity

from otelprod._compat import otel_sdk
from otelprod._pipeline.spool.store import Segment, SpoolDir, SpoolFull
from otelprod._pipeline.status import ExportHealth
from otelprod._telemetry import truncate

_log = logging.getLogger("otelprod._pipeline.spool")

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


class CollectorDown(Exception):
    """The collector did not take a spooled segment: back off, then probe again."""


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


class Sender(Protocol):
    """Sends the bytes of one export request; raises :class:`SendError`."""

    def send(self, data: bytes, timeout: float) -> None: ...

    def close(self) -> None: ...


class GrpcSender:
    """Sends request bytes over the SDK gRPC exporter's channel, with its metadata."""

    def __init__(self, exporter: Any, signal: str) -> None:
        self.exporter = exporter
        self._method = _GRPC_METHODS[signal]
        self._lock = threading.Lock()
        self._channel: Any = None
        self._rpc: Any = None

    def send(self, data: bytes, timeout: float) -> None:
        import grpc

        exporter = self.exporter
        try:
            with self._lock:
                channel = otel_sdk.grpc_channel(exporter)
                if channel is not self._channel:
                    self._channel = channel
                    # no serializer: the request is already bytes, sent as they are
                    self._rpc = channel.unary_unary(self._method)
                rpc = self._rpc
            rpc(data, metadata=otel_sdk.grpc_metadata(exporter), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            if code == grpc.StatusCode.UNAVAILABLE:
                self._reconnect()
            details = error.details() if callable(getattr(error, "details", None)) else ""
            raise SendError(f"{getattr(code, 'name', code)}: {details}",
                            retryable=otel_sdk.grpc_retryable(exporter, code)) from None
        except Exception as error:  # e.g. a closed channel
            raise SendError(repr(error), retryable=True) from None

    def _reconnect(self) -> None:
        with self._lock:
            otel_sdk.grpc_reconnect(self.exporter)

    def close(self) -> None:
        self.exporter.shutdown()


class HttpSender:
    """Sends request bytes with the SDK HTTP exporter's client (headers, compression, TLS)."""

    def __init__(self, exporter: Any, signal: str) -> None:
        self.exporter = exporter

    def send(self, data: bytes, timeout: float) -> None:
        try:
            status, error = otel_sdk.http_post(self.exporter, data, timeout)
        except Exception as exc:
            raise SendError(repr(exc), retryable=True) from None
        if status is not None and 200 <= status < 300:
            return
        if status is None:  # no response at all: connection refused, timeout, ...
            raise SendError(repr(error), retryable=True)
        raise SendError(f"HTTP {status}", retryable=status in _HTTP_RETRYABLE)

    def close(self) -> None:
        self.exporter.shutdown()


def sender_for(exporter: Any, signal: str) -> Sender:
    if otel_sdk.is_grpc_exporter(exporter):
        return GrpcSender(exporter, signal)
    return HttpSender(exporter, signal)


class SpoolStatus(TypedDict):
    """One signal's spool, as seen by this process."""

    spooling: bool
    spool_bytes: int
    dropped: int
    segments: int
    spool_dir: str | None


@dataclass(frozen=True)
class Policy:
    """Timings of the link; tests shorten them."""

    export_timeout: float = 5.0
    retry_initial: float = 0.5
    retry_max: float = 30.0
    poll_interval: float = 1.0  # how often an idle sender looks for others' segments
    rescan_every: float = 10.0  # recount bytes and recover dead processes' claims
    shutdown_timeout: float = 5.0  # at most this long to empty the spool at shutdown


class SignalLink:
    """The per-process export path of one signal: send now, or spool and replay."""

    def __init__(self, signal: str, sender: Sender, spool: SpoolDir, policy: Policy,
                 health: ExportHealth, on_drop: Callable[[str, int], None]) -> None:
        self.signal = signal
        self.sender = sender
        self.spool = spool
        self.policy = policy
        self.health = health
        self._on_drop = on_drop
        self.down = False
        self.closed = False
        #: set at shutdown (monotonic): no send may outlast it; later batches are spooled
        self.deadline: float | None = None
        self.dropped = 0  # dropped before reaching the spool (the spool counts its own)
        self._write_failed = False
        self._stop = threading.Event()
        self._urgent = threading.Event()
        self._thread: threading.Thread | None = None
        thread = threading.Thread(target=self._run, daemon=True, name=f"otelprod-spool-{signal}")
        try:
            thread.start()
            self._thread = thread
        except RuntimeError:
            # A forked worker's first export can come at its exit, where Python
            # 3.12+ starts no thread: the link still sends and spools without one.
            pass

    # --- the export path (the SDK's batch thread) ---------------------------------
    def submit(self, data: bytes, count: int, timeout: float | None = None) -> bool:
        """Send or spool one request; True when it is with the collector or on disk."""
        if self.down or self.closed:
            return self._to_spool(data, count)
        budget = min(timeout or self.policy.export_timeout, self.policy.export_timeout)
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.monotonic())
            if budget <= 0:  # the shutdown deadline has passed: to disk
                return self._to_spool(data, count)
        try:
            self.sender.send(data, budget)
        except SendError as exc:
            self.health.record(False, str(exc))
            if not exc.retryable:
                self._drop(count)
                return False
            self._mark_down(str(exc))
            return self._to_spool(data, count)
        self.health.record(True)
        return True

    def _to_spool(self, data: bytes, count: int) -> bool:
        try:
            self.spool.write(self.signal, data, count)
        except SpoolFull:
            return False  # counted by the spool
        except OSError as exc:
            self._drop(count)
            if not self._write_failed:  # once, not once per batch (a full disk stays full)
                self._write_failed = True
                _log.warning("otelprod spool: cannot write to %s (%s): %s dropped until it "
                             "can", self.spool.path, exc, self.signal)
            return False
        self._write_failed = False
        return True

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._on_drop(self.signal, count)

    def _mark_down(self, reason: str) -> None:
        if not self.down:
            self.down = True
            _log.warning("otelprod: the collector does not take %s (%s); spooling to %s "
                         "until it does", self.signal, truncate(reason, 160),
                         self.spool.path)

    # --- the sender thread ------------------------------------------------------------
    def _run(self) -> None:
        policy = self.policy
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CollectorDown),
            wait=tenacity.wait_exponential_jitter(multiplier=policy.retry_initial,
                                                  max=policy.retry_max,
                                                  jitter=policy.retry_initial),
            stop=tenacity.stop_when_event_set(self._stop),
            sleep=self._sleep,
            reraise=True,
        )
        last_rescan = time.monotonic()
        while not self._stop.is_set():
            self._urgent.wait(policy.poll_interval)
            self._urgent.clear()
            if self._stop.is_set():
                break
            try:
                if time.monotonic() - last_rescan >= policy.rescan_every:
                    last_rescan = time.monotonic()
                    self.spool.recover()
                    self.spool.scan()
                retrying(self._drain)
            except CollectorDown:
                pass  # stopped while the collector was down
            except Exception:  # the sender must outlive any surprise
                _log.exception("otelprod spool: sender error")

    def _sleep(self, seconds: float) -> None:
        self._urgent.wait(seconds)
        self._urgent.clear()

    def _drain(self, deadline: float | None = None) -> bool:
        """Send pending segments oldest first; raise CollectorDown when it refuses."""
        while True:
            segments = self.spool.pending(self.signal)
            if not segments:
                if self.down:  # e.g. another process sent ours: probe with an empty request
                    self._probe(deadline)
                return True
            for segment in segments:
                if deadline is None and self._stop.is_set():
                    return False
                timeout = self.policy.export_timeout
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout <= 0:
                        return False
                self._send_segment(segment, timeout)

    def _probe(self, deadline: float | None) -> None:
        timeout = self.policy.export_timeout
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        try:
            self.sender.send(b"", timeout)  # an empty export request is valid OTLP
        except SendError as exc:
            if exc.retryable:
                raise CollectorDown(str(exc)) from None
        self.down = False

    def _send_segment(self, segment: Segment, timeout: float) -> None:
        claim = self.spool.claim(segment)
        if claim is None:
            return  # another process (or thread) took it
        data = claim.read()
        if data is None:
            return
        try:
            self.sender.send(data, timeout)
        except SendError as exc:
            self.health.record(False, str(exc))
            if exc.retryable:
                claim.release()
                self._mark_down(str(exc))
                raise CollectorDown(str(exc)) from None
            claim.drop()
            return
        claim.done()
        self.health.record(True)
        if self.down:
            self.down = False
            _log.info("otelprod: the collector takes %s again; replaying the spool",
                      self.signal)

    # --- flush and close ---------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Send what is spooled for this signal, within ``timeout`` seconds."""
        try:
            return self._drain(deadline=time.monotonic() + timeout)
        except CollectorDown:
            return False

    def close(self, timeout: float) -> bool:
        """Stop the sender, try once more to empty the spool, and close the connection.

        What is still spooled stays on disk for the next process of the service.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self.deadline is not None:  # shutdown's own deadline wins
            deadline = min(deadline, self.deadline)
        self.closed = True
        self._stop.set()
        self._urgent.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, min(1.0, deadline - time.monotonic())))
        flushed = self.flush(max(0.0, deadline - time.monotonic()))
        self.spool.release_own_claims()
        try:
            self.sender.close()
        except Exception:
            pass
        return flushed

    def status(self) -> SpoolStatus:
        spool = self.spool
        return SpoolStatus(spooling=self.down, spool_bytes=spool.bytes_of(self.signal),
                           dropped=self.dropped + spool.dropped.get(self.signal, 0),
                           segments=len(spool.pending(self.signal)), spool_dir=str(spool.path))
