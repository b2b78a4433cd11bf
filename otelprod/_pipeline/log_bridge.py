"""The OTLP log bridge: stdlib ``logging`` records into the OTel log pipeline, cheaply.

Every request logs, often several times, so a log call is the cost otelprod
adds most often. The bridge therefore does in the caller's thread only what
must happen there, and leaves the rest to the batch processor's export thread:

* in the caller: the message (``msg % args``, so later changes to the
  arguments do not show), a shallow copy of the record's attributes, the
  current OTel context (the trace ids), the ``set_context()`` fields (an
  immutable snapshot), the exception's attributes if any, and the time; the
  tuple goes straight onto the SDK batch processor's queue;
* in the export thread, per batch: the translation to SDK log records
  (attributes, severity, instrumentation scope per logger name, cached), the
  scrubbing and the OTLP encoding. When that thread falls behind (it
  competes for the GIL with every logging thread), callers translate their
  own records until it catches up.

What is exported is what the contrib ``LoggingHandler`` exported (its
translation, with its defaults: no ``code.*`` attributes), so the bridge
looks the same from outside: trace context on every record, ``extra=`` and
context fields as attributes, exceptions as ``exception.*``, severity
number and text as the SDK maps them, one scope per logger name.

The shortcut to the batch queue is taken only on otelprod's own logger
provider and only while nobody else added a processor to it: once another
processor is added (or on another tool's provider), records are translated
in the caller and emitted through the provider's whole processor chain, as
the contrib handler does. Values passed in ``extra=`` are read when the
batch is exported, like a :class:`logging.handlers.QueueHandler` reads them.
"""

from __future__ import annotations

import inspect
import logging
import os
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from time import time_ns
from typing import Any

from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry._logs import SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    LogRecordProcessor,
    ReadableLogRecord,
)
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.environment_variables import OTEL_BLRP_MAX_QUEUE_SIZE
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otelprod import semconv
from otelprod._compat import otel_sdk
from otelprod._pipeline.scrubbing import ScrubbingLogRecordProcessor
from otelprod._pipeline.settings import Settings
from otelprod._scrub import REDACTED, Scrubber, scrubber
from otelprod.structured_logging._context import current as context_fields
from otelprod.structured_logging._context import field_name
from otelprod.structured_logging._json import ScrubbedText

_log = logging.getLogger("otelprod._pipeline.log_bridge")

#: Loggers whose records never enter the bridge: the export path's own chatter
#: would otherwise feed itself (a failing export logs, the log is exported,
#: that export fails and logs again).
PLUMBING_LOGGERS = ("opentelemetry", "grpc", "urllib3", "requests", "otelprod._pipeline")

#: a record's own attributes: not exported as attributes (the contrib handler's list)
_RESERVED = frozenset((
    "asctime", "args", "created", "exc_info", "exc_text", "filename", "funcName",
    "getMessage", "message", "levelname", "levelno", "lineno", "module", "msecs", "msg",
    "name", "pathname", "process", "processName", "relativeCreated", "stack_info", "thread",
    "threadName", "taskName",
))
#: attributes promoted to the record's event name (stable key first, deprecated second)
_EVENT_NAME, _DEPRECATED_EVENT_NAME = "otel.event.name", "event.name"
#: Python level names the OTel data model spells differently
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_CACHE_BOUND = 4096  # logger names and levels may be unbounded: the caches are not
#: log records the export queue holds unless OTEL_BLRP_MAX_QUEUE_SIZE says otherwise:
#: the SDK's 2,048 is a tenth of a second of a service logging 20,000 lines a second,
#: less than one slow export takes
DEFAULT_QUEUE_SIZE = 16_384

#: What the caller's thread hands over: the record's attributes, the message,
#: the OTel context, the set_context() fields, the exception's attributes (formatted
#: in the caller, so the traceback's frames are not kept alive) and the time (ns).
Captured = tuple[dict[str, Any], str, Context, Mapping[str, Any], dict[str, Any] | None, int]


def is_plumbing(name: str) -> bool:
    """Whether records of logger ``name`` stay out of the bridge."""
    return name.startswith(PLUMBING_LOGGERS)


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _CACHE_BOUND:
        cache.clear()
    cache[key] = value
    return value


