"""What instrumenting through ``otelprod.init()`` costs the calling code.

1. A span under otelprod's providers against a span under a bare SDK
   ``TracerProvider`` + ``BatchSpanProcessor`` + OTLP exporter, both
   exporting to the same loopback receiver (per call, on the caller's thread,
   the export threads running alongside as in production).
2. A ``logging`` call through otelprod's log bridge (exported over OTLP)
   against a plain stdlib ``logging`` call formatted to a stream (/dev/null),
   in the same process, interleaved: the caller's CPU time (the logging
   thread's, ``time.thread_time``: the bridge leaves the translation,
   scrubbing and encoding to the export thread), and the whole cost (the
   process's CPU time for the calls plus a flush of the logger provider, so
   the export thread's work is counted).
3. An instrumented call (a span with a log record in it) while the collector
   is down, i.e. everything goes to the disk spool, against the same call with
   the collector up. Target <= 1.2x: an outage must not slow the application.
4. The same while the collector hangs (accepts connections and requests,
   answers none): after one unanswered export (``export_hang_timeout``)
   everything goes to the spool. Target <= 1.2x, and nothing dropped.

Sides that need different global providers run in separate interpreters,
alternating round by round; the median of the paired ratios is reported.

    python -m benchmarks.bench_init
"""

from __future__ import annotations

import statistics
import sys
import tempfile

from benchmarks._harness import Result, print_table
from benchmarks.bench_pipeline import child_env, receiver, run_child

SETUP = """
import json, logging, os, sys, time
from opentelemetry import trace
side, n = sys.argv[1], int(sys.argv[2])
attrs = {"http.request.method": "GET", "http.route": "/items/{id}", "user.id": "u-123"}
if side == "sdk":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    stop = provider.shutdown
else:
    import otelprod
    otelprod.init("bench-init")
    stop = lambda: otelprod.shutdown(timeout=30)
tracer = trace.get_tracer("bench")
# An application with no handler of its own has its WARNING records written to stderr by
# Python's last resort, with or without otelprod (which keeps that output): not ours to time.
logging.lastResort = None
"""

SPAN = SETUP + """
def call():
    with tracer.start_as_current_span("op", attributes=attrs):
        pass
for _ in range(500):
    call()
trace.get_tracer_provider().force_flush()
start = time.perf_counter()
for _ in range(n):
    call()
elapsed = time.perf_counter() - start
stop()
print(json.dumps({"us": elapsed / n * 1e6}))
"""

LOG = SETUP + """
import gc, statistics
from opentelemetry import _logs
from otelprod import _init
exported = logging.getLogger("bench.exported")
plain = logging.getLogger("bench.plain")
plain.propagate = False
handler = logging.StreamHandler(open(os.devnull, "w"))
handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
plain.addHandler(handler)
bridge = _init._pipeline.log_handler  # reached through the pipeline object
assert bridge is not None and bridge in logging.getLogger().handlers, "no log bridge"
provider = _logs.get_logger_provider()

def measure(fn, number, flush=None):
    gc.collect()
    process, thread = time.process_time(), time.thread_time()
    for _ in range(number):
        fn()
    caller = time.thread_time() - thread
    if flush is not None:
        flush()
    return caller / number * 1e6, (time.process_time() - process) / number * 1e6

ours_call = lambda: exported.warning("order %s placed", 42)
anchor_call = lambda: plain.warning("order %s placed", 42)
ours_call(), anchor_call(), provider.force_flush()
ours, anchor = [], []
for _ in range(7):
    ours.append(measure(ours_call, n // 7, flush=provider.force_flush))
    anchor.append(measure(anchor_call, n // 7))
stop()
print(json.dumps({key: statistics.median(row[i] for row in rows)
                  for i, what in enumerate(("caller", "whole"))
                  for key, rows in ((f"ours_{what}", ours), (f"anchor_{what}", anchor))}))
"""

