"""Test your own telemetry: a pytest plugin, and a testing switch for retries and breakers.

Installed with otelprod, the plugin gives every test the ``otelprod_telemetry``
fixture: the spans, metric points and log records the code under test emitted,
captured in memory, with helpers to find them::

    def test_checkout_retries(otelprod_telemetry):
        with set_testing(True):             # retries without waiting
            checkout(order_id=7)
        span = otelprod_telemetry.span("checkout")
        assert [e.name for e in otelprod_telemetry.events(span=span)] == ["retry"]
        assert otelprod_telemetry.metric_value("retry.attempts", {"retry.result": "retry"}) == 1

It works whether or not ``otelprod.init()`` ran, before the tests or in one:
see :mod:`otelprod.testing._capture`. Outside pytest, :class:`Telemetry` is the
same view (``Telemetry()`` installs the capture on first use).
"""

from __future__ import annotations

from otelprod.testing._capture import Telemetry, capture_session
from otelprod.testing._model import TICK_NS, CapturedLog, MetricPoint
from otelprod.testing._switch import is_testing, set_testing

__all__ = ["TICK_NS", "CapturedLog", "MetricPoint", "Telemetry", "capture_session",
           "is_testing", "set_testing"]