class _HashedResource(Resource):
    """A resource equal to ``resource``, its hash computed once.

    The OTLP encoder groups a batch by resource, hashing it for every record,
    and a resource's hash serialises all its attributes to JSON each time:
    that was a third of the encoding.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


class Translator:
    """Turns captured records into OTel log records, as the contrib handler does."""

    def __init__(self, resource: Callable[[], Resource], limits: LogRecordLimits,
                 scrub: Scrubber | None = None) -> None:
        self._resource = resource
        self._limits = limits
        self._scrubber = scrub or scrubber
        self._scopes: dict[str, InstrumentationScope] = {}
        self._hashed: tuple[Resource | None, Resource | None] = (None, None)
        self._severities: dict[tuple[int, str], tuple[SeverityNumber, str]] = {}

    def api_record(self, captured: Captured, *, scrub: bool) -> ApiLogRecord:
        """The API ``LogRecord`` of ``captured`` (its attributes a plain dict).

        A structured logger's message (a :class:`ScrubbedText`) is scrubbed
        already, and so are its fields: values it redacted do not make the
        attributes look unclean (scrubbing them again would change nothing).
        """
        record, body, context, fields, exception, observed = captured
        attributes = {k: v for k, v in record.items() if k not in _RESERVED}
        added = {name: value for name, value in  # set_context() fields the record lacks
                 ((field_name(key), value) for key, value in fields.items())
                 if name not in record}
        if exception:
            added.update(exception)
        if added:
            attributes.update(added)
        if type(body) is ScrubbedText:
            body = str(body)
        elif scrub:
            body = self._scrubber.scrub(body)
        if scrub and attributes and not self._scrubber.is_clean(
                {k: v for k, v in attributes.items() if v != REDACTED}):
            attributes = self._scrubber.scrub_mapping(attributes)
        event_name = attributes.pop(_EVENT_NAME, None)
        deprecated_event_name = attributes.pop(_DEPRECATED_EVENT_NAME, None)
        if event_name is None:
            event_name = deprecated_event_name
        levelno, levelname = record["levelno"], record["levelname"]
        severity = self._severities.get((levelno, levelname))
        if severity is None:
            severity = _bounded_put(self._severities, (levelno, levelname), (
                std_to_otel(levelno), _SEVERITY_TEXT.get(levelname, levelname)))
        return ApiLogRecord(
            timestamp=int(record["created"] * 1e9), observed_timestamp=observed,
            context=context or None, severity_number=severity[0], severity_text=severity[1],
            body=body, attributes=attributes, event_name=event_name)

    def readable(self, captured: Captured) -> ReadableLogRecord:
        """The scrubbed, export-ready SDK record of ``captured`` (in the export thread)."""
        log_record = self.api_record(captured, scrub=True)
        limits = self._limits
        attributes = BoundedAttributes(
            maxlen=limits.max_log_record_attributes, attributes=log_record.attributes,
            immutable=False, max_value_len=limits.max_log_record_attribute_length)
        log_record.attributes = attributes
        if attributes.dropped:
            warnings.warn("Log record attributes were dropped due to limits",
                          LogRecordDroppedAttributesWarning, stacklevel=2)
        name = captured[0]["name"]
        scope = self._scopes.get(name)
        if scope is None:  # what provider.get_logger(name) would carry
            scope = _bounded_put(self._scopes, name, InstrumentationScope(name))
        resource = self._resource()  # renewed after a fork: follow it
        source, hashed = self._hashed
        if source is not resource or hashed is None:
            hashed = _HashedResource(resource)
            self._hashed = (resource, hashed)
        return ReadableLogRecord(log_record=log_record, resource=hashed,
                                 instrumentation_scope=scope, limits=limits)


def exception_attributes(exc_info: Any) -> dict[str, Any]:
    """``exception.*`` of a record's ``exc_info``, as the contrib handler sets them."""
    attributes: dict[str, Any] = {}
    exc_type, value, tb = exc_info
    if exc_type is not None:
        attributes[semconv.EXCEPTION_TYPE] = exc_type.__name__
    if value is not None and value.args:
        attributes[semconv.EXCEPTION_MESSAGE] = str(value.args[0])
    if tb is not None:
        attributes[semconv.EXCEPTION_STACKTRACE] = "".join(
            traceback.format_exception(*exc_info))
    return attributes


#: told of log records lost: (signal, count, reason), e.g. the pipeline's DropLedger.record
OnDrop = Callable[[str, int, str], object]


def _ignore_drop(signal: str, count: int, reason: str) -> None:
    pass


