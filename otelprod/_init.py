"""``otelprod.init()`` and ``otelprod.shutdown()``: the top, composing pipeline and features.

init() loads the settings, installs the telemetry pipeline (``otelprod._pipeline``:
the resource, the providers, the exporters with the disk spool), taps the web
servers' loggers, starts the production features
(:class:`~otelprod._production.ProductionSystem`), handing down what they need
from the pipeline (the service name and the export status), and last activates
the OpenTelemetry instrumentations installed beside the application. Everything
it installs is fork-aware and flushed at exit within a deadline; no failure of
the collector ever reaches the application.

Under ``otelprod run`` and ``opentelemetry-instrument``, otelprod's configurator
(:mod:`otelprod.distro`) calls :func:`start_auto` before the application runs,
and the distro activates the instrumentations; the application's own
``init(service_name=...)`` then names the service and returns the same system.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from otelprod import _uncaught, semconv
from otelprod._pipeline import frameworks, server_logs, sigterm
from otelprod._pipeline.fork import prepare_for_fork
from otelprod._pipeline.http_conventions import prepare_environment
from otelprod._pipeline.instrumentation import Instrumentation, activate
from otelprod._pipeline.providers import Pipeline, install
from otelprod._pipeline.resource import build_resource, scrub_resource, update_identity
from otelprod._pipeline.resource import service_name as _service_name
from otelprod._pipeline.settings import Settings, load_settings
from otelprod._pipeline.status import ExportStatus
from otelprod._production import ProductionSystem
from otelprod.config_manager import load_secret_sources

_log = logging.getLogger("otelprod.bootstrap")

_lock = threading.RLock()
_pipeline: Pipeline | None = None
_system: ProductionSystem | None = None
_server_logs: server_logs.ServerLogs | None = None
_instrumentations: list[Instrumentation] = []
_started_by: str | None = None  # "otelprod run"-style auto-instrumentation, or None for init()
_atexit_registered = False


def init(
    service_name: str | None = None,
    *,
    environment: Any = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    instrument: bool | Sequence[str] | None = None,
    config_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> ProductionSystem:
    """Wire tracing, metrics and logs over OTLP, start the production features and
    activate the installed OpenTelemetry instrumentations.

    ``instrument``: True (the default, also ``OTELPROD_INSTRUMENT``) activates
    every installed instrumentation, False none, a list of names (``["fastapi",
    "requests"]``) only those; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` is honoured.

    Idempotent: a second call returns the system the first one built and
    installs nothing (call :func:`shutdown` first to start over with new
    settings). Standard ``OTEL_*`` variables are honoured; otelprod's own
    settings come from ``OTELPROD_*`` variables, overridden by keywords
    (see :class:`otelprod._pipeline.settings.Settings`). ``config_overrides`` go to the
    application configuration (``otelprod.config_manager``).
    """
    if config_overrides is not None and not isinstance(config_overrides, dict):
        raise TypeError(f"config_overrides: expected a dict or None, got "
                        f"{type(config_overrides).__name__} {config_overrides!r}")
    environment = getattr(environment, "value", environment)  # Environment enum or str
    given = {"service_name": service_name, "environment": environment,
             "endpoint": endpoint, "protocol": protocol, "instrument": instrument, **overrides}
    given = {k: v for k, v in given.items() if v is not None}
    with _lock:
        if _system is not None:
            if _started_by is not None:
                _adopt(given)
            return _system
        explicit_env = environment is not None or "OTELPROD_ENVIRONMENT" in os.environ
        return _start(load_settings(**given), explicit_env, config_overrides)


def start_auto(origin: str) -> ProductionSystem:
    """Start otelprod before the application runs (``otelprod run``, ``opentelemetry-
    instrument``): settings from the variables only; the distro activates the
    instrumentations, so this activates none."""
    global _started_by
    with _lock:
        if _system is not None:
            return _system
        settings = load_settings()
        system = _start(settings, "OTELPROD_ENVIRONMENT" in os.environ, None,
                        instrument=False)
        _started_by = origin
        return system


def _start(settings: Settings, explicit_env: bool, config_overrides: dict[str, Any] | None,
           *, instrument: bool = True) -> ProductionSystem:
    global _pipeline, _system, _server_logs, _instrumentations, _atexit_registered
    # first: anything below may load an instrumentation, which reads these once
    prepare_environment(settings)
    load_secret_sources(settings.secrets_dir)  # before the resource: it is scrubbed too
    resource = scrub_resource(build_resource(settings, explicit_environment=explicit_env))
    _pipeline = install(settings, resource)
    prepare_for_fork(_pipeline)
    if settings.sigterm_flush and _pipeline.owned:
        sigterm.install(_on_sigterm)
    _server_logs = server_logs.attach(_pipeline.log_handler, _pipeline.tracer_provider,
                                      access_logs=settings.server_access_logs)

    system = ProductionSystem(settings, config_overrides=config_overrides,
                              service_name=_service_name(resource),
                              export_status=export_status)
    _system = system
    try:
        system.start()
    except Exception:
        _log.exception("otelprod: a production feature failed to start")
    if settings.capture_uncaught:
        try:
            _uncaught.install(_pipeline)
        except Exception:
            _log.exception("otelprod: the uncaught-exception hooks failed to install")
    if instrument:  # last: otelprod's own connections, made above, stay untraced
        _instrumentations = activate(settings)
    if not _atexit_registered:
        atexit.register(_shutdown_at_exit)
        _atexit_registered = True
    return system


#: init() keywords that name the service: applied to the running pipeline's resource
_IDENTITY = {"service_name": semconv.SERVICE_NAME, "service_version": semconv.SERVICE_VERSION,
             "environment": semconv.DEPLOYMENT_ENVIRONMENT_NAME}


def _adopt(given: dict[str, Any]) -> None:
    """The application's init() after auto-instrumentation started otelprod: its service
    name, version and environment are applied; other keywords cannot be any more."""
    pipeline = _pipeline
    if pipeline is None:
        return
    identity = load_settings(**{k: v for k, v in given.items() if k in _IDENTITY})
    attributes = {_IDENTITY[k]: getattr(identity, k) for k in _IDENTITY if k in given}
    if attributes:
        update_identity([pipeline.tracer_provider, pipeline.meter_provider,
                         pipeline.logger_provider], attributes)
        if _system is not None and "service_name" in given:
            _system.service_name = str(attributes[semconv.SERVICE_NAME])
    ignored = sorted(k for k, v in given.items()
                     if k not in _IDENTITY and getattr(pipeline.settings, k, v) != v)
    if ignored:
        _log.warning("otelprod: init() came after %s started otelprod, so %s cannot change "
                     "now; set them as OTELPROD_* variables", _started_by, ", ".join(ignored))


def instrument_app(app: Any) -> Any:
    """Give a web application built before ``init()`` its server spans; returns it.

    FastAPI, Starlette, Flask and Django apps are instrumented in place (the
    same object is returned); a bare WSGI or ASGI callable comes back wrapped
    in contrib's OpenTelemetry middleware. Idempotent; safe before ``init()``.
    """
    pipeline = _pipeline
    return frameworks.instrument_app(app, pipeline.settings if pipeline else load_settings())


def instrumentations() -> list[Instrumentation]:
    """What init() made of each installed instrumentation (empty before init())."""
    return list(_instrumentations)


def get_system() -> ProductionSystem | None:
    return _system


def log_bridge() -> logging.Handler | None:
    """The OTLP log bridge of the running pipeline (None before init(), after shutdown(),
    or with telemetry disabled): a ``logging.Handler`` that sends what it is handed to the
    OTel log pipeline with the active trace context."""
    pipeline = _pipeline
    return pipeline.log_handler if pipeline is not None else None


def export_status() -> ExportStatus:
    """How the export is going (``not_initialized`` before init() and after shutdown())."""
    pipeline = _pipeline
    return pipeline.export_status() if pipeline is not None else ExportStatus.not_initialized()


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop everything init() started, within ``timeout`` seconds.

    Returns whether everything was flushed in time. Safe to call twice, and
    returns promptly also when the collector is down or hangs: once the
    deadline is near, what is left goes to the disk spool instead of the wire.
    Everything runs in the calling thread (the atexit hook calls this, and at
    interpreter exit Python 3.12+ starts no thread); each step is bounded.
    """
    global _pipeline, _system, _server_logs, _started_by
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 <= timeout < float("inf")):
        raise ValueError(f"timeout: expected a finite number of seconds >= 0 or None, got "
                         f"{type(timeout).__name__} {timeout!r}")
    with _lock:
        system, pipeline, taps = _system, _pipeline, _server_logs
        _system = _pipeline = _server_logs = _started_by = None
    if taps is not None:
        taps.detach()
    if pipeline is None and system is None:
        return True
    _uncaught.uninstall()
    budget = timeout if timeout is not None else (
        pipeline.settings.shutdown_timeout if pipeline else 5.0)
    deadline = time.monotonic() + budget
    with sigterm.shutting_down(budget + 1.0):  # a SIGTERM meanwhile waits for the flush
        if system is not None:
            try:
                system.stop()
            except Exception:
                _log.debug("otelprod: stopping the production features failed",
                           exc_info=True)
        flushed = pipeline.shutdown(deadline) if pipeline is not None else True
        sigterm.uninstall()
    return flushed


def _flush(timeout: float | None = None) -> bool:
    """Export what the providers hold now, within ``timeout`` seconds; they keep running."""
    pipeline = _pipeline
    if pipeline is None:
        return True
    budget = timeout if timeout is not None else pipeline.settings.shutdown_timeout
    return pipeline.flush(time.monotonic() + budget)


def _on_sigterm(final: bool) -> None:
    """SIGTERM: a full shutdown when the process ends with it, else a flush (the
    application's or server's own handler, called next, decides what follows)."""
    if final:
        shutdown()
    else:
        _flush()


def _shutdown_at_exit() -> None:
    try:
        shutdown()
    except Exception:
        pass
