"""The demo workload behind ``otelprod demo``.

Each scene is a module of this package with a ``TITLE`` and a
``run(out: DemoOutput) -> None`` that exercises one feature area; the demo
runs them in the order of ``SCENES`` inside one root span per scene.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from otelprod._telemetry import tracer

#: scene modules, in the order they run
SCENES: list[str] = [
    "otelprod.demo.basics",
    "otelprod.demo.resilience",
    "otelprod.demo.monitoring",
    "otelprod.demo.logging_config",
    "otelprod.demo.rate_limiting",
    "otelprod.demo.validation",
    "otelprod.demo.spool",
]


class DemoOutput(Protocol):
    def step(self, message: str) -> None:
        """Report one step of progress to the person watching."""


def run_demo(out: DemoOutput, scenes: list[str] | None = None) -> None:
    for name in scenes or SCENES:
        scene = importlib.import_module(name)
        out.step(f"== {scene.TITLE}")
        with tracer.start_as_current_span(f"demo {scene.TITLE}"):
            scene.run(out)