class BridgeExporter(LogRecordExporter):
    """Translates the bridge's captured records in a batch, then hands it to ``inner``.

    Records emitted through the OTel API arrive as SDK records (scrubbed by the
    processor before the batch processor) and pass through unchanged.
    """

    def __init__(self, inner: LogRecordExporter, translator: Translator,
                 on_drop: OnDrop = _ignore_drop) -> None:
        self._inner = inner
        self._translator = translator
        self._on_drop = on_drop

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        readable = self._translator.readable
        out = []
        failed = 0
        for item in batch:
            if type(item) is not tuple:
                out.append(item)
                continue
            try:
                out.append(readable(item))
            except Exception:  # one odd record must not cost the batch
                failed += 1
        if failed:
            self._on_drop(semconv.Signal.LOGS, failed, semconv.DropReason.EXPORT_ERROR)
            _log.warning("otelprod: %d log records could not be translated and were dropped",
                         failed, exc_info=True)
        if not out:
            return LogRecordExportResult.SUCCESS
        return self._inner.export(out)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float | None = None) -> None:
        # the batch processor passes what is left of its deadline to an exporter that takes it
        shutdown: Callable[..., None] = self._inner.shutdown
        if timeout_millis is not None and \
                "timeout_millis" in inspect.signature(shutdown).parameters:
            shutdown(timeout_millis=timeout_millis)
        else:
            shutdown()

    def __getattr__(self, name: str) -> Any:
        # health/spool status and such live on the wrapped exporter
        return getattr(self._inner, name)


