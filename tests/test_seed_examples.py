"""Every Python example of the seed document runs as written, with ``src.`` → ``otelprod.``.

The blocks are read from ``../shared/seed/production-features.md`` itself, so
an example that stops working fails here. Each runs in a fresh interpreter
in a scratch directory, with only a prelude that defines what the seed leaves
to the reader (``risky_operation``, ``user_input``, a ``twitter_client``, …)
and imports the few names a block uses without importing them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import SHARED, python_env, run_python
from tests.otlp_receiver import OTLPReceiver

SEED = SHARED / "seed" / "production-features.md"

PRELUDE = '''
from otelprod.error_handling import ErrorSeverity, CircuitBreakerConfig
from otelprod.monitoring import AlertSeverity
from otelprod.validation import ValidationResult
from otelprod.config_manager import Environment
from otelprod.production_integration import shutdown_production

def risky_operation():
    raise RuntimeError("the risky operation failed")

user_input = "valid_name_42"
user_html = '<p onclick="steal()">hi <script>alert(1)</script><b>there</b></p>'
user_text = "plain\\x00 text\\u200b with controls"
user_filename = "../../etc/passwd"
value = "user@example.com"

def make_api_request():
    return {"ok": True}

def process_item():
    return None

class _Twitter:
    def fetch(self):
        return [{"id": 1}, {"id": 2}]

twitter_client = _Twitter()
'''


def seed_blocks() -> list[tuple[str, str]]:
    if not SEED.exists():
        pytest.fail(f"the seed document is missing: {SEED} (shared/ must sit beside the repo)")
    text = SEED.read_text()
    blocks = []
    heading = "top"
    for match in re.finditer(r"^(#{2,3} [^\n]+)$|^```python\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            blocks.append((heading, match.group(2).replace("src.", "otelprod.")))
    return blocks


BLOCKS = seed_blocks() if SEED.exists() else []


def test_the_seed_has_the_expected_examples() -> None:
    assert len(seed_blocks()) == 15


@pytest.mark.parametrize("heading,code", BLOCKS,
                         ids=[f"{i:02d}-{h}" for i, (h, _) in enumerate(BLOCKS)])
def test_seed_example_runs_as_written(heading: str, code: str, tmp_path: Path) -> None:
    epilogue = ""
    prologue = ""
    if "reset_circuit_breaker" in code:
        # the troubleshooting entry resets a breaker the reader's service has
        prologue = 'from otelprod.error_handling import with_circuit_breaker\n' \
                   'with_circuit_breaker("service_name")(lambda: None)()\n'
    if "FastAPI()" in code:
        epilogue = '''
from fastapi.testclient import TestClient
client = TestClient(app)
assert client.get("/health").json() == {"status": "not_initialized"}
import otelprod
otelprod.init("seed-fastapi")
body = client.get("/health").json()
assert body["service"] == "seed-fastapi", body
assert "monitoring" in body, body
otelprod.shutdown(timeout=5)
'''
    with OTLPReceiver() as receiver:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                         OTEL_BSP_SCHEDULE_DELAY="100", OTEL_BLRP_SCHEDULE_DELAY="100",
                         TGE_LOG_LEVEL="DEBUG", TGE_MAX_WORKERS="8", TGE_ENABLE_TWITTER="true",
                         SECRET_API_KEY="your_api_key_here")
        result = run_python(PRELUDE + prologue + code + epilogue, env=env, cwd=tmp_path,
                            timeout=120)
        assert result.returncode == 0, f"{heading}:\n{code}\n--- stderr:\n{result.stderr}"
        if "initialize_production" in code:
            spans = receiver.spans()
            assert spans or "fetch_twitter_data" not in code
            if "fetch_twitter_data" in code:
                assert "fetch_twitter_data" in {s["name"] for s in spans}
                assert all(s["resource"]["service.name"] == "TGE_Monitor" for s in spans)
