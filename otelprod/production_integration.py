"""The production system: every feature wired together behind one object.

``initialize_production()`` (the seed's entry point) and ``otelprod.init()``
are one code path: the former calls the latter.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from otelprod._settings import Settings

_log = logging.getLogger("otelprod")


class ProductionSystem:
    """Holds the features init() started; ``get_system_status()`` reports on them all."""

    def __init__(self, settings: Settings, config_overrides: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.config_overrides = dict(config_overrides or {})
        self.started_at = time.time()
        self._started = False

    @property
    def service_name(self) -> str:
        from opentelemetry.sdk.resources import Resource

        from otelprod import _bootstrap

        pipeline = _bootstrap._pipeline
        resource: Resource | None = pipeline.resource if pipeline else None
        if resource is not None:
            return str(resource.attributes.get("service.name", "unknown_service"))
        return self.settings.service_name or "unknown_service"

    def start(self) -> None:
        if self._started:
            return
        self._started = True

    def stop(self) -> None:
        self._started = False

    def get_system_status(self) -> dict[str, Any]:
        """JSON-serialisable status of every feature, secrets scrubbed."""
        from otelprod._bootstrap import export_status

        status: dict[str, Any] = {
            "service": self.service_name,
            "environment": self.settings.environment,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "telemetry": export_status(),
        }
        return status


def initialize_production(app_name: str, environment: Any = None,
                          config_overrides: dict[str, Any] | None = None,
                          **overrides: Any) -> ProductionSystem:
    """The seed's entry point: ``otelprod.init()`` under another name."""
    from otelprod._bootstrap import init

    return init(app_name, environment=environment, config_overrides=config_overrides,
                **overrides)


def get_production_system() -> ProductionSystem | None:
    """The running system, or None before init()."""
    from otelprod._bootstrap import get_system

    return get_system()


def shutdown_production(timeout: float | None = None) -> bool:
    from otelprod._bootstrap import shutdown

    return shutdown(timeout)
