"""otelprod's own warnings reach a person on stderr, once per condition, when the
application has no logging handler of its own that would show them.

Each case runs in a fresh interpreter: pytest puts capture handlers of its own on
the root logger, which would count as the application's.
"""

from __future__ import annotations

import textwrap

from tests.conftest import python_env, run_python

SETUP = """
import io, logging, sys
from otelprod._pipeline import stderr

class Clock:
    now = 1000.0
    def __call__(self):
        return self.now

clock = Clock()
bridge = logging.NullHandler()  # stands for the OTel log bridge: ours, shows nothing
logging.getLogger().addHandler(bridge)
handler = stderr.PersonHandler(ours=lambda h: h is bridge, clock=clock)
logging.getLogger("otelprod").addHandler(handler)
log = logging.getLogger("otelprod.test")
"""


def run(case: str) -> tuple[str, str]:
    result = run_python(SETUP + textwrap.dedent(case), env=python_env())
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_a_warning_is_said_once_then_once_a_minute_with_the_repeats() -> None:
    _, err = run("""
    for _ in range(5):
        log.warning("the collector does not take %s", "traces")
    clock.now += stderr.REPEAT_AFTER_S
    log.warning("the collector does not take %s", "traces")
    log.warning("another condition")
    log.info("not a warning")
    """)
    assert err.splitlines() == [
        "the collector does not take traces",
        "the collector does not take traces (said 4 more times in the last minute)",
        "another condition",
    ]


def test_an_application_handler_that_shows_it_keeps_stderr_quiet() -> None:
    out, err = run("""
    logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))
    log.warning("spool write failed")
    """)
    assert err == ""
    assert out == "spool write failed\n"


def test_an_application_handler_above_the_level_does_not_count() -> None:
    out, err = run("""
    app = logging.StreamHandler(sys.stdout)
    app.setLevel(logging.ERROR)
    logging.getLogger().addHandler(app)
    log.warning("health server failed to bind")
    """)
    assert (out, err) == ("", "health server failed to bind\n")


def test_init_installs_it_and_a_collector_that_is_down_is_said_once() -> None:
    result = run_python("""
    import otelprod
    from opentelemetry import trace
    otelprod.init("stderr-test", export_timeout=0.5, system_metrics=False)
    tracer = trace.get_tracer("t")
    for batch in range(3):
        for _ in range(600):
            tracer.start_span("s").end()
        trace.get_tracer_provider().force_flush()
    otelprod.shutdown(timeout=3)
    """, env=python_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
                        OTEL_EXPORTER_OTLP_PROTOCOL="grpc"), timeout=120)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines()
            if "the collector does not take traces" in line]
    assert len(said) == 1, result.stderr
