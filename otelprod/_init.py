"""``otelprod.init()`` and ``otelprod.shutdown()``: the top, composing pipeline and features.

init() loads the settings, installs the telemetry pipeline (``otelprod._pipeline``:
the resource, the providers, the exporters with the disk spool) and starts the
production features (:class:`~otelprod._production.ProductionSystem`), handing
down what they need from the pipeline: the service name and the export
status. Everything it installs is fork-aware and flushed at exit within a
deadline; no failure of the collector ever reaches the application.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from otelprod._pipeline import sigterm
from otelprod._pipeline.fork import prepare_for_fork
from otelprod._pipeline.providers import Pipeline, install
from otelprod._pipeline.resource import build_resource
from otelprod._pipeline.resource import service_name as _service_name
from otelprod._pipeline.settings import load_settings
from otelprod._pipeline.status import ExportStatus
from otelprod._production import ProductionSystem

_log = logging.getLogger("otelprod.bootstrap")

_lock = threading.RLock()
_pipeline: Pipeline | None = None
_system: ProductionSystem | None = None
_atexit_registered = False


def init(
    service_name: str | None = None,
    *,
    environment: Any = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    config_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> ProductionSystem:
    """Wire tracing, metrics and logs over OTLP and start the production features.

    Idempotent: a second call returns the system the first one built and
    installs nothing (call :func:`shutdown` first to start over with new
    settings). Standard ``OTEL_*`` variables are honoured; otelprod's own
    settings come from ``OTELPROD_*`` variables, overridden by keywords
    (see :class:`otelprod._pipeline.settings.Settings`). ``config_overrides`` go to the
    application configuration (``otelprod.config_manager``).
    """
    global _pipeline, _system, _atexit_registered
    with _lock:
        if _system is not None:
            return _system
        environment = getattr(environment, "value", environment)  # Environment enum or str
        given = {"service_name": service_name, "environment": environment,
                 "endpoint": endpoint, "protocol": protocol, **overrides}
        settings = load_settings(**{k: v for k, v in given.items() if v is not None})
        explicit_env = environment is not None or "OTELPROD_ENVIRONMENT" in os.environ
        resource = build_resource(settings, explicit_environment=explicit_env)
        _pipeline = install(settings, resource)
        prepare_for_fork(_pipeline)
        if settings.sigterm_flush and _pipeline.owned:
            sigterm.install(_on_sigterm)

        system = ProductionSystem(settings, config_overrides=config_overrides,
                                  service_name=_service_name(resource),
                                  export_status=export_status)
        _system = system
        try:
            system.start()
        except Exception:
            _log.exception("otelprod: a production feature failed to start")
        if not _atexit_registered:
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True
        return system


def get_system() -> ProductionSystem | None:
    return _system


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
    global _pipeline, _system
    with _lock:
        system, pipeline = _system, _pipeline
        _system = _pipeline = None
    if pipeline is None and system is None:
        return True
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
