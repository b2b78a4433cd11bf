"""otelprod's own export requests are never traced, even with the HTTP clients instrumented.

With ``requests``/``urllib3`` instrumented (``init()`` activates what is installed),
each OTLP/HTTP export request would otherwise make a client span, exported by
another request, and so on. Live sends, spool replays after an outage and the
exit flush must all run with instrumentation suppressed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from tests.conftest import free_port, python_env, run_python
from tests.otlp_receiver import HTTP, OTLPReceiver

APP = """
import time, otelprod
from opentelemetry import trace
otelprod.init("untraced", system_metrics=False, export_timeout=1, spool_retry_initial=0.2,
              spool_retry_max=0.5)
active = {i.name for i in otelprod._init.instrumentations() if i.state == "active"}
assert {"requests", "urllib3"} <= active, active
tracer = trace.get_tracer("app")
for i in range(40):
    with tracer.start_as_current_span(f"work-{i}"):
        pass
    time.sleep(0.05)
time.sleep(float(WAIT))
"""


def test_no_span_of_our_own_export_requests_arrives() -> None:
    port = free_port()
    receiver = OTLPReceiver(HTTP, port=port)  # down at first: the spans are spooled
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                     OTEL_BSP_SCHEDULE_DELAY="100", OTEL_METRIC_EXPORT_INTERVAL="500")
    child = subprocess.Popen([sys.executable, "-c", "WAIT = 2\n" + textwrap.dedent(APP)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        receiver.start()  # back: the spool is replayed, then live sends resume
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
        receiver.wait_for(lambda r: sum(s["name"].startswith("work-") for s in r.spans()) >= 40)
        names = [s["name"] for s in receiver.spans()]
    finally:
        if child.poll() is None:
            child.kill()
        receiver.stop()
    work = [n for n in names if n.startswith("work-")]
    assert sorted(work) == sorted(f"work-{i}" for i in range(40))  # all, once
    ours = [n for n in names if not n.startswith("work-")]
    assert ours == [], f"spans of otelprod's own export requests arrived: {ours[:10]}"


def test_the_instrumented_client_is_still_traced_for_the_application() -> None:
    """The suppression is ours only: the application's own requests keep their spans."""
    with OTLPReceiver(HTTP) as receiver, OTLPReceiver(HTTP) as target:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        result = run_python(f"""
        import otelprod, requests
        otelprod.init("untraced", system_metrics=False)
        requests.post("{target.endpoint}/v1/traces", data=b"", timeout=5)
        otelprod.shutdown(timeout=10)
        """, env=env)
        assert result.returncode == 0, result.stderr
        receiver.wait_for(lambda r: any(s["name"] == "POST" for s in r.spans()))
        assert [s["name"] for s in receiver.spans()] == ["POST"]
