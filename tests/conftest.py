"""Shared fixtures.

``telemetry`` installs the SDK's in-memory exporters as the global providers
once per session (the OTel API lets a provider be set only once per process)
and isolates each test's spans, logs and metric deltas. Tests of ``init()``
itself run in subprocesses through ``run_python``, since ``init()`` installs
providers of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.otlp_receiver import GRPC, HTTP, OTLPReceiver, free_port

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


class Telemetry:
    """The in-memory view of what the process emitted during one test."""

    def __init__(self) -> None:
        self.span_exporter = InMemorySpanExporter()
        self.log_exporter = InMemoryLogRecordExporter()
        delta = AggregationTemporality.DELTA
        self.reader = InMemoryMetricReader(
            preferred_temporality={Counter: delta, Histogram: delta, UpDownCounter: delta}
        )

    def reset(self) -> None:
        self.span_exporter.clear()
        self.log_exporter.clear()
        self.reader.get_metrics_data()  # discard deltas from earlier tests

    # --- spans -----------------------------------------------------------------
    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.span_exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def events(self, name: str | None = None) -> list[Any]:
        return [e for s in self.spans() for e in s.events if name is None or e.name == name]

    # --- logs --------------------------------------------------------------------
    def logs(self) -> list[Any]:
        return list(self.log_exporter.get_finished_logs())

    # --- metrics -----------------------------------------------------------------
    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Collect once: name -> [(attributes, point)]. Counters and histograms are
        deltas since the previous collection; gauges are current values."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        out.setdefault(metric.name, []).append((dict(point.attributes), point))
        return out


_TELEMETRY = Telemetry()
trace.set_tracer_provider(_tp := TracerProvider())
_tp.add_span_processor(SimpleSpanProcessor(_TELEMETRY.span_exporter))
metrics.set_meter_provider(MeterProvider(metric_readers=[_TELEMETRY.reader]))
_logs.set_logger_provider(_lp := LoggerProvider())
_lp.add_log_record_processor(SimpleLogRecordProcessor(_TELEMETRY.log_exporter))


@pytest.fixture(autouse=True)
def _forget_finished_telemetry() -> Iterator[None]:
    """Tests that do not look at the in-memory spans and log records still make them:
    forget them after each test, or the test process grows by gigabytes."""
    yield
    _TELEMETRY.span_exporter.clear()
    _TELEMETRY.log_exporter.clear()


@pytest.fixture
def telemetry() -> Telemetry:
    _TELEMETRY.reset()
    return _TELEMETRY


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    """A gRPC OTLP receiver on loopback."""
    with OTLPReceiver(GRPC) as receiver:
        yield receiver


@pytest.fixture
def otlp_http_receiver() -> Iterator[OTLPReceiver]:
    """An HTTP/protobuf OTLP receiver on loopback."""
    with OTLPReceiver(HTTP) as receiver:
        yield receiver


def python_env(**extra: str) -> dict[str, str]:
    """A clean environment for a child interpreter: no OTEL_* leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELPROD_"))}
    # A spool of its own: telemetry a test leaves unsent must never reach another test's receiver.
    env["OTELPROD_SPOOL_DIR"] = tempfile.mkdtemp(prefix="otelprod-spool-")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 120,
               cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter and return its result (never raises on exit code)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env if env is not None else python_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


SEED_EXAMPLES = REPO / "tests" / "seed_examples"


def seed_example(key: str) -> str:
    """The code of the seed example whose title (``"Troubleshooting / Full Example"``)
    is or ends with ``key``, or failing that whose code contains ``key``."""
    examples = []
    for path in sorted(SEED_EXAMPLES.glob("ex*.py")):
        header, _, code = path.read_text(encoding="utf-8").partition("\n\n")
        title = header.splitlines()[0].split(": ", 1)[1]
        examples.append((title, code))
    for title, code in examples:
        if title == key or title.endswith(" / " + key):
            return code
    for _, code in examples:
        if key in code:
            return code
    raise AssertionError(f"no seed example in {SEED_EXAMPLES} is titled or contains {key!r}")


def start_redis_server(port: int, directory: Path) -> subprocess.Popen[bytes]:
    """A real redis-server on loopback ``port``, answering PING; fails (never skips) when
    the binary is missing or the server does not come up within 10 s."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: .ci/run installs the Debian package")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start within 10 s")
            time.sleep(0.05)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on loopback; yields its URL."""
    port = free_port()
    proc = start_redis_server(port, tmp_path)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


__all__ = [
    "REPO",
    "SHARED",
    "Telemetry",
    "free_port",
    "python_env",
    "run_python",
    "seed_example",
    "start_redis_server",
]
