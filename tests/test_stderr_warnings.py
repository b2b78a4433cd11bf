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


def test_a_health_server_that_cannot_bind_is_said_with_its_address() -> None:
    result = run_python("""
    import socket
    import otelprod
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    otelprod.init("stderr-test", health_port=port, health_host="127.0.0.1",
                  system_metrics=False)
    print(port)
    otelprod.shutdown(timeout=3)
    """, env=python_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"), timeout=120)
    assert result.returncode == 0, result.stderr
    port = result.stdout.strip()
    said = [line for line in result.stderr.splitlines()
            if "cannot serve the health endpoints" in line]
    assert len(said) == 1 and f"127.0.0.1:{port} (" in said[0], result.stderr
    assert "Address already in use" in said[0] and "Traceback" not in result.stderr


def test_a_loss_is_said_once_per_reason_with_the_count() -> None:
    result = run_python("""
    import logging
    from otelprod._pipeline.status import DropLedger
    logging.basicConfig(format="%(message)s")  # the application shows warnings itself
    ledger = DropLedger()
    for _ in range(5):
        ledger.record("traces", 10, "queue_full")
    ledger.record("logs", 3, "spool_full")
    print(ledger.by_reason(), ledger.by_reason("traces"))
    """, env=python_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("{'queue_full': 50, 'spool_full': 3} "
                                     "{'queue_full': 50}")
    lines = result.stderr.splitlines()
    assert lines == [
        "otelprod: 10 traces dropped (queue_full): the SDK's in-memory queue was full (the "
        "application produces faster than the export drains; OTEL_BSP_MAX_QUEUE_SIZE / "
        "OTEL_BLRP_MAX_QUEUE_SIZE raise the bound)",
        "otelprod: 3 logs dropped (spool_full): the disk spool is full (spool_max_bytes, or "
        "the file system or file-size limit)"], result.stderr


APP_LOGS = """
import logging, sys
import otelprod
from tests.otlp_receiver import OTLPReceiver
{before}
with OTLPReceiver() as receiver:
    import os
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = receiver.protocol
    otelprod.init("last-resort", system_metrics=False)
    log = logging.getLogger("shop")
    log.info("an info line")
    log.warning("a warning line")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("an error with its traceback")
    otelprod.shutdown(timeout=10)
    arrived = sorted(r["body"] for r in receiver.logs() if r["scope"] == "shop")
    print(arrived, file=sys.stdout)
"""


def _app(before: str = "") -> tuple[str, str]:
    result = run_python(APP_LOGS.format(before=before), env=python_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_an_application_with_no_logging_keeps_pythons_stderr_output() -> None:
    """Python writes WARNING and ERROR records to stderr when no handler takes them;
    the OTel bridge on the root logger must not silence that, nor lose the records."""
    out, err = _app()
    assert "['a warning line', 'an error with its traceback', 'an info line']" in out
    lines = err.splitlines()
    assert lines.count("a warning line") == 1 and lines.count("an error with its traceback") == 1
    assert "ZeroDivisionError: division by zero" in err and "an info line" not in err


def test_the_last_resort_stays_as_the_application_left_it() -> None:
    # its own handler: each line once, from that handler only
    _, err = _app("logging.basicConfig(format='app: %(message)s')")
    assert err.count("a warning line") == 1 and "app: a warning line" in err
    # the last resort turned off: nothing
    _, err = _app("logging.lastResort = None")
    assert "a warning line" not in err and "an error with its traceback" not in err
