"""The seed's metrics facade, on OTel instruments.

``record`` is a histogram, ``increment`` a counter and ``set_gauge`` a
synchronous gauge. Each instrument is created once, on first use, and cached:
the hot path is one dict lookup in front of the OTel call. Names are checked
against the OTel instrument-name rules when first used, so a bad name is a
clear error at the call site rather than a warning lost in the SDK's log.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import Meter

from otelprod import _telemetry

#: The OTel API's instrument name syntax.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_./\-]{0,254}")

_KIND_HISTOGRAM = "histogram"
_KIND_COUNTER = "counter"
_KIND_GAUGE = "gauge"


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"metric name: expected a str, got {type(name).__name__} {name!r}")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"metric name {name!r} is not a valid OpenTelemetry instrument name: it must start "
            "with an ASCII letter, continue with letters, digits, '_', '.', '-' or '/', and be "
            "at most 255 characters long")
    return name


def _check_attributes(name: str, attributes: Any) -> None:
    if attributes is not None and type(attributes) is not dict \
            and not isinstance(attributes, Mapping):
        raise TypeError(f"metric {name!r}: attributes must be a mapping or None, "
                        f"got {type(attributes).__name__} {attributes!r}")


def _check_value(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric {name!r}: value must be an int or float, "
                        f"got {type(value).__name__} {value!r}")


class MetricsCollector:
    """``record`` / ``increment`` / ``set_gauge`` on cached OTel instruments."""

    def __init__(self, meter: Meter | None = None) -> None:
        if meter is not None and not callable(getattr(meter, "create_counter", None)):
            raise TypeError(f"meter: expected an OpenTelemetry Meter or None, got "
                            f"{type(meter).__name__} {meter!r}")
        self._meter = meter or _telemetry.meter
        self._lock = threading.Lock()
        self._kinds: dict[str, str] = {}
        self._histograms: dict[str, Any] = {}
        self._counters: dict[str, Any] = {}
        self._gauges: dict[str, Any] = {}

    def _create(self, name: str, kind: str, unit: str, description: str) -> Any:
        _check_name(name)
        for key, value in (("unit", unit), ("description", description)):
            if not isinstance(value, str):
                raise TypeError(f"metric {name!r}: {key} must be a str, got "
                                f"{type(value).__name__} {value!r}")
        with self._lock:
            existing = self._kinds.get(name)
            if existing is not None and existing != kind:
                raise ValueError(
                    f"metric {name!r} is already a {existing}; it cannot also be used as a "
                    f"{kind} (use another name)")
            cache = {_KIND_HISTOGRAM: self._histograms, _KIND_COUNTER: self._counters,
                     _KIND_GAUGE: self._gauges}[kind]
            instrument = cache.get(name)
            if instrument is None:
                factory: Any = {_KIND_HISTOGRAM: self._meter.create_histogram,
                           _KIND_COUNTER: self._meter.create_counter,
                           _KIND_GAUGE: self._meter.create_gauge}[kind]
                instrument = factory(name, unit=unit, description=description)
                cache[name] = instrument
                self._kinds[name] = kind
            return instrument

    def record(self, name: str, value: float, attributes: Mapping[str, Any] | None = None, *,
               unit: str = "", description: str = "") -> None:
        """Record ``value`` in the histogram ``name`` (unit and description apply on first use)."""
        instrument = self._histograms.get(name)
        if instrument is None:
            instrument = self._create(name, _KIND_HISTOGRAM, unit, description)
        if type(value) is not float and type(value) is not int:
            _check_value(name, value)
        if attributes is not None and type(attributes) is not dict:
            _check_attributes(name, attributes)
        try:
            instrument.record(value, attributes)
        except Exception:  # telemetry trouble is never the caller's exception
            pass

    def increment(self, name: str, value: float = 1, attributes: Mapping[str, Any] | None = None,
                  *, unit: str = "", description: str = "") -> None:
        """Add ``value`` (>= 0) to the counter ``name``."""
        instrument = self._counters.get(name)
        if instrument is None:
            instrument = self._create(name, _KIND_COUNTER, unit, description)
        if type(value) is not int and type(value) is not float:
            _check_value(name, value)
        if value < 0:
            raise ValueError(f"metric {name!r}: a counter only goes up; increment by a value "
                             f">= 0, got {value!r}")
        if attributes is not None and type(attributes) is not dict:
            _check_attributes(name, attributes)
        try:
            instrument.add(value, attributes)
        except Exception:
            pass

    def set_gauge(self, name: str, value: float, attributes: Mapping[str, Any] | None = None, *,
                  unit: str = "", description: str = "") -> None:
        """Set the synchronous gauge ``name`` to ``value``."""
        instrument = self._gauges.get(name)
        if instrument is None:
            instrument = self._create(name, _KIND_GAUGE, unit, description)
        if type(value) is not float and type(value) is not int:
            _check_value(name, value)
        if attributes is not None and type(attributes) is not dict:
            _check_attributes(name, attributes)
        try:
            instrument.set(value, attributes)
        except Exception:
            pass

    def instruments(self) -> dict[str, str]:
        """Name -> kind of every instrument the facade created, for the status report."""
        with self._lock:
            return dict(self._kinds)
