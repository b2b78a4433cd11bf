"""A breaker shared through pybreaker's Redis storage, against a real redis-server."""

from __future__ import annotations

import json

import pytest

from otelprod.error_handling import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError
from tests.conftest import python_env, run_python

pytestmark = pytest.mark.redis

CHILD = """
import json, sys
from otelprod.error_handling import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError
cfg = CircuitBreakerConfig(failure_threshold=2, timeout=600, redis_url=sys.argv[1])
b = CircuitBreaker("payments", cfg)
out = {"before": b.state}
if sys.argv[2] == "trip":
    def fail():
        raise ConnectionError("payments down")
    for _ in range(2):
        try:
            b.call(fail)
        except ConnectionError:
            pass
ran = []
try:
    b.call(ran.append, 1)
    out["call"] = "ran"
except CircuitBreakerOpenError as exc:
    out["call"] = "rejected"
    out["retry_after"] = exc.retry_after
out["after"] = b.state
print(json.dumps(out))
"""


def child(url: str, action: str) -> dict:
    code = f"import sys; sys.argv = ['child', {url!r}, {action!r}]\n" + CHILD
    result = run_python(code, env=python_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_processes_see_one_breaker_open(redis_server):
    first = child(redis_server, "trip")
    assert first == {"before": "closed", "call": "rejected", "after": "open",
                     "retry_after": pytest.approx(600, abs=2)}

    second = child(redis_server, "look")
    assert second["before"] == "open"
    assert second["call"] == "rejected"

    # this process sees it too, and closing it here closes it for everyone
    here = CircuitBreaker("payments", CircuitBreakerConfig(failure_threshold=2, timeout=600,
                                                           redis_url=redis_server))
    assert here.state == "open"
    with pytest.raises(CircuitBreakerOpenError):
        here.call(lambda: None)
    here.reset()
    third = child(redis_server, "look")
    assert third == {"before": "closed", "call": "ran", "after": "closed"}
    assert here.status()["storage"] == "redis"


def test_state_lives_under_the_breaker_namespace(redis_server):
    import redis

    b = CircuitBreaker("inventory", CircuitBreakerConfig(failure_threshold=1,
                                                         redis_url=redis_server))
    with pytest.raises(ConnectionError):
        b.call(_fail)
    client = redis.Redis.from_url(redis_server)
    assert client.get("otelprod:inventory:pybreaker:state") == b"open"


def _fail() -> None:
    raise ConnectionError("down")
