"""``otelprod spool status | flush | purge`` on a real spool, against a real receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelprod._pipeline.spool.store import SpoolDir, service_dir
from tests.conftest import python_env
from tests.otlp_receiver import OTLPReceiver


def _spool_spans(root: Path, service: str, batches: int) -> SpoolDir:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    spool = SpoolDir(service_dir(root, service))
    for b in range(batches):
        memory.clear()
        for i in range(10):
            with provider.get_tracer("cli").start_as_current_span("spooled",
                                                                  attributes={"n": b * 10 + i}):
                pass
        spans = memory.get_finished_spans()
        spool.write("traces", encode_spans(spans).SerializeToString(), len(spans))
    return spool


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otelprod", "spool", *args],
                          env=env or python_env(), capture_output=True, text=True, timeout=60)


def test_status_shows_segments_per_signal(tmp_path: Path) -> None:
    _spool_spans(tmp_path, "svc-a", 3)
    result = _cli("--dir", str(tmp_path), "--service-name", "svc-a", "status", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)["svc-a"]
    assert info["segments"] == 3 and info["signals"]["traces"]["items"] == 30
    text = _cli("--dir", str(tmp_path), "status", "--all").stdout
    assert "svc-a: 3 segments" in text and "traces" in text


def test_flush_sends_everything_once(tmp_path: Path, otlp_receiver: OTLPReceiver) -> None:
    _spool_spans(tmp_path, "svc-b", 4)
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    result = _cli("--dir", str(tmp_path), "--service-name", "svc-b", "flush", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent 4 of 4 segments" in result.stdout
    assert sorted(s["attributes"]["n"] for s in otlp_receiver.spans()) == list(range(40))
    assert not list(service_dir(tmp_path, "svc-b").glob("*.otlp*"))


def test_flush_with_collector_down_keeps_the_spool(tmp_path: Path) -> None:
    from tests.otlp_receiver import free_port

    _spool_spans(tmp_path, "svc-c", 2)
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    result = _cli("--dir", str(tmp_path), "--service-name", "svc-c", "flush", "--timeout", "3",
                  env=env)
    assert result.returncode == 1
    assert "2 segments left" in result.stdout
    assert len(list(service_dir(tmp_path, "svc-c").glob("*.otlp"))) == 2


def test_purge_needs_yes(tmp_path: Path) -> None:
    _spool_spans(tmp_path, "svc-d", 2)
    args = ("--dir", str(tmp_path), "--service-name", "svc-d", "purge")
    refused = _cli(*args)
    assert refused.returncode == 1 and "--yes" in refused.stdout
    assert len(list(service_dir(tmp_path, "svc-d").glob("*.otlp"))) == 2
    done = _cli(*args, "--yes")
    assert done.returncode == 0 and "Deleted 2 segments" in done.stdout
    assert not list(service_dir(tmp_path, "svc-d").glob("*.otlp"))


def test_status_shows_what_was_dropped_by_reason(tmp_path: Path) -> None:
    spool = _spool_spans(tmp_path, "svc-d", 1)
    spool.log_drops({("traces", "queue_full"): 40, ("logs", "spool_full"): 7})
    spool.log_drops({("traces", "queue_full"): 2})
    result = _cli("--dir", str(tmp_path), "--service-name", "svc-d", "status", "--json")
    info = json.loads(result.stdout)["svc-d"]
    assert info["dropped"] == 49
    assert info["dropped_by_reason"] == {"queue_full": 42, "spool_full": 7}
    assert info["dropped_by_signal"] == {"traces": {"queue_full": 42}, "logs": {"spool_full": 7}}
    text = _cli("--dir", str(tmp_path), "--service-name", "svc-d", "status").stdout
    assert "dropped  traces          42 items (42 queue_full)" in text, text
