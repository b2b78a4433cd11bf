"""Private parts of opentelemetry-instrumentation that otelprod uses (see ``otelprod/_compat``).

* ``BaseInstrumentor._instance``: each instrumentor class is a singleton, kept
  in this private class attribute. otelprod starts the system-metrics
  instrumentation only when the application has not already (else every
  series would be reported twice), and asking the class for its instance
  would create one.
* ``SystemMetricsInstrumentor._proc``: the ``psutil.Process`` it reports on,
  taken once at start. In a forked child it must be the child's, or every
  worker reports the parent's memory and CPU.
* ``app._is_instrumented_by_opentelemetry``: the flag contrib's FastAPI,
  Starlette and Flask ``instrument_app`` set on an app they instrumented.
  otelprod reads it to hand each app to ``instrument_app`` exactly once
  (contrib warns, and may wrap twice, on a second call).
"""

from __future__ import annotations

from typing import Any


def existing_instance(instrumentor_class: type) -> Any:
    """The instance of a ``BaseInstrumentor`` subclass if one was made, else None."""
    if not any("_instance" in vars(base) for base in instrumentor_class.__mro__):
        raise AttributeError(
            f"{instrumentor_class.__module__}.{instrumentor_class.__qualname__} has no "
            "attribute '_instance', which otelprod uses to find an instrumentor the "
            "application already started: the installed opentelemetry-instrumentation is "
            "not one otelprod supports (see otelprod/_compat/otel_instrumentation.py)")
    return getattr(instrumentor_class, "_instance", None)


def follow_process(instrumentor: object, process: Any) -> None:
    """Make a ``SystemMetricsInstrumentor`` report on ``process`` (a ``psutil.Process``)."""
    if not hasattr(instrumentor, "_proc"):
        raise AttributeError(
            f"{type(instrumentor).__qualname__} has no attribute '_proc', which otelprod sets "
            "so that a forked child reports its own process metrics: the installed "
            "opentelemetry-instrumentation-system-metrics is not one otelprod supports "
            "(see otelprod/_compat/otel_instrumentation.py)")
    setattr(instrumentor, "_proc", process)  # noqa: B010 (the attribute is private)


_APP_FLAG = "_is_instrumented_by_opentelemetry"


def app_instrumented(app: object) -> bool:
    """Whether contrib's ``instrument_app`` instrumented this web app (False when never asked)."""
    return bool(getattr(app, _APP_FLAG, False))
