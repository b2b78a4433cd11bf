"""A registered secret leaves the process by no exit at all.

Three canaries are registered the ways a deployment registers secrets: a
``SECRET_*`` variable, a file in the secrets directory and
``OTELPROD_HEALTH_TOKEN``. A service then puts them where application code
puts such values by mistake: in a span name and an event name, in metric
attribute values, in ``OTEL_RESOURCE_ATTRIBUTES``, in the OTLP endpoint's
userinfo, in a log message, and as the argument of a call that ends in the
dead-letter queue. The collector is down at first, so everything is spooled
on disk; then it comes back. Every exit is searched for every canary (and
its URL-encoded forms): each byte the receiver got, the spool files, the
dead-letter database, the JSON and plain log files, the service's stderr,
and each output of the ``otelprod`` command (``dlq list``, ``list --json``,
``show``, ``replay --json``, ``spool status``, ``doctor`` with the canary in
the endpoint). Each exit is also checked for what should be there, so an
empty exit cannot pass for a clean one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import python_env
from tests.otlp_receiver import HTTP, OTLPReceiver, free_port

ENV_CANARY = "envcanary-5d1f0e7a9b3c"
FILE_CANARY = "filecanary-8e2b6c4d0a1f"
TOKEN_CANARY = "tokencanary-3a7c9e1b5d2f"
CANARIES = (ENV_CANARY, FILE_CANARY, TOKEN_CANARY)

SERVICE = """
import logging, os, sys
import otelprod
from opentelemetry import _logs, metrics, trace
from otelprod.error_handling import RetryConfig, with_retry

ENV, FILE, TOKEN = (os.environ["SECRET_CANARY"], open(sys.argv[1]).read().strip(),
                    os.environ["OTELPROD_HEALTH_TOKEN"])
logs = sys.argv[2]
plain = logging.FileHandler(os.path.join(logs, "plain.log"))
plain.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
logging.getLogger().addHandler(plain)
logging.getLogger().setLevel(logging.DEBUG)
otelprod.init("canary-exits", log_file=os.path.join(logs, "app.json"))

meter = metrics.get_meter("canary")
orders = meter.create_counter("canary.orders")
latency = meter.create_histogram("canary.latency", unit="s")
with trace.get_tracer("canary").start_as_current_span(f"charge {ENV}") as span:
    span.add_event(f"declined {FILE}")
    orders.add(1, {"customer": ENV})
    orders.add(2, {"customer": FILE})
    orders.add(4, {"customer": "acme"})
    latency.record(0.1, {"customer": ENV})
    latency.record(0.2, {"customer": TOKEN})
    logging.getLogger("canary").warning("paid with %s and %s", ENV, TOKEN)

    @with_retry(RetryConfig(max_attempts=2, base_delay=0.01, jitter=False, dead_letter=True))
    def charge(card, note):
        raise RuntimeError(f"card {card} declined ({note})")

    try:
        charge(ENV, note=f"token {TOKEN}")
    except RuntimeError:
        pass

def flush():
    trace.get_tracer_provider().force_flush()
    metrics.get_meter_provider().force_flush()
    _logs.get_logger_provider().force_flush()

flush()
print("spooled", flush=True)
sys.stdin.readline()  # the collector is back
flush()
print("flushed" if otelprod.shutdown(timeout=20) else "not flushed", flush=True)
"""


def _forms(value: str) -> set[bytes]:
    return {v.encode() for v in (value, quote(value, safe=""), quote_plus(value))}


def leaks(data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return [c for c in CANARIES if any(form in raw for form in _forms(c))]


@pytest.fixture(scope="module")
def exits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Run the service through an outage; hand over everything that left it."""
    tmp = tmp_path_factory.mktemp("canary")
    secrets_dir = tmp / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "payment_key").write_text(FILE_CANARY + "\n")
    logs = tmp / "logs"
    logs.mkdir()
    receiver = OTLPReceiver(HTTP, free_port())  # down at first
    env = python_env(
        SECRET_CANARY=ENV_CANARY, OTELPROD_SECRETS_DIR=str(secrets_dir),
        OTELPROD_HEALTH_TOKEN=TOKEN_CANARY,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://probe:{TOKEN_CANARY}@127.0.0.1:{receiver.port}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_RESOURCE_ATTRIBUTES=f"deployment.note=built-by-{ENV_CANARY},team=payments",
        OTELPROD_SPOOL_DIR=str(tmp / "spool"), OTELPROD_DLQ_PATH=str(tmp / "dlq" / "dead.db"),
        OTELPROD_SPOOL_RETRY_INITIAL="0.1", OTELPROD_SPOOL_RETRY_MAX="0.5",
        OTELPROD_SYSTEM_METRICS="false", OTEL_METRIC_EXPORT_INTERVAL="60000")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVICE, str(secrets_dir / "payment_key"), str(logs)],
        env=env, cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line.strip() == "spooled", proc.stderr.read() if proc.stderr else ""
        spooled = {p.name: p.read_bytes() for p in (tmp / "spool").rglob("*") if p.is_file()}
        receiver.start()
        out, err = proc.communicate("go\n", timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.stop()
    assert proc.returncode == 0, err[-4000:]
    assert out.strip().splitlines()[-1] == "flushed", out + err[-4000:]

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "otelprod", *args],
                              env={**env, **extra}, cwd=tmp, capture_output=True, text=True,
                              timeout=60)

    dlq_files = {p.name: p.read_bytes() for p in (tmp / "dlq").iterdir()}
    commands = {
        "dlq list": cli("dlq", "list"),
        "dlq list --json": cli("dlq", "list", "--json"),
        "dlq show": cli("dlq", "show", "1"),
        "spool status": cli("spool", "status", "--all", "--json"),
        "doctor": cli("doctor", "--timeout", "1",
                      OTELPROD_ENDPOINT=f"http://probe:{ENV_CANARY}@127.0.0.1:{free_port()}"),
        "dlq replay --json": cli("dlq", "replay", "--handler", "builtins:repr", "--json"),
    }
    return {"receiver": receiver, "spooled": spooled, "stderr": err, "logs": logs,
            "dlq_files": dlq_files, "commands": commands}


