"""The ``otelprod`` command, run as a user runs it: a real process."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import python_env
from tests.otlp_receiver import OTLPReceiver, free_port


def otelprod(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otelprod", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_without_a_collector_renders_on_the_terminal(tmp_path) -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    result = subprocess.run([sys.executable, "-m", "otelprod", "demo", "--scene",
                             "otelprod.demo.basics"], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith("No collector answers at http://127.0.0.1:")
    out = "\n".join(rest)
    assert "span  place order" in out
    assert "└ order.placed" in out
    assert "log   INFO  placed order 4" in out
    assert "metric demo.orders" in out


def test_demo_exports_to_a_collector(otlp_receiver: OTLPReceiver, tmp_path) -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    result = subprocess.run([sys.executable, "-m", "otelprod", "demo", "--scene",
                             "otelprod.demo.basics"], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "No collector answers" not in result.stdout
    names = {s["name"] for s in otlp_receiver.spans()}
    assert {"place order", "charge card", "demo basics: spans, metrics and logs"} <= names
    assert {r["body"] for r in otlp_receiver.logs()} >= {"placed order 0", "placed order 4"}
    assert "demo.orders" in otlp_receiver.metric_names()
    resource = otlp_receiver.spans()[0]["resource"]
    assert resource["service.name"] == "otelprod-demo"


def test_doctor_checks_every_signal_and_masks_secrets(otlp_receiver: OTLPReceiver) -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                     OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer sekrit-123",
                     OTELPROD_HEALTH_TOKEN="tok-sekrit-456")
    result = otelprod("doctor", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for signal in ("traces", "metrics", "logs"):
        assert any(line.split()[:1] == [signal] and " OK [" in line
                   for line in result.stdout.splitlines()), result.stdout
    assert "sekrit" not in result.stdout + result.stderr
    assert [s["name"] for s in otlp_receiver.spans()] == ["otelprod.doctor"]
    assert otlp_receiver.logs() and "otelprod.doctor.checks" in otlp_receiver.metric_names()


def test_doctor_reports_an_unreachable_collector() -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    result = otelprod("doctor", "--timeout", "1", env=env)
    assert result.returncode == 1
    assert result.stdout.count("FAILED") == 3
    assert "Is a collector running?" in result.stdout
