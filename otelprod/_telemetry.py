"""The thin layer every feature module uses to reach the OpenTelemetry *API*.

Feature code never touches the SDK: it asks the API for a tracer and a meter
under the ``otelprod`` scope, so it works under whatever providers are
installed (ours, another tool's, or the no-op defaults). The API hands out
proxies until a provider is set, so instruments may be created at import time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from otelprod import semconv

try:  # the version is only known once the package is installed
    from importlib.metadata import version as _version

    VERSION = _version("otelprod")
except Exception:  # pragma: no cover - running from a source tree
    VERSION = "0.0.0"

_log = logging.getLogger("otelprod.telemetry")

tracer: trace.Tracer = trace.get_tracer(semconv.SCOPE, VERSION)
meter: metrics.Meter = metrics.get_meter(semconv.SCOPE, VERSION)


def duration_histogram(name: str, description: str) -> metrics.Histogram:
    """A histogram in seconds whose buckets are meant for seconds.

    The advisory boundaries travel with the instrument, so they apply under
    anyone's SDK provider, not only under the views ``init()`` installs.
    """
    return meter.create_histogram(
        name,
        unit="s",
        description=description,
        explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS_S),
    )


def add_event(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
    """Add an event to the current span, if one is recording.

    Cheap when nothing records: no attribute dict is copied and no exception
    can escape to the caller.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return
    try:
        span.add_event(name, attributes or {})
    except Exception:  # telemetry trouble is never the caller's exception
        pass


def safely(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a telemetry helper or a user's listener: its failure is logged, never raised.

    ``what`` completes "... failed" in the log line, e.g. "counting a fallback".
    """
    try:
        fn(*args, **kwargs)
    except Exception:
        _log.warning("%s failed", what, exc_info=True)


def truncate(value: Any, limit: int = 120) -> str:
    """A short, printable excerpt for telemetry; never the raw value in full."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- a real pipeline on request ------------------------------------------------------------
#: Starts otelprod's pipeline for a service name. The package's front door sets it
#: (to a lazy ``otelprod.init``): the features may ask for it, never import it.
_pipeline_starter: Callable[[str], object] | None = None


def set_pipeline_starter(starter: Callable[[str], object]) -> None:
    global _pipeline_starter
    _pipeline_starter = starter


def ensure_pipeline(service_name: str) -> None:
    """Start otelprod's pipeline for ``service_name`` unless a tracer provider is set.

    With one installed (ours, or another tool's SDK), nothing changes: it is used.
    """
    global _pipeline_starter
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return  # the user turned telemetry off
    starter, _pipeline_starter = _pipeline_starter, None  # once, and never re-entered
    if starter is not None:
        safely("starting otelprod's pipeline", starter, service_name)