def test_nothing_secret_reaches_the_collector(exits: dict) -> None:
    receiver: OTLPReceiver = exits["receiver"]
    for signal in ("traces", "metrics", "logs"):
        requests = receiver.requests(signal)
        assert requests, f"no {signal} arrived"
        for request in requests:
            assert not leaks(request.SerializeToString()), f"secret sent in {signal}"
    span = next(s for s in receiver.spans() if s["name"].startswith("charge"))
    assert span["name"] == "charge [REDACTED]"
    assert [e["name"] for e in span["events"]][:1] == ["declined [REDACTED]"]
    assert span["resource"]["deployment.note"] == "built-by-[REDACTED]"
    assert span["resource"]["team"] == "payments"
    assert "paid with [REDACTED] and [REDACTED]" in [r["body"] for r in receiver.logs()]


def test_streams_a_secret_kept_apart_are_merged_not_duplicated(exits: dict) -> None:
    receiver: OTLPReceiver = exits["receiver"]
    orders = [m for m in receiver.metrics() if m["name"] == "canary.orders"]
    assert orders, "the counter did not arrive"
    last = {p["attributes"]["customer"]: p["value"] for p in orders[-1]["points"]}
    assert last == {"[REDACTED]": 3, "acme": 4}
    assert len(orders[-1]["points"]) == 2
    latency = [m for m in receiver.metrics() if m["name"] == "canary.latency"][-1]
    assert [(p["attributes"], p["count"]) for p in latency["points"]] == [
        ({"customer": "[REDACTED]"}, 2)]
    assert latency["points"][0]["sum"] == pytest.approx(0.3)


def test_nothing_secret_is_spooled_on_disk(exits: dict) -> None:
    spooled: dict[str, bytes] = exits["spooled"]
    assert any(data for data in spooled.values()), "nothing went through the spool"
    for name, data in spooled.items():
        assert not leaks(data), f"secret in spool file {name}"
    assert any(b"charge [REDACTED]" in data for data in spooled.values())


def test_nothing_secret_in_the_dead_letter_database(exits: dict) -> None:
    files: dict[str, bytes] = exits["dlq_files"]
    assert any(b"declined" in data for data in files.values()), "no dead letter was stored"
    for name, data in files.items():
        assert not leaks(data), f"secret in the dead-letter file {name}"


def test_nothing_secret_in_log_files_or_on_stderr(exits: dict) -> None:
    logs: Path = exits["logs"]
    # the application's own handler shows what the application logs (its own line is its
    # business); what otelprod and the libraries under it say there is scrubbed
    ours = [line for line in (logs / "plain.log").read_text().splitlines()
            if not line.startswith("canary ")]
    assert any("the collector does not take traces" in line for line in ours), ours
    assert not leaks("\n".join(ours)), "secret in otelprod's lines in the application's log"
    json_lines = (logs / "app.json").read_text()
    assert "paid with" in json_lines
    assert not leaks(json_lines), "secret in the JSON log file"
    assert not leaks(exits["stderr"]), "secret on the service's stderr"


@pytest.mark.parametrize("command", ["dlq list", "dlq list --json", "dlq show",
                                     "dlq replay --json", "spool status", "doctor"])
def test_nothing_secret_in_any_cli_output(exits: dict, command: str) -> None:
    result: subprocess.CompletedProcess[str] = exits["commands"][command]
    output = result.stdout + result.stderr
    assert not leaks(output), f"secret in `otelprod {command}`:\n{output}"
    expected = {"dlq list": (0, "card [REDACTED] declined"),
                "dlq list --json": (0, '"[REDACTED]"'),
                "dlq show": (0, "token [REDACTED]"),
                "dlq replay --json": (0, '"replayed"'),
                "spool status": (0, "canary-exits"),
                "doctor": (1, "http://probe:[REDACTED]@127.0.0.1:")}[command]
    assert (result.returncode, expected[1] in output) == (expected[0], True), output
    if command.endswith("--json") or command == "dlq show":
        json.loads(result.stdout)  # scrubbing keeps it valid JSON