UNIT = SETUP + """
log = logging.getLogger("bench.unit")
def call(i):
    with tracer.start_as_current_span("op", attributes=attrs):
        log.warning("unit %s", i)
for i in range(300):
    call(i)
trace.get_tracer_provider().force_flush()
time.sleep(1.0)  # down or hung: the first failed export has happened, the spool is in use
start = time.perf_counter()
for i in range(n):
    call(i)
elapsed = time.perf_counter() - start
from otelprod._init import export_status
print(json.dumps({"us": elapsed / n * 1e6, "dropped": export_status().dropped}))
os._exit(0)  # not measuring shutdown; the spool dir is thrown away
"""


def _paired(code: str, sides: tuple[tuple[str, dict[str, str]], ...], n: int,
            rounds: int, dropped: list[int] | None = None) -> tuple[float, float, float]:
    """Median per-call µs of each side (two sides), and the median paired ratio;
    ``dropped`` collects what the first side's children counted as dropped."""
    costs: list[list[float]] = [[], []]
    for round_ in range(rounds):
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for index in order:
            side, env = sides[index]
            out = run_child(code, side, str(n), env=env)
            costs[index].append(out["us"])
            if index == 0 and dropped is not None:
                dropped.append(int(out.get("dropped", 0)))
    ratios = [a / b for a, b in zip(costs[0], costs[1], strict=True)]
    return statistics.median(costs[0]), statistics.median(costs[1]), statistics.median(ratios)


def run(quick: bool = False) -> list[Result]:
    from tests.otlp_receiver import free_port

    n = 3_000 if quick else 20_000
    rounds = 1 if quick else 5
    results = []
    with tempfile.TemporaryDirectory() as spool:
        rec = receiver()
        try:
            up = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=rec.endpoint,
                           OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTELPROD_SPOOL_DIR=spool,
                           OTEL_BSP_MAX_QUEUE_SIZE=str(n + 1_000),
                           OTEL_BLRP_MAX_QUEUE_SIZE=str(n + 1_000))
            down = {**up, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
            ours, anchor, ratio = _paired(SPAN, (("otelprod", up), ("sdk", up)), n, rounds)
            results.append(Result("init: one span (caller's cost, exporting)", "µs/call", ours,
                                  "bare SDK span, BSP + OTLP", anchor, target="<= 1.15x",
                                  note=f"median paired ratio {ratio:.2f}x"))
            rec.clear()
            received = len(rec.logs())
            log = run_child(LOG, "otelprod", str(n), env=up)
            received = len(rec.logs()) - received
            results.append(Result("init: logging call exported over OTLP, caller CPU",
                                  "µs/call", log["ours_caller"], "stdlib logging to a stream",
                                  log["anchor_caller"], target="<= 1.5x",
                                  note="CPU of the logging thread; scrubbed"))
            results.append(Result("init: the same, whole cost (CPU incl. export)", "µs/call",
                                  log["ours_whole"], "stdlib logging to a stream",
                                  log["anchor_whole"],
                                  note=f"process CPU incl. a flush per round; "
                                       f"{received:,} records received"))
            rec.clear()
            ours, anchor, ratio = _paired(UNIT, (("otelprod", down), ("otelprod", up)), n,
                                          rounds)
            results.append(Result("init: span+log with the collector down (spooling)",
                                  "µs/call", ours, "same, collector up", anchor,
                                  target="<= 1.2x", note=f"median paired ratio {ratio:.2f}x"))
            hung_rec = receiver()
            hung_rec.hang()  # accepts, never answers
            try:
                hung = {**up, "OTEL_EXPORTER_OTLP_ENDPOINT": hung_rec.endpoint}
                dropped: list[int] = []
                ours, anchor, ratio = _paired(UNIT, (("otelprod", hung), ("otelprod", up)), n,
                                              rounds, dropped)
            finally:
                hung_rec.stop()
            results.append(Result("init: span+log with the collector hung (spooling)",
                                  "µs/call", ours, "same, collector up", anchor,
                                  target="<= 1.2x", note=f"median paired ratio {ratio:.2f}x; "
                                  f"dropped {sum(dropped)}"))
        finally:
            rec.stop()
    return results


if __name__ == "__main__":
    print_table(run("--quick" in sys.argv))
