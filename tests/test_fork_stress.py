"""200 forks while other threads make spans, metric points and log records: no child hangs.

A pre-fork server forks a process whose other threads are in the middle of
telemetry calls, so any lock they hold at that moment is held forever in the
child. Each child here makes a span, a metric point and a log record, flushes
them to the collector and exits; one that has not exited within the bound is
killed and reported as hung.
"""

from __future__ import annotations

import json

from tests.conftest import python_env, run_python
from tests.otlp_receiver import HTTP, OTLPReceiver

FORKS = 200
BOUND_S = 20.0  # per batch of children: generous for a loaded CI machine, far from forever
AT_ONCE = 8  # children alive at a time

STRESS = """
import faulthandler, json, logging, os, signal, threading, time
import otelprod
from opentelemetry import metrics, trace

faulthandler.enable()  # inherited: a hung child killed with SIGABRT shows where it hung
otelprod.init("fork-stress", system_metrics=False, log_level="INFO")
tracer = trace.get_tracer("stress")
meter = metrics.get_meter("stress")
counter = meter.create_counter("stress.points")
histogram = meter.create_histogram("stress.size")
log = logging.getLogger("stress")
stop = threading.Event()


def busy(worker):
    n = 0
    while not stop.is_set():
        with tracer.start_as_current_span("busy", attributes={"worker": worker}):
            counter.add(1, {"worker": worker})
            histogram.record(n % 17, {"worker": worker})
            log.info("busy %d", n, extra={"worker": worker})
        n += 1
        if n % 50 == 0:
            time.sleep(0.001)  # let the forking thread run now and then


threads = [threading.Thread(target=busy, args=(w,), daemon=True) for w in range(4)]
for t in threads:
    t.start()
time.sleep(0.2)

def child(k):
    try:
        with tracer.start_as_current_span("child", attributes={"fork": k}):
            counter.add(1, {"worker": "child"})
            log.info("child %d", k)
        ok = otelprod.shutdown(timeout=BOUND / 2)
    except BaseException:
        os._exit(2)
    os._exit(0 if ok else 1)


hung, failed, started = [], [], time.monotonic()
for first in range(0, FORKS, AT_ONCE):
    # Fork a few children one after the other from the busy process, then wait for
    # them together: every fork still lands while the four threads are mid-call.
    children = {}
    for k in range(first, min(first + AT_ONCE, FORKS)):
        pid = os.fork()
        if pid == 0:
            child(k)
        children[pid] = k
    deadline = time.monotonic() + BOUND
    while children:
        for pid, k in list(children.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del children[pid]
                if status != 0:
                    failed.append((k, status))
        if children and time.monotonic() > deadline:
            for pid, k in children.items():
                os.kill(pid, signal.SIGABRT)
            time.sleep(2)
            for pid, k in children.items():
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                hung.append(k)
            break
        time.sleep(0.002)
stop.set()
for t in threads:
    t.join(5)
otelprod.shutdown(timeout=10)
print(json.dumps({"hung": hung, "failed": failed, "seconds": time.monotonic() - started}))
"""


def test_no_child_of_a_busy_process_hangs(tmp_path: object) -> None:
    with OTLPReceiver(HTTP) as receiver:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                         OTEL_BSP_SCHEDULE_DELAY="100", OTEL_BLRP_SCHEDULE_DELAY="100",
                         OTEL_METRIC_EXPORT_INTERVAL="500")
        code = f"FORKS = {FORKS}\nBOUND = {BOUND_S}\nAT_ONCE = {AT_ONCE}\n" + STRESS
        result = run_python(code, env=env, timeout=FORKS * BOUND_S + 120)
        assert result.returncode == 0, result.stderr[-3000:]
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome["hung"] == [], (
            f"{len(outcome['hung'])} of {FORKS} children hung:\n{result.stderr[-6000:]}")
        assert outcome["failed"] == [], outcome["failed"]
        children = {s["attributes"]["fork"] for s in receiver.spans() if s["name"] == "child"}
        assert children == set(range(FORKS))  # every child exported its own span
