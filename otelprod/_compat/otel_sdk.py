"""Every private part of the OpenTelemetry SDK and OTLP exporters that otelprod uses.

An SDK minor release may rename any of these; this module is the one place
that says which ones otelprod relies on and why, and ``tests/test_compat.py``
checks each against the installed version. A missing one raises
:class:`MissingInternal`, which names the package, the class and the
attribute. What the SDK offers publicly is used instead wherever it exists.

* **Replaying the spool.** The spool keeps the encoded bytes of OTLP export
  requests and sends them later through the SDK exporter's own connection,
  so every ``OTEL_EXPORTER_OTLP_*`` setting (endpoint, headers, TLS,
  compression) applies exactly as to a live export. The exporters have no
  public way to send bytes: the gRPC exporter's channel, metadata, retryable
  codes and reconnect, and the HTTP exporter's client, are private. (The HTTP
  exporter's public ``session=`` parameter hands over the TLS settings only;
  the endpoint, headers and compression it resolved from the variables stay
  on the private client.) The log encoder is the private ``_log_encoder``
  module, while the span and metric encoders are public.
* **A fork-safe metric exporter** must announce the temporality and
  aggregation the real OTLP exporter prefers (resolved from
  ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``); the SDK keeps them
  in private attributes.
* **The log bridge's shortcut.** The bridge puts the records it captured in
  the caller's thread straight onto the ``BatchLogRecordProcessor``'s queue
  (its private ``_batch_processor``), so the translation to SDK records
  happens in the export thread; the processor's public ``on_emit`` takes
  only records already built. The bridge reads how full that queue is
  (``_queue``, ``_max_queue_size``, ``_max_export_batch_size``): when the
  export thread falls behind, the
  callers translate their records themselves, and a record the queue drops
  is counted.
* **Counting what a full queue drops.** The SDK's batch processors count the
  items their full queue drops only in their own internal metrics (off by
  default, not by otelprod's names, and not exactly: it checks for a full
  queue before appending, while the worker may empty it meanwhile).
  ``count_queue_drops`` replaces the processor's private ``_queue`` by a deque
  that counts its appends and takes (a drop is then exact) and wraps its
  private ``_metrics`` (told of drops after shutdown, and a cue to count);
  ``queued`` reads what a shutdown left in the queue.
* **After a fork.** The SDK renews ``service.instance.id`` in a forked child
  but not ``process.pid`` (only the opt-in process detector is re-run), and
  a child must not re-export the parent's counts: the providers'
  ``_update_resource`` and the meter provider's measurement consumer and
  reader storages are private.

The logs SDK itself lives in ``opentelemetry.sdk._logs`` by the SDK's own
design (its public path while the logs signal is experimental) and is
imported from there directly.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from otelprod._compat.stdlib import count_value


class MissingInternal(AttributeError):
    """An SDK internal otelprod relies on is gone (an SDK upgrade renamed it)."""

    def __init__(self, owner: object, attribute: str, purpose: str) -> None:
        kind = owner if isinstance(owner, type) else type(owner)
        super().__init__(
            f"{kind.__module__}.{kind.__qualname__} has no attribute {attribute!r}, which "
            f"otelprod uses {purpose}: the installed OpenTelemetry SDK or exporter is not "
            "one otelprod supports (see otelprod/_compat/otel_sdk.py)")
        self.attribute = attribute


def _get(obj: object, attribute: str, purpose: str) -> Any:
    try:
        return getattr(obj, attribute)
    except AttributeError:
        raise MissingInternal(obj, attribute, purpose) from None


# --- the gRPC exporter: replaying spooled bytes over its channel -------------------------
_GRPC = "to replay the spool over the gRPC exporter's connection"


def is_grpc_exporter(exporter: object) -> bool:
    """Whether ``exporter`` is an SDK OTLP/gRPC exporter (else an HTTP one)."""
    return hasattr(exporter, "_initialize_channel_and_stub")


def grpc_channel(exporter: object) -> Any:
    """The exporter's current ``grpc.Channel`` (it builds a new one on reconnect)."""
    return _get(exporter, "_channel", _GRPC)


def grpc_metadata(exporter: object) -> tuple[tuple[str, str], ...] | None:
    """The request metadata (headers) the exporter sends, or None."""
    headers = _get(exporter, "_headers", _GRPC)
    return tuple(headers or ()) or None


def grpc_retryable(exporter: object, code: Any) -> bool:
    """Whether the exporter would retry a call that failed with ``code``."""
    return code in _get(exporter, "_retryable_error_codes", _GRPC)


