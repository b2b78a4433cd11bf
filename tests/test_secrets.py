"""Secrets: the value type, loading, and that a secret never leaves the process."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest

from otelprod._scrub import REDACTED, scrubber
from otelprod.config_manager import Secret, SecretsManager, get_secrets
from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver


def test_secret_never_shows_its_value() -> None:
    secret = Secret("sk-live-123456", "api_key")
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", "%s" % secret,  # noqa: UP031
                  f"{secret:>30}", str([secret]), str({"k": secret})):
        assert "sk-live-123456" not in shown
    assert secret.get_secret_value() == "sk-live-123456"
    assert secret == "sk-live-123456" and secret == Secret("sk-live-123456")
    assert secret != "other"
    assert bool(secret) and not Secret("")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError, match="expected a str"):
        Secret(123)  # type: ignore[arg-type]


def test_secret_in_a_log_message_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("sk-live-555555", "api_key")
    with caplog.at_level(logging.INFO):
        logging.getLogger("app").info("using %s", secret)
    assert "sk-live-555555" not in caplog.text


def test_load_from_env() -> None:
    manager = SecretsManager()
    names = manager.load_from_env(prefix="SECRET_", environ={
        "SECRET_API_KEY": "env-api-key-1", "SECRET_DB-PASSWORD": "env-db-pw-1", "OTHER": "x"})
    assert names == ["api_key", "db_password"]
    api_key = manager.get_secret("api_key")
    assert isinstance(api_key, Secret)
    assert api_key.get_secret_value() == "env-api-key-1"
    assert manager.get_secret_value("API_KEY") == "env-api-key-1"
    assert manager.get_secret("missing") is None
    default = manager.get_secret("missing", "fallback")
    assert isinstance(default, Secret) and default.get_secret_value() == "fallback"
    assert "db_password" in manager and len(manager) == 2
    assert "env-db-pw-1" not in repr(manager)
    assert scrubber.scrub("pw is env-db-pw-1") == f"pw is {REDACTED}"


def test_load_from_a_secrets_directory(tmp_path: Path) -> None:
    (tmp_path / "db_password").write_text("dir-db-pw-1\n")
    (tmp_path / "api-key").write_text("dir-api-key-1")
    (tmp_path / ".hidden").write_text("nope")
    (tmp_path / "subdir").mkdir()
    (tmp_path / "huge").write_bytes(b"x" * (64 * 1024 + 1))
    manager = SecretsManager()
    assert manager.load_from_directory(tmp_path) == ["api_key", "db_password"]
    assert manager.get_secret_value("db_password") == "dir-db-pw-1"  # newline dropped
    assert manager.get_secret_value("api_key") == "dir-api-key-1"
    assert manager.status() == {"count": 2, "sources": {"file": 2}}
    assert SecretsManager().load_from_directory(tmp_path / "absent") == []
    assert scrubber.scrub("dir-api-key-1") == REDACTED


def test_the_global_manager_is_shared() -> None:
    assert get_secrets() is get_secrets()


SECRET = "s3cr3t-registered-7731"
PASSWORD = "pw-under-key-4417"
PROGRAM = """
import logging, otelprod
from opentelemetry import trace
from otelprod.config_manager import get_secrets
from otelprod.structured_logging import initialize_observability, setup_json_logging

get_secrets().load_from_env(prefix="SECRET_")
api_key = get_secrets().get_secret("api_key").get_secret_value()
otelprod.init("scrub-check")
setup_json_logging(level="INFO", log_file="logs/app.log")
obs = initialize_observability("Scrub")
logger = obs.get_logger("payments")
logger.set_context(user_id="u-1", password=PASSWORD)
with obs.trace_request("charge", password=PASSWORD, note="key " + api_key) as ctx:
    ctx["span"].add_event("auth", {"api_key": api_key, "token": "tok-" + PASSWORD})
    logger.info("calling with key %s", api_key, password=PASSWORD, card_number="4111111111111111")
    logging.getLogger("plain").warning("url https://u:%s@h/?password=%s", PASSWORD, PASSWORD)
    try:
        raise RuntimeError("denied for " + api_key + " password=" + PASSWORD)
    except RuntimeError:
        logger.exception("charge failed")
assert otelprod.shutdown(timeout=10)
"""


def test_secrets_never_reach_the_json_file_nor_the_collector(
        otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                     OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_BSP_SCHEDULE_DELAY="100",
                     OTEL_BLRP_SCHEDULE_DELAY="100", SECRET_API_KEY=SECRET)
    code = f"PASSWORD = {PASSWORD!r}\n" + PROGRAM
    result = run_python(code, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    # the JSON lines: written, complete, and clean
    lines = (tmp_path / "logs" / "app.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    messages = [e["message"] for e in entries]
    assert f"calling with key {REDACTED}" in messages
    assert "charge failed" in messages
    payments = next(e for e in entries if e["logger"] == "Scrub.payments")
    assert payments["password"] == REDACTED and payments["user_id"] == "u-1"
    assert payments["extra"]["card_number"] == REDACTED
    assert len(payments["trace_id"]) == 32 and len(payments["span_id"]) == 16
    file_text = "\n".join(lines)
    assert SECRET not in file_text and PASSWORD not in file_text
    assert SECRET not in result.stdout and PASSWORD not in result.stdout

    # what the collector got
    assert otlp_receiver.wait_for(lambda r: any(s["name"] == "charge" for s in r.spans())
                                  and len(r.logs()) >= 3)
    spans = otlp_receiver.spans()
    logs = otlp_receiver.logs()
    charge = next(s for s in spans if s["name"] == "charge")
    assert charge["attributes"]["password"] == REDACTED
    assert charge["attributes"]["note"] == f"key {REDACTED}"
    auth = next(e for e in charge["events"] if e["name"] == "auth")
    assert auth["attributes"] == {"api_key": REDACTED, "token": REDACTED}
    log = next(r for r in logs if str(r["body"]).startswith("calling with key"))
    assert log["attributes"]["password"] == REDACTED
    assert log["attributes"]["user_id"] == "u-1"
    assert log["trace_id"] == charge["trace_id"]
    wire = repr(spans) + repr(logs) + repr(otlp_receiver.requests("traces")) \
        + repr(otlp_receiver.requests("logs"))
    assert SECRET not in wire
    assert PASSWORD not in wire


def test_every_handler_gets_the_scrubbed_message(caplog: pytest.LogCaptureFixture) -> None:
    from otelprod.structured_logging import ObservabilitySystem

    scrubber.register_secret("caplog-secret-2231")
    logger = ObservabilitySystem("S").get_logger("any_handler")
    with caplog.at_level(logging.INFO):
        logger.info("key %s at 100%%", "caplog-secret-2231", api_token="tok-caplog-1")
    record = caplog.records[-1]
    assert record.getMessage() == f"key {REDACTED} at 100%"
    assert record.api_token == REDACTED
    assert "caplog-secret-2231" not in caplog.text


def test_stderr_last_resort_output_is_scrubbed_too(tmp_path: Path) -> None:
    result = run_python("""
        from otelprod.config_manager import get_secrets
        from otelprod.structured_logging import get_logger
        key = get_secrets().set_secret("k", "last-resort-secret-1").get_secret_value()
        get_logger("nohandlers").warning("oops, logged the key %s", key)
    """, env=python_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "oops, logged the key [REDACTED]" in result.stderr
    assert "last-resort-secret-1" not in result.stderr
