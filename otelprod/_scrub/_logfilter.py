"""Scrubbing the log lines of the libraries under the export path.

The OTLP exporters, gRPC and urllib3 quote endpoints in their warnings
("Transient error ... exporting to http://user:pass@host"), and these records
reach whatever handlers the application has (and the terminal). A logging
filter on each of their loggers rewrites such a record's message before any
handler formats it.

A filter on a logger only sees records created on that very logger, not on
its children, so :func:`scrub_library_logs` puts it on every logger under
the prefixes that exists now, and creates the loggers of the modules known to
log endpoints, so that when those modules are imported later (the exporters
are imported lazily) their ``getLogger(__name__)`` returns the filtered logger.
"""

from __future__ import annotations

import logging
import threading
import traceback

from otelprod._scrub import scrubber

#: the libraries whose own log lines may quote an endpoint, and otelprod's export path
#: (not the application's structured loggers: their lines are scrubbed already, and cheaply)
PREFIXES = ("opentelemetry", "grpc", "urllib3", "requests", "otelprod._pipeline")

#: modules that log an endpoint or an export error, imported after init() ran
KNOWN_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk._logs._internal.export",
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "grpc._channel",
    "grpc._common",
)


class ScrubbingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback text) with secrets replaced.

    Never drops a record and never raises: a record that cannot be formatted
    is left to the handler, which reports it as logging always does.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = scrubber.scrub_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # formatters use exc_text when it is set, so the traceback is scrubbed too
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = scrubber.scrub_text(text)
        return True


_filter = ScrubbingFilter()
_lock = threading.Lock()


def scrub_library_logs(prefixes: tuple[str, ...] = PREFIXES) -> int:
    """Put the scrubbing filter on every logger under ``prefixes``; idempotent.

    Returns how many loggers got it now. Cheap enough to call again once more
    modules are imported (the pipeline does after its first export).
    """
    with _lock:
        dotted = tuple(f"{prefix}." for prefix in prefixes)
        names = [name for name in list(logging.root.manager.loggerDict)
                 if name in prefixes or name.startswith(dotted)]
        added = 0
        for name in {*names, *prefixes, *KNOWN_LOGGERS}:
            logger = logging.getLogger(name)
            if _filter not in logger.filters:
                logger.addFilter(_filter)
                added += 1
        return added


__all__ = ["KNOWN_LOGGERS", "PREFIXES", "ScrubbingFilter", "scrub_library_logs"]
