"""Small, shared measuring tools for the benchmarks.

Figures are only ever compared as ratios against an anchor measured in the
same run, interleaved, so a noisy shared machine shifts both sides alike.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


@dataclass
class Result:
    """One row of the report: otelprod's figure against its anchor's."""

    name: str
    unit: str  # e.g. "µs/call", "s wall", "inputs/s", "% detected"
    ours: float
    anchor_name: str
    anchor: float
    target: str = ""  # e.g. "<= 1.15x"; empty when the row is informational
    lower_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.anchor if self.anchor else float("inf")

    def row(self) -> str:
        return (f"{self.name:<52} {self.ours:>12.3f} {self.unit:<10} "
                f"{self.anchor_name:<28} {self.anchor:>12.3f} {self.ratio:>7.2f}x "
                f"{self.target:<10} {self.note}")


def per_call_us(fn: Callable[[], object], number: int) -> float:
    """Mean cost of one call in microseconds over ``number`` calls."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def compare(ours: Callable[[], object], anchor: Callable[[], object], *, number: int,
            rounds: int = 7) -> tuple[float, float]:
    """Median per-call µs of ``ours`` and ``anchor``, interleaved round by round."""
    ours(), anchor()  # warm up caches and lazy imports
    a, b = [], []
    for _ in range(rounds):
        a.append(per_call_us(ours, number))
        b.append(per_call_us(anchor, number))
    return statistics.median(a), statistics.median(b)


def print_table(results: list[Result]) -> None:
    print(f"{'benchmark':<52} {'otelprod':>12} {'unit':<10} {'anchor':<28} {'anchor':>12} "
          f"{'ratio':>8} {'target':<10} note")
    for r in results:
        print(r.row())


class _NoopProcessor(SpanProcessor):
    """Spans are built and ended, then dropped: the SDK's own cost, no exporter's."""


def sdk_tracer() -> trace.Tracer:
    """A tracer from a real SDK TracerProvider (installed unless one already is)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(_NoopProcessor())
        trace.set_tracer_provider(provider)
    return provider.get_tracer("bench")
