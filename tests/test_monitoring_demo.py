"""The monitoring demo scene runs and shows what it promises."""

from __future__ import annotations

from otelprod.demo import SCENES, run_demo
from otelprod.monitoring import monitoring_system


class Steps:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)


def test_the_monitoring_scene() -> None:
    assert "otelprod.demo.monitoring" in SCENES
    out = Steps()
    run_demo(out, ["otelprod.demo.monitoring"])
    text = "\n".join(out.lines)
    assert "demo_database=degraded, automatic alert" in text
    assert "timed out after 0.5s" in text
    assert "GET /health/ready -> 503, failing: ['demo_database']" in text
    assert "database back: GET /health/ready -> 200" in text
    assert "one alert, 2 occurrences" in text
    assert "active now: 0" in text
    assert not monitoring_system.health_checker.has_check("demo_database")
