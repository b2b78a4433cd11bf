"""The seed's entry points: ``initialize_production()`` is ``otelprod.init()`` under another name.

    from otelprod.production_integration import initialize_production, Environment

    system = initialize_production("checkout", Environment.PRODUCTION)
    status = system.get_system_status()

Both names are one code path: ``init()`` builds one :class:`ProductionSystem`
and starts it; this module only gives it the names the seed uses.
"""

from __future__ import annotations

from typing import Any

from otelprod._init import get_system, init, shutdown
from otelprod._production import ProductionSystem
from otelprod.config_manager import Environment


def initialize_production(app_name: str, environment: Any = None,
                          config_overrides: dict[str, Any] | None = None,
                          **overrides: Any) -> ProductionSystem:
    """The seed's entry point: ``otelprod.init()`` under another name."""
    return init(app_name, environment=environment, config_overrides=config_overrides,
                **overrides)


def get_production_system() -> ProductionSystem | None:
    """The running system, or None before init()."""
    return get_system()


def shutdown_production(timeout: float | None = None) -> bool:
    """Flush and stop everything (``otelprod.shutdown()``)."""
    return shutdown(timeout)


__all__ = ["Environment", "ProductionSystem", "get_production_system", "initialize_production",
           "shutdown_production"]