def grpc_reconnect(exporter: object) -> None:
    """Close the channel and open a new one, as the exporter does after UNAVAILABLE.

    A new channel skips gRPC's reconnect backoff (up to two minutes), so the
    first probe after the collector is back gets through.
    """
    try:
        grpc_channel(exporter).close()
    except MissingInternal:
        raise
    except Exception:
        pass
    _get(exporter, "_initialize_channel_and_stub", _GRPC)()


# --- the HTTP exporter: posting spooled bytes with its client ------------------------------
_HTTP = "to replay the spool with the HTTP exporter's client"


def http_post(exporter: object, data: bytes, timeout: float) -> tuple[int | None, Any]:
    """POST ``data`` (an encoded export request) once; (status code or None, error).

    The exporter's client compresses as configured and sends to the resolved
    endpoint with the resolved headers and TLS settings, retrying a stale
    pooled connection once, as a live export does.
    """
    client = _get(exporter, "_client", _HTTP)
    result = _get(client, "_submit", _HTTP)(_get(client, "_compress", _HTTP)(data), timeout)
    return result.status_code, result.error


def encode_logs(batch: Sequence[Any]) -> Any:
    """The ``ExportLogsServiceRequest`` of ``batch`` (the SDK's private log encoder)."""
    from opentelemetry.exporter.otlp.proto.common import _log_encoder

    encode = _get(_log_encoder, "encode_logs", "to encode log records for the spool")
    return encode(batch)


# --- the log bridge --------------------------------------------------------------------------
def batch_emitter(processor: object) -> Callable[[Any], None]:
    """The function that queues one item on a ``BatchLogRecordProcessor``'s batch queue.

    Its worker thread hands the queued items, in batches, to the processor's
    exporter; fork, flush and shutdown are the processor's own.
    """
    purpose = "to queue the log bridge's records for the export thread"
    emit: Callable[[Any], None] = _get(_get(processor, "_batch_processor", purpose), "emit",
                                       purpose)
    return emit


def batch_backlog(processor: object) -> tuple[Callable[[], int], int, int]:
    """How many items wait on a ``BatchLogRecordProcessor``'s queue (a function), how
    many it holds at most (beyond that it drops the oldest), and how many it exports
    at once (its export thread is woken when that many wait)."""
    purpose = "to see how far the log export thread is behind"
    batch = _get(processor, "_batch_processor", purpose)
    _get(batch, "_queue", purpose)

    def length() -> int:  # the queue object may be replaced (count_queue_drops does)
        return len(batch._queue)

    return (length, int(_get(batch, "_max_queue_size", purpose)),
            int(_get(batch, "_max_export_batch_size", purpose)))


# --- the batch processors: what their queue drops ----------------------------------------
_BATCH = "to count the items a full batch queue drops"


class _CountingQueue(collections.deque):  # type: ignore[type-arg]
    """The processor's queue, counting what goes in and what comes out.

    What a full queue drops is then exactly ``appended - popped - len``. The
    SDK's own drop count is not exact: it checks for a full queue before it
    appends, while its worker may take items out in between. Each count is
    an ``itertools.count`` (one atomic ``next()``): the appends, from many
    application threads, never lose an increment.
    """

    def __init__(self, items: collections.deque) -> None:  # type: ignore[type-arg]
        super().__init__(items, items.maxlen)
        self.appended = itertools.count(len(items))
        self.popped = itertools.count()
        self.generation = 0  # one more each time the queue starts over

    def appendleft(self, item: Any) -> None:
        super().appendleft(item)
        next(self.appended)  # after the append: the count never runs ahead of the queue

    def pop(self) -> Any:  # type: ignore[override]  # deque.pop takes no index
        next(self.popped)  # before the take: the count never lags behind the queue
        return super().pop()

    def clear(self) -> None:  # a forked child starts over (the SDK clears it after fork)
        super().clear()
        self.appended = itertools.count()
        self.popped = itertools.count()
        self.generation += 1

    def lost(self) -> int:
        """Items dropped so far; read appends first, pops last, so a take or an append
        under way makes this smaller, never larger, than the truth."""
        appended = count_value(self.appended)
        queued = len(self)
        return appended - queued - count_value(self.popped)


