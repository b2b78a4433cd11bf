"""otelprod as an OpenTelemetry distro: ``opentelemetry-instrument`` builds otelprod's pipeline.

Registered as the ``otelprod`` entry point of the ``opentelemetry_distro`` and
``opentelemetry_configurator`` groups. ``opentelemetry-instrument`` (and
``otelprod run``) then, before the application runs:

1. configure the distro: the environment the instrumentors read (stable HTTP
   semantic conventions, excluded probe routes), and otelprod as the
   configurator when another one (``opentelemetry-distro``'s) is installed too;
2. run the configurator: ``otelprod`` starts, with its spool, scrubber, log
   bridge, system metrics and server-log taps, exactly as ``init()`` does;
3. load each instrumentor through :meth:`OtelprodDistro.load_instrumentor`:
   otelprod's screening (its own ``logging`` and ``system_metrics`` are never
   loaded twice; ``OTELPROD_INSTRUMENT``) and its error handling (a failing
   instrumentor is a warning, and the others still load).

The application's own ``otelprod.init(service_name=...)`` afterwards returns
the running system and names the service.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import (  # type: ignore[attr-defined]  # untyped
    BaseDistro,
)

from otelprod._init import start_auto
from otelprod._pipeline.http_conventions import prepare_environment
from otelprod._pipeline.instrumentation import (
    ABSENT,
    CONFLICT,
    DISABLED_ENV,
    OWN,
    activate_entry_point,
    screen,
    survey,
)
from otelprod._pipeline.settings import Settings, load_settings

_log = logging.getLogger("otelprod._pipeline.instrumentation")

NAME = "otelprod"


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # reported again, in full, by the configurator's init
        _log.warning("otelprod: %s; instrumenting with the default settings", exc)
        return Settings()


class OtelprodDistro(BaseDistro):  # type: ignore[misc]
    """The ``opentelemetry_distro`` entry point ``otelprod``."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", NAME)
        prepare_environment(_settings())

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        settings = _settings()
        screened = screen(entry_point, settings)
        if screened is not None:
            if screened.state in (ABSENT, CONFLICT):
                _log.info("otelprod: not instrumenting %s: %s", screened.name, screened.reason)
            return
        activate_entry_point(entry_point, settings, **kwargs)


class OtelprodConfigurator:
    """The ``opentelemetry_configurator`` entry point ``otelprod``: starts otelprod."""

    def configure(self, **kwargs: Any) -> None:
        # Under another distro's loader too, never load the instrumentations otelprod
        # does itself: that loader reads this variable after the configurators ran.
        disabled = [n.strip() for n in os.environ.get(DISABLED_ENV, "").split(",") if n.strip()]
        os.environ[DISABLED_ENV] = ",".join(disabled + [n for n in OWN if n not in disabled])
        start_auto("auto-instrumentation (otelprod run / opentelemetry-instrument)")
        # the loader skips these itself (quietly): say why, as init() does
        for skipped in survey(_settings()):
            if skipped.state in (ABSENT, CONFLICT):
                _log.info("otelprod: not instrumenting %s: %s", skipped.name, skipped.reason)


__all__ = ["NAME", "OtelprodConfigurator", "OtelprodDistro"]
