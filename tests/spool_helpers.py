"""A small service for the end-to-end spool tests, and the means to drive it.

The service (run in its own interpreter) emits one *unit* per iteration: a
span ``unit`` and a log record ``unit``, both carrying the unit's number, and
one increment of the counter ``units``. The test steers it through files in a
control directory, so it can take the collector down and up underneath it:

* ``phase`` holds a label ("down", "up", ...) the service files its per-unit
  cost under, so a test can print the cost during an outage against the cost
  with the collector up;
* ``stop`` ends the loop; the service then calls ``otelprod.shutdown()`` and
  prints one JSON line: units emitted, cost per phase, export status.

Every ``checkpoint_every`` units it flushes the span and log providers and
prints ``checkpoint N``: from then on units < N are with the collector or on
disk, whatever happens to the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import python_env
from tests.otlp_receiver import OTLPReceiver

SERVICE = r'''
import json, logging, os, sys, time
from pathlib import Path
import otelprod
from opentelemetry import _logs, metrics, trace

control = Path(sys.argv[1])
run = sys.argv[2]
checkpoint_every = int(sys.argv[3])
otelprod.init("spool-e2e")
tracer = trace.get_tracer("spool-e2e")
units = metrics.get_meter("spool-e2e").create_counter("units")
log = logging.getLogger("spool-e2e")
cost = {}
i = 0
phase = "start"
print("ready", flush=True)
while not (control / "stop").exists():
    if i % 20 == 0:
        phase = (control / "phase").read_text().strip() if (control / "phase").exists() else "start"
    started = time.perf_counter()
    with tracer.start_as_current_span("unit", attributes={"unit.seq": i, "unit.run": run}):
        log.warning("unit", extra={"unit_seq": i, "unit_run": run})
        units.add(1, {"unit.run": run})
    spent = time.perf_counter() - started
    total, n = cost.get(phase, (0.0, 0))
    cost[phase] = (total + spent, n + 1)
    i += 1
    if checkpoint_every and i % checkpoint_every == 0:
        trace.get_tracer_provider().force_flush()
        _logs.get_logger_provider().force_flush()
        print(f"checkpoint {i}", flush=True)
    time.sleep(0.005)
from otelprod._init import export_status
status = export_status().to_dict()
ok = otelprod.shutdown(timeout=30)
print(json.dumps({"units": i, "shutdown_ok": ok, "status": status,
                  "cost_us": {k: t / n * 1e6 for k, (t, n) in cost.items() if n}}), flush=True)
'''


def service_env(receiver: OTLPReceiver, spool_dir: Path, **extra: str) -> dict[str, str]:
    return python_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTELPROD_SPOOL_DIR=str(spool_dir),
        OTELPROD_SPOOL_RETRY_INITIAL="0.1",
        OTELPROD_SPOOL_RETRY_MAX="0.5",
        OTELPROD_EXPORT_TIMEOUT="2",
        OTELPROD_SHUTDOWN_TIMEOUT="30",
        OTELPROD_SYSTEM_METRICS="false",
        **extra,
    )


class Service:
    """One running service process, steered through its control directory."""

    def __init__(self, control: Path, env: dict[str, str], run: str = "a",
                 checkpoint_every: int = 0) -> None:
        control.mkdir(parents=True, exist_ok=True)
        self.control = control
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVICE, str(control), run, str(checkpoint_every)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"the service did not start: {line}{self.proc.stderr.read()}")

    def phase(self, name: str) -> None:
        tmp = self.control / "phase.tmp"
        tmp.write_text(name)
        os.replace(tmp, self.control / "phase")

    def lines(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def stop(self, timeout: float = 90) -> dict[str, Any]:
        import json

        (self.control / "stop").touch()
        out, err = self.proc.communicate(timeout=timeout)
        last = [line for line in out.splitlines() if line.startswith("{")]
        if self.proc.returncode != 0 or not last:
            raise AssertionError(f"service failed ({self.proc.returncode}): {err[-4000:]}")
        result: dict[str, Any] = json.loads(last[-1])
        result["stderr"] = err
        return result

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def unit_counts(receiver: OTLPReceiver, run: str) -> tuple[Counter[int], Counter[int]]:
    """How often each unit's span and log record arrived."""
    spans = Counter(s["attributes"]["unit.seq"] for s in receiver.spans()
                    if s["name"] == "unit" and s["attributes"].get("unit.run") == run)
    logs = Counter(r["attributes"]["unit_seq"] for r in receiver.logs()
                   if r["body"] == "unit" and r["attributes"].get("unit_run") == run)
    return spans, logs


def wait(seconds: float) -> None:
    time.sleep(seconds)
