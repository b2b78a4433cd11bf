"""Fake time for the rate-limiter tests: minutes simulated in milliseconds."""

from __future__ import annotations

import itertools
import uuid
from typing import Any


class FakeClock:
    """A monotonic clock the test moves; ``sleep`` advances it (or only records)."""

    def __init__(self, start: float = 0.0, *, sleep_advances: bool = True) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.sleep_advances = sleep_advances

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.sleep_advances:
            self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class TickClock:
    """Each reading is one tick later: the limiter reads it under its lock, so
    threads see one global order of times and the outcome is deterministic.
    ``tick=0`` freezes time.
    """

    def __init__(self, tick: float, *, start: float = 0.0) -> None:
        self._count = itertools.count()
        self.tick = tick
        self.start = start

    def __call__(self) -> float:
        return self.start + next(self._count) * self.tick


def unique(prefix: str) -> str:
    """A limiter name no other test uses (counters are per name and cumulative)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def points(metrics: dict[str, list[tuple[dict[str, Any], Any]]], name: str,
           attrs: dict[str, Any]) -> list[Any]:
    """The points of metric ``name`` whose attributes include ``attrs``."""
    return [p for a, p in metrics.get(name, []) if all(a.get(k) == v for k, v in attrs.items())]
