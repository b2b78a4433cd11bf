"""The ``otelprod.testing`` pytest plugin, used the way a user's project uses it.

pytest runs in a subprocess, in a directory of its own (so this repository's
conftest is not in play), and finds the plugin through its ``pytest11`` entry
point: once on the README's example test and a file of plain checks with no
``otelprod.init()`` before the tests (one test calls it), once on a test file
whose module calls ``init()`` at import, as an application module would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, python_env
from tests.otlp_receiver import OTLPReceiver
from tests.test_readme import PYTHON

README_EXAMPLE = next(code for _, code, _ in PYTHON if code.startswith("# test_checkout.py"))

CHECKS = '''
import logging
import pytest
import otelprod
from opentelemetry import metrics, trace
from otelprod.testing import TICK_NS

tracer = trace.get_tracer("checks")
meter = metrics.get_meter("checks")
jobs = meter.create_counter("jobs")
latency = meter.create_histogram("job.duration", unit="s")


def test_a_spans_are_captured(otelprod_telemetry):
    with tracer.start_as_current_span("first"):
        pass
    assert [s.name for s in otelprod_telemetry.spans()] == ["first"]


def test_b_each_test_starts_empty_and_metrics_add_up(otelprod_telemetry):
    assert otelprod_telemetry.spans() == []  # nothing of the test before
    jobs.add(2, {"kind": "a"})
    jobs.add(3, {"kind": "b"})
    latency.record(0.2)
    latency.record(0.4)
    assert otelprod_telemetry.metric_value("jobs") == 5
    assert otelprod_telemetry.metric_value("jobs", {"kind": "b"}) == 3
    [point] = otelprod_telemetry.metric_points("job.duration")
    assert (point.kind, point.count, round(point.sum, 6)) == ("histogram", 2, 0.6)
    jobs.add(1, {"kind": "a"})
    assert otelprod_telemetry.metric_value("jobs", {"kind": "a"}) == 3  # over the whole test


def test_c_counters_start_from_zero_in_each_test(otelprod_telemetry):
    jobs.add(1, {"kind": "a"})
    assert otelprod_telemetry.metric_value("jobs", {"kind": "a"}) == 1


@pytest.mark.parametrize("run", [1, 2])
def test_d_deterministic_ids_and_time(otelprod_telemetry, run):
    otelprod_telemetry.deterministic = True
    with tracer.start_as_current_span("parent"):
        with tracer.start_as_current_span("child"):
            pass
    got = [(s.name, s.context.trace_id, s.context.span_id,
            s.parent.span_id if s.parent else None, s.start_time, s.end_time)
           for s in otelprod_telemetry.spans()]
    assert got == [("child", 1, 2, 1, 2 * TICK_NS, 3 * TICK_NS),
                   ("parent", 1, 1, None, 1 * TICK_NS, 4 * TICK_NS)]


def test_e_logs_carry_the_span_and_are_scrubbed(otelprod_telemetry):
    otelprod_telemetry.deterministic = True
    with tracer.start_as_current_span("logging"):
        logging.getLogger("checks").warning("stored", extra={"password": "hunter2"})
    logging.getLogger("checks").error("outside")
    [stored] = otelprod_telemetry.logs("stored")
    assert (stored.trace_id, stored.span_id, stored.severity_text) == (1, 1, "WARN")
    assert stored.attributes["password"] == "[REDACTED]"
    assert [r.body for r in otelprod_telemetry.logs(level="error")] == ["outside"]
    assert otelprod_telemetry.logs("outside")[0].trace_id == 0


def test_f_init_inside_a_test_is_captured_once(otelprod_telemetry):
    otelprod.init("plugin-check", system_metrics=False)
    try:
        with tracer.start_as_current_span("under-init"):
            logging.getLogger("app").warning("through init's bridge")
        from otelprod.error_handling import error_handler
        error_handler.handle_error(ValueError("x"), "checks", "high")
    finally:
        assert otelprod.shutdown(timeout=5)
    assert otelprod_telemetry.span("under-init")
    assert len(otelprod_telemetry.logs("through init's bridge")) == 1  # not twice
    assert otelprod_telemetry.metric_value("errors.handled", {"error.severity": "high"}) == 1


def test_g_span_names_what_there_is(otelprod_telemetry):
    with tracer.start_as_current_span("only-this"):
        pass
    with pytest.raises(AssertionError, match=r"spans captured: \\['only-this'\\]"):
        otelprod_telemetry.span("missing")
'''

INIT_AT_IMPORT = '''
import logging
import otelprod
from opentelemetry import metrics, trace

otelprod.init("imported-app", system_metrics=False)  # as an application module might
tracer = trace.get_tracer("app")


def test_capture_beside_inits_exporters(otelprod_telemetry):
    with tracer.start_as_current_span("after-init"):
        logging.getLogger("app").warning("logged after init")
    metrics.get_meter("app").create_counter("orders").add(4)
    span = otelprod_telemetry.span("after-init")
    assert span.resource.attributes["service.name"] == "imported-app"
    assert len(otelprod_telemetry.logs("logged after init")) == 1
    assert otelprod_telemetry.metric_value("orders") == 4


def test_the_next_test_starts_empty(otelprod_telemetry):
    assert otelprod_telemetry.spans() == [] and otelprod_telemetry.logs() == []
'''


def _pytest(tmp_path: Path, files: dict[str, str],
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    environment = env or python_env()
    environment.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)  # the entry point must load
    environment["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
         "ignore::DeprecationWarning", *files],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=180)


def _passed(result: subprocess.CompletedProcess[str]) -> int:
    match = re.search(r"(\d+) passed", result.stdout)
    return int(match[1]) if match else 0


def test_the_readme_example_and_the_helpers_without_init(tmp_path: Path) -> None:
    result = _pytest(tmp_path, {"test_checkout.py": README_EXAMPLE, "test_checks.py": CHECKS})
    assert result.returncode == 0, result.stdout + result.stderr
    assert _passed(result) == 10, result.stdout  # 2 in the README's, 8 in the checks
    assert "failed" not in result.stdout


def test_the_fixture_when_init_ran_at_import(tmp_path: Path) -> None:
    with OTLPReceiver() as receiver:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol)
        result = _pytest(tmp_path, {"test_app.py": INIT_AT_IMPORT}, env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert _passed(result) == 2, result.stdout
        # init()'s own export still worked beside the capture (flushed at exit)
        assert [s["name"] for s in receiver.spans()] == ["after-init"]