def count_queue_drops(processor: object,
                      on_drop: Callable[[int, str], object]) -> Callable[[], None]:
    """Have ``on_drop(count, reason)`` told of every item ``processor`` (a
    ``BatchSpanProcessor`` or ``BatchLogRecordProcessor``) drops: ``"queue_full"``
    for its full queue, ``"already_shutdown"`` for one emitted after its shutdown.

    Returns ``reconcile()``, which counts the queue's drops not told yet (the
    processor's own signal of a drop comes just before the item is dropped, so
    call it before reading totals: it is exact once the queue is at rest).
    """
    batch = _get(processor, "_batch_processor", _BATCH)
    inner = _get(batch, "_metrics", _BATCH)
    _get(inner, "drop_items", _BATCH)
    queue = _CountingQueue(_get(batch, "_queue", _BATCH))
    lock = _ForkAwareLock()
    told = [0]
    generation = [queue.generation]

    def reconcile() -> None:
        with lock:
            if queue.generation != generation[0]:  # the queue started over (a forked child)
                generation[0], told[0] = queue.generation, 0
            lost = queue.lost()
            # a reading taken while the worker takes a batch is smaller than the truth, for
            # a moment: it is not a new start, and the next reading at rest is exact
            if lost > told[0]:
                on_drop(lost - told[0], "queue_full")
                told[0] = lost

    batch._queue = queue
    batch._metrics = _CountingMetrics(inner, on_drop, reconcile)
    return reconcile


class _ForkAwareLock:
    """A lock a forked child replaces: a parent thread may have held it at fork().

    (``_compat`` does not import the fork registry: this lock renews itself by pid.)
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        if self._pid != os.getpid():
            self._pid, self._lock = os.getpid(), threading.Lock()
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class _CountingMetrics:
    """The batch processor's own metrics object, also telling otelprod of each drop."""

    def __init__(self, inner: Any, on_drop: Callable[[int, str], object],
                 reconcile: Callable[[], None]) -> None:
        self._inner = inner
        self._on_drop = on_drop
        self._reconcile = reconcile

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        try:
            if error_type == "queue_full":
                self._reconcile()  # the drops before this one; this one is counted next time
            else:
                self._on_drop(count, error_type)
        except Exception:
            pass
        self._inner.drop_items(count, error_type)

    def finish_items(self, count: int) -> None:
        self._inner.finish_items(count)


def queued(processor: object) -> int:
    """How many items wait in ``processor``'s queue (after its shutdown: never exported)."""
    batch = _get(processor, "_batch_processor", _BATCH)
    return len(_get(batch, "_queue", _BATCH))


# --- metric exporters ------------------------------------------------------------------------
def metric_preferences(exporter: object) -> tuple[Any, Any]:
    """The (temporality, aggregation) preferences of an SDK metric exporter."""
    purpose = "to give the fork-safe metric exporter the real exporter's preferences"
    return (_get(exporter, "_preferred_temporality", purpose),
            _get(exporter, "_preferred_aggregation", purpose))


# --- after a fork --------------------------------------------------------------------------
def update_resource(provider: object, resource: Any) -> None:
    """Merge ``resource`` into an SDK provider's resource (and its tracers'/loggers')."""
    _get(provider, "_update_resource",
         "to renew process.pid in a forked child (and service.name after otelprod run)"
         )(resource)


def reset_metric_state(meter_provider: object) -> bool:
    """Forget every aggregation of an SDK ``MeterProvider``; False if it is not one.

    Each metric reader gets fresh storage (instruments and observable callbacks
    live outside it and are kept), and the locks a parent's thread may have
    held at fork are new ones.
    """
    from opentelemetry.sdk.metrics import MeterProvider

    if not isinstance(meter_provider, MeterProvider):
        return False
    from opentelemetry.sdk.metrics._internal import metric_reader_storage

    purpose = "to start a forked child's metrics from zero"
    consumer = _get(meter_provider, "_measurement_consumer", purpose)
    config = _get(meter_provider, "_sdk_config", purpose)
    storage_class = _get(metric_reader_storage, "MetricReaderStorage", purpose)
    takes_limit = "instrument_class_cardinality_limit" in inspect.signature(
        storage_class).parameters
    fresh = {}
    for reader in _get(consumer, "_reader_storages", purpose):
        args = [config, _get(reader, "_instrument_class_temporality", purpose),
                _get(reader, "_instrument_class_aggregation", purpose)]
        if takes_limit:
            args.append(getattr(reader, "_instrument_class_cardinality_limit", {}))
        fresh[reader] = storage_class(*args)
        if hasattr(reader, "_export_lock"):  # held if the parent was exporting at fork
            reader._export_lock = threading.Lock()
    consumer._lock = threading.Lock()
    consumer._reader_storages = fresh
    return True
