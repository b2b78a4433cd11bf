"""The seed's rate-limiting examples run as written (``src.`` -> ``otelprod.``),
read from the seed document itself, each in a fresh interpreter; then we check
they did what they say."""

from __future__ import annotations

import json

from tests.conftest import python_env, run_python, seed_example

STUBS = """
made, processed = [], []
def make_api_request():
    made.append(1)
def process_item():
    processed.append(1)
class _Twitter:
    def fetch(self):
        return ["tweet"]
twitter_client = _Twitter()
"""


def block(title: str) -> str:
    """The seed example titled ``title`` (src. -> otelprod.)."""
    return seed_example(title)


def run(code: str, epilogue: str) -> dict[str, object]:
    proc = run_python(STUBS + code + epilogue, env=python_env(OTEL_SDK_DISABLED="true"))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_rate_limiting_usage_example_runs_as_written() -> None:
    code = block("Rate Limiting and Throttling / Usage")
    assert 'register_limiter(\n    "api_requests"' in code  # the block we mean
    out = run(code, """
import json
print(json.dumps({"status": status._asdict(), "made": len(made), "processed": len(processed),
                  "stats": rate_limit_manager.get_all_stats(), "should_accept": should_accept}))
""")
    assert out["status"] == {"allowed": True, "retry_after": 0.0, "remaining": 19,
                             "limit": 20, "waited": 0.0}
    assert out["made"] == 1 and out["processed"] == 1 and out["should_accept"] is True
    stats = out["stats"]
    assert stats["limiters"]["api_requests"]["allowed"] == 1  # type: ignore[index]
    assert stats["backpressure"]["processing_queue"]["queue_size"] == 0  # type: ignore[index]


def test_rate_limiting_usage_example_waits_when_the_burst_is_spent() -> None:
    code = block("Rate Limiting and Throttling / Usage")
    # run the example's acquire 25 times: 20 at once, then waits of ~0.1 s (10/s)
    code = code.replace("status = limiter.acquire(tokens=1, wait=True)",
                        "for _ in range(25):\n    status = limiter.acquire(tokens=1, wait=True)")
    out = run(code, """
import json
print(json.dumps(rate_limit_manager.get_limiter("api_requests").stats()))
""")
    assert (out["allowed"], out["waited"], out["rejected"]) == (20, 5, 0)
    assert 0.4 < out["total_wait_seconds"] < 0.6  # type: ignore[operator]


def test_high_rate_limit_block_rate_troubleshooting_runs_as_written() -> None:
    code = block("Troubleshooting / High Rate Limit Block Rate")
    assert 'get_limiter("service_name")' in code and "limiter.reset()" in code
    # a service that has been blocked a lot, then the entry as written
    before = """
from otelprod.rate_limiter import rate_limit_manager as _m, RateLimitConfig as _C
_lim = _m.register_limiter("service_name", _C(requests_per_second=1, burst_size=2))
for _ in range(10):
    _lim.acquire()
"""
    out = run(before + code, """
import json
print(json.dumps({"printed": stats, "available": limiter.available(),
                  "after": limiter.acquire()._asdict()}))
""")
    printed = out["printed"]["limiters"]["service_name"]  # type: ignore[index]
    assert printed["rejected"] == 8 and printed["block_rate"] == 0.8
    assert out["available"] == 2  # reset: the full allowance is back
    assert out["after"]["allowed"] is True  # type: ignore[index]


def test_full_example_limiter_use_works_without_registration() -> None:
    """The Full Example fetches "twitter_api" without registering it: the default
    config applies (with a warning) and the call goes through."""
    code = block("Integration and Usage / Full Example")
    assert 'rate_limit_manager.get_limiter("twitter_api")' in code
    snippet = """
from otelprod.rate_limiter import rate_limit_manager

def fetch_tweets():
    # Get rate limiter
    limiter = rate_limit_manager.get_limiter("twitter_api")

    # Acquire rate limit
    status = limiter.acquire(tokens=1, wait=True)

    if not status.allowed:
        raise Exception("Rate limited")

    # Fetch tweets
    return twitter_client.fetch()
"""
    assert snippet.split("def fetch_tweets():")[1].strip() in code  # verbatim from the seed
    out = run(snippet, """
import json
tweets = [fetch_tweets() for _ in range(3)]
stats = rate_limit_manager.get_limiter("twitter_api").stats()
print(json.dumps({"tweets": tweets, "stats": stats}))
""")
    assert out["tweets"] == [["tweet"]] * 3
    assert out["stats"]["allowed"] == 3  # type: ignore[index]
