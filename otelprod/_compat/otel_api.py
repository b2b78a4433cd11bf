"""Private parts of the OpenTelemetry API that otelprod uses (see ``otelprod/_compat``).

* ``opentelemetry.trace.propagation._SPAN_KEY``: the context key the API
  stores the current span under. The resilience wrappers ask "is any span
  current?" on every guarded call; reading the context directly costs about
  60 ns, ``trace.get_current_span()`` with its validity check about 290 ns.
  Without the key the public road is taken (:func:`current_span_key` is None).
"""

from __future__ import annotations


def current_span_key() -> str | None:
    """The context key of the current span, or None if the API no longer has it."""
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:
        return None
    return _SPAN_KEY