class BridgeLoggerProvider(LoggerProvider):
    """otelprod's logger provider: scrubbing, then batching into ``exporter``.

    ``enqueue`` is the batch processor's queue, where the bridge puts its
    captured records directly; it is None once anybody adds a processor of
    their own (then every record must pass the whole chain), or when the
    installed SDK lacks the internal it needs. ``backlog()`` is how many
    items wait there, ``queue_size`` how many it holds before it drops the
    oldest; from ``behind`` waiting on, the export thread is falling behind.
    """

    backlog: Callable[[], int]
    queue_size: int
    behind: int

    def __init__(self, resource: Resource, exporter: LogRecordExporter, *,
                 on_drop: OnDrop = _ignore_drop,
                 schedule_delay_millis: float | None = None) -> None:
        limits = LogRecordLimits()
        super().__init__(resource=resource, shutdown_on_exit=False, log_record_limits=limits)
        self.translator = Translator(lambda: self.resource, limits)
        self.on_drop = on_drop
        self.batch = batch = BatchLogRecordProcessor(
            BridgeExporter(exporter, self.translator, on_drop),
            schedule_delay_millis=schedule_delay_millis,
            max_queue_size=None if os.environ.get(OTEL_BLRP_MAX_QUEUE_SIZE, "").strip()
            else DEFAULT_QUEUE_SIZE)
        super().add_log_record_processor(ScrubbingLogRecordProcessor())
        super().add_log_record_processor(batch)
        self.enqueue: Callable[[Any], None] | None
        try:
            self.enqueue = otel_sdk.batch_emitter(batch)
            self.backlog, self.queue_size, batch_size = otel_sdk.batch_backlog(batch)
            # the export thread wakes when a batch waits: two waiting means it is behind
            self.behind = min(2 * batch_size, self.queue_size // 2)
        except otel_sdk.MissingInternal as exc:
            self.enqueue = None
            _log.warning("otelprod: log records are translated in the calling thread (%s)", exc)

    def add_log_record_processor(self, log_record_processor: LogRecordProcessor) -> None:
        self.enqueue = None  # the new processor must see the bridge's records too
        super().add_log_record_processor(log_record_processor)


#: set while the bridge emits in this context: a record logged meanwhile (by a
#: processor of the chain) is not bridged again
_emitting: ContextVar[bool] = ContextVar("otelprod_log_bridge_emitting", default=False)


class LogBridge(logging.Handler):
    """A ``logging.Handler`` that sends each record, with the caller's trace
    context, to the OTel log pipeline of ``provider``.

    Attach it to any logger (``Pipeline.log_handler`` is on the root logger).
    It takes no lock and does no I/O in the caller; ``flush()`` does nothing
    (``Pipeline.shutdown`` flushes the provider, in the caller's thread).
    ``dropped`` counts the records it took that will not be exported: those
    handled after :meth:`stop`, and one for each the full export queue
    dropped to take a newer one (also counted in ``otelprod.export.dropped``).
    """

    def __init__(self, provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.provider = provider
        self.dropped = 0
        self._stopped = False
        self._plumbing: dict[str, bool] = {}
        self._loggers: dict[str, Any] = {}
        self._ours = provider if isinstance(provider, BridgeLoggerProvider) else None
        self._translator = provider.translator if isinstance(provider, BridgeLoggerProvider) \
            else Translator(lambda: provider.resource, LogRecordLimits())
        # our provider scrubs in its chain; another tool's does not
        self._scrub_in_chain = self._ours is not None

    def handle(self, record: logging.LogRecord) -> Any:
        # No handler lock: nothing here needs one, and it would serialise every thread.
        name = record.name
        plumbing = self._plumbing.get(name)
        if plumbing is None:
            plumbing = _bounded_put(self._plumbing, name, is_plumbing(name))
        if plumbing:
            return False
        rv = self.filter(record) if self.filters else True
        if not rv:
            return rv
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = rv
        self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        if self._stopped:
            self.dropped += 1
            if self._ours is not None:
                self._ours.on_drop(semconv.Signal.LOGS, 1, semconv.DropReason.AFTER_SHUTDOWN)
            return
        try:
            msg = record.msg
            if self.formatter is not None:
                body = self.format(record)
            elif type(msg) is ScrubbedText and not record.args:
                body = msg  # a structured logger's: scrubbed already, and its type says so
            else:
                body = record.getMessage()
            attributes = record.__dict__.copy()
            exception = None
            if record.exc_info:
                exception = exception_attributes(record.exc_info)
                attributes["exc_info"] = None  # formatted: let the traceback go
            captured = (attributes, body, get_current(), context_fields(), exception,
                        time_ns())
            provider = self._ours
            if provider is None or provider.enqueue is None:
                self._emit_through_chain(captured)
                return
            enqueue = provider.enqueue
            backlog = provider.backlog()
            if backlog < provider.behind:
                enqueue(captured)
                return
            # The export thread is behind (it competes for the GIL with every
            # logging thread): the caller translates its own record, leaving
            # that thread only the encoding and the sending.
            if backlog >= provider.queue_size:  # the queue drops its oldest to take this one
                self.dropped += 1  # (counted as queue_full by the pipeline's ledger)
            enqueue(self._translator.readable(captured))
        except Exception:
            self.handleError(record)

    def _emit_through_chain(self, captured: Captured) -> None:
        """Translate in this thread and emit through every processor of the provider."""
        if _emitting.get():
            return  # a processor of the chain logged while we emit: not again
        token = _emitting.set(True)
        try:
            name = captured[0]["name"]
            logger = self._loggers.get(name)
            if logger is None:
                logger = _bounded_put(self._loggers, name, self.provider.get_logger(name))
            logger.emit(self._translator.api_record(captured,
                                                    scrub=not self._scrub_in_chain))
        finally:
            _emitting.reset(token)

    def flush(self) -> None:
        """Nothing to do: ``Pipeline.shutdown`` flushes the provider. (``logging.shutdown``
        flushes every handler at exit, when Python 3.12+ refuses to start threads,
        so this must neither start one nor wait for the export.)"""

    def stop(self) -> None:
        """From now on records are counted in ``dropped`` instead of being sent."""
        self._stopped = True

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} ({level}) -> {type(self.provider).__name__}>"


def bridge_logging(provider: LoggerProvider, level: str | Settings,
                   lower_root_level: bool = True) -> LogBridge:
    """Put a :class:`LogBridge` to ``provider`` on the root logger, at ``level``
    (a level name, or the settings' ``log_level``)."""
    handler = LogBridge(provider)
    root = logging.getLogger()
    name = level.log_level if isinstance(level, Settings) else level
    numeric = logging.getLevelName(name.upper())
    if isinstance(numeric, int):
        handler.setLevel(numeric)
        # Lower the root level only when nothing else handles records, so an
        # application's own handlers never start printing what they did not.
        if lower_root_level and not root.handlers and root.level > numeric:
            root.setLevel(numeric)
    root.addHandler(handler)
    return handler


__all__ = [
    "PLUMBING_LOGGERS",
    "BridgeExporter",
    "BridgeLoggerProvider",
    "Captured",
    "LogBridge",
    "Translator",
    "bridge_logging",
    "is_plumbing",
]
