"""Secrets never leave the process: a canary and a password, looked for everywhere.

A service registers a canary secret with the secrets manager and passes a
password as a log extra, as a span attribute, inside a URL's query and in a
span event. The collector is down at first, so everything also goes through
the disk spool; then it comes back. Neither value may appear in the spool
files, in any byte the OTLP receiver got, in the JSON log file, in the status
reports, in the health endpoint's answer or in ``otelprod doctor``'s output.
Each place is also checked for what *should* be there, so an empty place
cannot pass for a clean one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

from tests.conftest import python_env
from tests.otlp_receiver import GRPC, OTLPReceiver, free_port

CANARY = "cnry-7f3a9c1e5b2d4e6f0a8b"
PASSWORD = "hunter2-Pa55w0rd-qx93"

SERVICE = """
import json, logging, sys, urllib.request
import otelprod
from opentelemetry import _logs, trace
from otelprod.config_manager import get_secrets

CANARY, PASSWORD, LOG_FILE = sys.argv[1:4]
get_secrets().set_secret("canary_token", CANARY)
system = otelprod.init("canary")
from otelprod.structured_logging import flush_logging, setup_json_logging
setup_json_logging(log_file=LOG_FILE, console=False)

log = logging.getLogger("canary")
url = f"https://api.example.com/login?user=bob&password={PASSWORD}&next=/home"
with trace.get_tracer("canary").start_as_current_span(
        "login", attributes={"password": PASSWORD, "url.full": url,
                             "note": f"signed with {CANARY}"}) as span:
    span.add_event("auth", {"db.password": PASSWORD, "detail": f"token {CANARY}"})
    log.warning("login attempt", extra={"password": PASSWORD, "callback": url,
                                        "detail": f"used {CANARY}"})
    log.warning("raw message carrying %s and password=%s", CANARY, PASSWORD)
trace.get_tracer_provider().force_flush()
_logs.get_logger_provider().force_flush()
print("spooled", flush=True)
sys.stdin.readline()  # the collector is back

from otelprod.monitoring import monitoring_system, serve_health
server = serve_health(0, "127.0.0.1")
with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
    health = response.read().decode()
status = json.dumps(system.get_system_status(), default=str)
report = json.dumps(monitoring_system.get_status_report(), default=str)
server.close() if hasattr(server, "close") else None
flush_logging()
ok = otelprod.shutdown(timeout=20)
print(json.dumps({"health": health, "status": status, "report": report, "flushed": ok}))
"""


def _forms(value: str) -> list[bytes]:
    return [v.encode() for v in {value, quote(value, safe=""), quote_plus(value)}]


def _leaks(data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    found = []
    for name, value in (("canary", CANARY), ("password", PASSWORD)):
        if any(form in raw for form in _forms(value)):
            found.append(name)
    return found


def test_canary_and_password_never_leave_the_process(tmp_path: Path) -> None:
    receiver = OTLPReceiver(GRPC, free_port())  # down at first
    spool = tmp_path / "spool"
    log_file = tmp_path / "app.log"
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTELPROD_SPOOL_DIR=str(spool),
                     OTELPROD_SPOOL_RETRY_INITIAL="0.1", OTELPROD_SPOOL_RETRY_MAX="0.5",
                     OTELPROD_SYSTEM_METRICS="false", OTEL_METRIC_EXPORT_INTERVAL="1000")
    proc = subprocess.Popen([sys.executable, "-c", SERVICE, CANARY, PASSWORD, str(log_file)],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line.strip() == "spooled", proc.stderr.read() if proc.stderr else ""
        segments = [p for p in spool.rglob("*") if p.is_file()]
        assert segments, "nothing went through the spool"
        for path in segments:
            assert not _leaks(path.read_bytes()), f"secret in spool file {path.name}"
        receiver.start()
        out, err = proc.communicate("go\n", timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.stop()
    assert proc.returncode == 0, err[-4000:]
    result = json.loads(out.strip().splitlines()[-1])

    # what the collector got: every request's bytes, all signals
    for signal in ("traces", "logs", "metrics"):
        for request in receiver.requests(signal):
            assert not _leaks(request.SerializeToString()), f"secret sent in {signal}"
    spans = {s["name"]: s for s in receiver.spans()}
    assert "login" in spans, "the span did not arrive"
    assert spans["login"]["attributes"]["password"] == "[REDACTED]"
    assert "bob" in spans["login"]["attributes"]["url.full"]  # the rest of the URL stays
    assert spans["login"]["attributes"]["note"] == "signed with [REDACTED]"
    bodies = [r["body"] for r in receiver.logs()]
    assert "login attempt" in bodies

    text = log_file.read_text()
    assert "login attempt" in text
    assert not _leaks(text), "secret in the JSON log file"

    assert '"' in result["health"] and not _leaks(result["health"]), "secret in /health"
    assert "telemetry" in result["status"] and not _leaks(result["status"]), "secret in status"
    assert "checks" in result["report"] and not _leaks(result["report"]), "secret in report"
    assert not _leaks(err), "secret on stderr"


def test_doctor_output_shows_no_secret(otlp_receiver: OTLPReceiver) -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                     OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={CANARY}",
                     OTELPROD_HEALTH_TOKEN=PASSWORD,
                     OTEL_RESOURCE_ATTRIBUTES=f"deployment.note=pw%3D{PASSWORD}")
    result = subprocess.run([sys.executable, "-m", "otelprod", "doctor"], env=env,
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert "traces" in output and "OK" in output, output
    assert "OTEL_EXPORTER_OTLP_HEADERS" in output and "OTELPROD_HEALTH_TOKEN" in output
    assert not _leaks(output), f"secret in doctor output:\n{output}"
