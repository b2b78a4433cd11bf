"""Which span an exception ended: noted on the exception itself, for the uncaught hooks.

An uncaught-exception hook runs after every ``with`` block the exception passed
through has closed its span (the SDK recorded the exception on each and set
status ERROR), so the hook's current span no longer tells which trace the
exception ended. Each of those spans ends while the exception is still in
flight: the SDK ends it in a ``finally``, where ``sys.exc_info()`` is that
exception. This processor notes the context of the first (innermost) failed
span on the exception object; :func:`span_context_of` reads it back.

Its cost on a span that did not fail is one attribute read and a comparison.
"""

from __future__ import annotations

import sys
import weakref

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext, StatusCode

_NOTE = "__otelprod_span_context__"

_watched: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


class FailedSpanMemory(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        if span.status.status_code is not StatusCode.ERROR:
            return
        exc = sys.exc_info()[1]
        if exc is None or getattr(exc, _NOTE, None) is not None or span.context is None:
            return
        try:
            setattr(exc, _NOTE, span.context)
        except Exception:  # an exception type that takes no attributes: nothing to note
            pass


def watch(provider: object) -> bool:
    """Add the memory to ``provider`` (an SDK tracer provider; once per provider).

    False when ``provider`` is not the SDK's: spans then cannot be remembered.
    """
    if not isinstance(provider, TracerProvider):
        return False
    if provider not in _watched:
        provider.add_span_processor(FailedSpanMemory())
        _watched.add(provider)
    return True


def span_context_of(exc: BaseException) -> SpanContext | None:
    """The context of the innermost span that ended failing with ``exc``, if one did."""
    found = getattr(exc, _NOTE, None)
    return found if isinstance(found, SpanContext) else None
