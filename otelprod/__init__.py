"""otelprod: one call turns a Python service into a well-observed, resilient one.

    import otelprod
    otelprod.init(service_name="checkout")

Everything otelprod knows is emitted as OpenTelemetry over OTLP. The names
below are the public API: ``init``/``shutdown`` and the features' most used
entry points (each feature module has the rest). They are imported on first
use, so ``import otelprod`` stays cheap and loads the SDK and the exporters
only when ``init()`` runs; type checkers and IDEs see them through the
imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from otelprod import _telemetry

if TYPE_CHECKING:
    from otelprod._init import init, instrument_app, shutdown
    from otelprod.config_manager import get_config
    from otelprod.error_handling import (
        CircuitBreakerConfig,
        RetryConfig,
        error_handler,
        with_circuit_breaker,
        with_fallback,
        with_retry,
    )
    from otelprod.errors import ConfigurationError
    from otelprod.monitoring import monitoring_system
    from otelprod.production_integration import ProductionSystem, get_production_system
    from otelprod.rate_limiter import rate_limit_manager, rate_limited
    from otelprod.structured_logging import get_logger, trace_request
    from otelprod.validation import validate_user_input

__all__ = [
    "CircuitBreakerConfig",
    "ConfigurationError",
    "ProductionSystem",
    "RetryConfig",
    "error_handler",
    "get_config",
    "get_logger",
    "get_production_system",
    "init",
    "instrument_app",
    "monitoring_system",
    "rate_limit_manager",
    "rate_limited",
    "shutdown",
    "trace_request",
    "validate_user_input",
    "with_circuit_breaker",
    "with_fallback",
    "with_retry",
]

#: public name -> the module it is imported from on first use
_EXPORTS: dict[str, str] = {
    "init": "otelprod._init",
    "shutdown": "otelprod._init",
    "instrument_app": "otelprod._init",
    "ProductionSystem": "otelprod.production_integration",
    "get_production_system": "otelprod.production_integration",
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


def _start_pipeline(service_name: str) -> object:
    from otelprod._init import init as start

    return start(service_name=service_name)


# initialize_observability() without init() starts the pipeline through this
_telemetry.set_pipeline_starter(_start_pipeline)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otelprod' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
