"""otelprod: one call turns a Python service into a well-observed, resilient one.

    import otelprod
    otelprod.init(service_name="checkout")

Everything otelprod knows is emitted as OpenTelemetry over OTLP. The public
API is re-exported here and imported lazily, so ``import otelprod`` stays
cheap and pulls in the SDK and exporters only when ``init()`` runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otelprod._init import init as init
    from otelprod._init import shutdown as shutdown
    from otelprod.production_integration import ProductionSystem as ProductionSystem

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "init": "otelprod._init",
    "shutdown": "otelprod._init",
    "ProductionSystem": "otelprod.production_integration",
    "get_production_system": "otelprod.production_integration",
    # the features' most used entry points; each module has the rest
    "with_retry": "otelprod.error_handling",
    "RetryConfig": "otelprod.error_handling",
    "with_circuit_breaker": "otelprod.error_handling",
    "CircuitBreakerConfig": "otelprod.error_handling",
    "with_fallback": "otelprod.error_handling",
    "error_handler": "otelprod.error_handling",
    "rate_limited": "otelprod.rate_limiter",
    "rate_limit_manager": "otelprod.rate_limiter",
    "monitoring_system": "otelprod.monitoring",
    "validate_user_input": "otelprod.validation",
    "get_logger": "otelprod.structured_logging",
    "trace_request": "otelprod.structured_logging",
    "get_config": "otelprod.config_manager",
    "ConfigurationError": "otelprod.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otelprod' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
