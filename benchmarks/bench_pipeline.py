"""The whole export pipeline: throughput to a real receiver, and memory over a long run.

1. Spans per second through otelprod's full pipeline (``otelprod.init()``:
   scrubbing, the spool-backed OTLP exporter) to a loopback gRPC receiver,
   against the bare OTel SDK pipeline (``BatchSpanProcessor`` + the SDK's
   OTLP gRPC exporter) to the same receiver. Target >= 0.9x. The queue is
   sized to hold the run, and the receiver must get every span (0 dropped).
2. RSS after 1,000,000 resilient calls (``with_circuit_breaker`` around
   ``with_retry``, one call in 100 failing once, under ``otelprod.init()``
   exporting 1 % of traces) against RSS after the first 1,000: the
   difference must stay within a few MB.

Each side runs in its own interpreter (a process has one global tracer
provider), the sides alternate round by round, and the medians are compared.

    python -m benchmarks.bench_pipeline
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, print_table

REPO = Path(__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """A clean environment for a benchmark child: no OTEL_* from outside, quiet otelprod."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELPROD_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(OTELPROD_SYSTEM_METRICS="false", OTEL_METRIC_EXPORT_INTERVAL="60000",
               OTELPROD_LOG_LEVEL="WARNING")
    env.update(extra)
    return env


def run_child(code: str, *args: str, env: dict[str, str], timeout: float = 300) -> Any:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last, returned parsed."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            capture_output=True, text=True, timeout=timeout, cwd=REPO)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed ({result.returncode}): "
                           f"{result.stderr[-2000:]}")
    return json.loads(lines[-1])


def receiver() -> Any:
    from tests.otlp_receiver import GRPC, OTLPReceiver

    return OTLPReceiver(GRPC).start()


THROUGHPUT = """
import json, sys, time
side, n = sys.argv[1], int(sys.argv[2])
attrs = {"http.request.method": "GET", "http.route": "/items/{id}", "user.id": "u-123",
         "http.response.status_code": 200}
from opentelemetry import trace
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
    otelprod.init("bench-pipeline")
    provider = trace.get_tracer_provider()
    stop = lambda: otelprod.shutdown(timeout=60)
tracer = trace.get_tracer("bench")
for i in range(500):
    with tracer.start_as_current_span("warmup", attributes=attrs):
        pass
provider.force_flush()
start = time.perf_counter()
for i in range(n):
    with tracer.start_as_current_span("op", attributes=attrs):
        pass
provider.force_flush()
elapsed = time.perf_counter() - start
stop()
print(json.dumps({"elapsed": elapsed}))
"""


def throughput(quick: bool) -> list[Result]:
    """Three sides, alternating round by round: the bare SDK, otelprod's pipeline, and
    otelprod with the instrumentations of the environment loaded (init()'s default).

    Loading an instrumentation imports its library: in this environment Django, FastAPI,
    SQLAlchemy and a dozen more, which this script never uses. Their objects (2.7x the
    process's) are scanned by every full garbage collection, which the span loop
    triggers; an application that uses those libraries has them imported anyway. So the
    pipeline's own row runs with ``OTELPROD_INSTRUMENT=false``, and the default is a
    row of its own.
    """
    n = 3_000 if quick else 10_000
    rounds = 1 if quick else 7
    sides = {"sdk": ("sdk", {}), "otelprod": ("otelprod", {"OTELPROD_INSTRUMENT": "false"}),
             "instrumented": ("otelprod", {})}
    rates: dict[str, list[float]] = {side: [] for side in sides}
    dropped = dict.fromkeys(sides, 0)
    with tempfile.TemporaryDirectory() as spool:
        rec = receiver()
        try:
            env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=rec.endpoint,
                            OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTELPROD_SPOOL_DIR=spool,
                            OTEL_BSP_MAX_QUEUE_SIZE=str(n + 1_000))
            for round_ in range(rounds):
                # rotate who goes first, so a drift in the machine's load cancels out
                order = list(sides)[round_ % 3:] + list(sides)[:round_ % 3]
                for side in order:
                    code_side, extra = sides[side]
                    rec.clear()
                    out = run_child(THROUGHPUT, code_side, str(n), env={**env, **extra})
                    rates[side].append(n / out["elapsed"])
                    got = sum(1 for s in rec.spans() if s["name"] == "op")
                    dropped[side] += n - got
        finally:
            rec.stop()
    median = {side: statistics.median(values) for side, values in rates.items()}
    paired = [ours / sdk for ours, sdk in zip(rates["otelprod"], rates["sdk"], strict=True)]
    return [
        Result("pipeline: spans/s to a loopback OTLP receiver", "spans/s", median["otelprod"],
               "bare SDK BSP + OTLP exporter", median["sdk"], target=">= 0.9x",
               lower_is_better=False,
               note=f"median of {rounds} paired ratios {statistics.median(paired):.2f}x; "
                    f"dropped: otelprod {dropped['otelprod']}, SDK {dropped['sdk']} of "
                    f"{n * rounds} each; instrumentations off"),
        Result("pipeline: the same, instrumentations loaded", "spans/s", median["instrumented"],
               "bare SDK BSP + OTLP exporter", median["sdk"], lower_is_better=False,
               note=f"informational: the GC scans the libraries they import; dropped "
                    f"{dropped['instrumented']}"),
    ]


RSS = """
import gc, json, sys
import psutil
import otelprod
from otelprod.error_handling import CircuitBreaker, RetryConfig, with_circuit_breaker, with_retry
n = int(sys.argv[1])
otelprod.init("bench-rss")
calls = [0]


def work():
    calls[0] += 1
    if calls[0] % 100 == 0:  # one call in 100 fails once, then the retry succeeds
        calls[0] += 1
        raise ConnectionError("transient")
    return 1


guarded = with_circuit_breaker(CircuitBreaker("bench.rss"))(
    with_retry(RetryConfig(max_attempts=3, base_delay=0.0, jitter=False, name="bench.rss"))(work))
process = psutil.Process()
for _ in range(1_000):
    guarded()
gc.collect()
first = process.memory_info().rss
for _ in range(n - 1_000):
    guarded()
gc.collect()
last = process.memory_info().rss
otelprod.shutdown(timeout=30)
print(json.dumps({"first": first, "last": last}))
"""


def memory(quick: bool) -> list[Result]:
    n = 50_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as spool:
        rec = receiver()
        try:
            env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=rec.endpoint,
                            OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTELPROD_SPOOL_DIR=spool,
                            OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.01")
            out = run_child(RSS, str(n), env=env, timeout=600)
        finally:
            rec.stop()
    mib = 1024 * 1024
    growth = (out["last"] - out["first"]) / mib
    return [Result(
        f"RSS after {n:,} resilient calls (retry+breaker)", "MiB", out["last"] / mib,
        "RSS after 1,000 calls", out["first"] / mib, target="+<= 5 MiB",
        note=f"growth {growth:+.1f} MiB")]


def run(quick: bool = False) -> list[Result]:
    return throughput(quick) + memory(quick)


if __name__ == "__main__":
    print_table(run("--quick" in sys.argv))
