"""A service under ``otelprod.init()`` in its own process, driven line by line over stdin.

Each command is answered with one JSON line on stdout, so a test can take the
collector or the spool directory away between two steps and know exactly
what was sent before and after. Every span carries its number
(``unit.seq``) and the run's name (``unit.run``): the receiver's copy says
what was delivered, and how often.

Commands: ``emit N [pause_s] [pad_bytes]`` (N spans; answers the new total),
``flush``, ``idle S`` (the process's CPU seconds over S seconds of doing
nothing), ``status`` (the export status), ``shutdown [timeout]`` (answers the
status after the shutdown, then the process exits).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import python_env
from tests.otlp_receiver import OTLPReceiver

CHILD = r'''
import json, os, resource, sys, time
if os.environ.get("FAULT_FSIZE"):  # no room for a segment: every spool write fails (EFBIG)
    limit = int(os.environ["FAULT_FSIZE"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
import otelprod
from opentelemetry import trace
from otelprod import _init

run = sys.argv[1]
otelprod.init("fault-service")
pipeline = _init._pipeline  # its status stays readable after the shutdown
tracer = trace.get_tracer("fault-service")
sent = 0
costs = []


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reply(value):
    print(json.dumps(value), flush=True)


reply({"ready": True})
for line in sys.stdin:
    command, *args = line.split()
    if command == "emit":
        n = int(args[0])
        pause = float(args[1]) if len(args) > 1 else 0.0
        pad = "x" * int(args[2]) if len(args) > 2 else ""
        started = time.perf_counter()
        for _ in range(n):
            attributes = {"unit.seq": sent, "unit.run": run}
            if pad:
                attributes["pad"] = pad
            tracer.start_span("unit", attributes=attributes).end()
            sent += 1
            if pause:
                time.sleep(pause)
        costs.append((time.perf_counter() - started - n * pause) / n * 1e6)
        reply({"sent": sent, "us_per_span": costs[-1]})
    elif command == "flush":
        reply({"flushed": trace.get_tracer_provider().force_flush()})
    elif command == "idle":
        before = cpu()
        time.sleep(float(args[0]))
        reply({"cpu_s": cpu() - before})
    elif command == "status":
        reply(pipeline.export_status().to_dict())
    elif command == "shutdown":
        ok = otelprod.shutdown(timeout=float(args[0]) if args else None)
        reply({"sent": sent, "shutdown_ok": ok, "status": pipeline.export_status().to_dict()})
        break
'''


def fault_env(receiver: OTLPReceiver, spool: Path, **extra: str) -> dict[str, str]:
    """Short timings, so that each scenario takes seconds; no metrics or system noise."""
    settings = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": receiver.protocol,
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTELPROD_SPOOL_DIR": str(spool),
        "OTELPROD_BATCH_DELAY": "0.1",
        "OTELPROD_SPOOL_RETRY_INITIAL": "0.1",
        "OTELPROD_SPOOL_RETRY_MAX": "0.5",
        "OTELPROD_EXPORT_TIMEOUT": "2",
        "OTELPROD_EXPORT_HANG_TIMEOUT": "0.3",
        "OTELPROD_SHUTDOWN_TIMEOUT": "10",
        "OTELPROD_SYSTEM_METRICS": "false",
    }
    return python_env(**{**settings, **extra})


class FaultService:
    """The child process, and its answers."""

    def __init__(self, env: dict[str, str], run: str = "a") -> None:
        self.run = run
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, run], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.ask_raw(None)

    def ask_raw(self, command: str | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the service died ({self.proc.wait()}): {err[-4000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def emit(self, n: int, pause: float = 0.0, pad: int = 0) -> dict[str, Any]:
        return self.ask_raw(f"emit {n} {pause} {pad}")

    def idle_cpu(self, seconds: float) -> float:
        return float(self.ask_raw(f"idle {seconds}")["cpu_s"])

    def status(self) -> dict[str, Any]:
        return self.ask_raw("status")

    def shutdown(self, timeout: float = 10) -> Result:
        answer = self.ask_raw(f"shutdown {timeout}")
        _, err = self.proc.communicate(timeout=60)
        return Result(answer, self.proc.returncode, err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)


class Result:
    """What the service said at its end: sent, and what its ledger counted as dropped."""

    def __init__(self, answer: dict[str, Any], returncode: int, stderr: str) -> None:
        self.sent: int = answer["sent"]
        self.shutdown_ok: bool = answer["shutdown_ok"]
        self.status: dict[str, Any] = answer["status"]
        self.returncode = returncode
        self.stderr = stderr
        traces = self.status["signals"]["traces"]
        self.dropped: int = traces["dropped"]
        self.dropped_by_reason: dict[str, int] = traces["dropped_by_reason"]


def delivered(receiver: OTLPReceiver, run: str = "a") -> Counter[int]:
    """How often each span of ``run`` arrived."""
    return Counter(s["attributes"]["unit.seq"] for s in receiver.spans()
                   if s["name"] == "unit" and s["attributes"].get("unit.run") == run)


def assert_accounted(receiver: OTLPReceiver, result: Result, run: str = "a") -> Counter[int]:
    """Every span delivered once or counted as dropped, and the process ended cleanly."""
    got = delivered(receiver, run)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    twice = {seq: n for seq, n in got.items() if n > 1}
    assert not twice, f"{len(twice)} spans delivered more than once"
    assert len(got) + result.dropped == result.sent, (
        f"sent {result.sent}, delivered {len(got)}, counted as dropped {result.dropped} "
        f"({result.dropped_by_reason}): {result.sent - len(got) - result.dropped} unaccounted")
    return got
