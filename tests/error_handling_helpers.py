"""Shared bits of the resilience tests: a fake clock and metric look-ups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class FakeClock:
    """Seconds that only move when the test says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def value(metrics: dict[str, list[tuple[dict[str, Any], Any]]], name: str,
          attrs: dict[str, Any]) -> float:
    """Sum of the points of ``name`` whose attributes include ``attrs`` (0 when none)."""
    total = 0.0
    for point_attrs, point in metrics.get(name, []):
        if all(point_attrs.get(k) == v for k, v in attrs.items()):
            total += point.value
    return total


def attrs_of(metrics: dict[str, list[tuple[dict[str, Any], Any]]], name: str
             ) -> list[dict[str, Any]]:
    return [a for a, _ in metrics.get(name, [])]


@pytest.fixture(autouse=True)
def forget_new_breakers() -> Iterator[None]:
    """Unregister the breakers a test registered: other modules' tests read the registry."""
    from otelprod.error_handling import get_circuit_breakers, unregister_circuit_breaker

    before = set(get_circuit_breakers())
    yield
    for name in set(get_circuit_breakers()) - before:
        unregister_circuit_breaker(name)
