"""A breaker shared through pybreaker's Redis storage, against a real redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
import time

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


# --- two processes sharing one breaker, step by step ----------------------------------------
PEER = """
import json, sys, time
from otelprod.error_handling import (
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError, add_breaker_state_listener)

url, timeout = sys.argv[1], float(sys.argv[2])
breaker = CircuitBreaker("shared", CircuitBreakerConfig(
    failure_threshold=1, success_threshold=2, half_open_max_calls=1, timeout=timeout,
    redis_url=url))
heard = []
add_breaker_state_listener(lambda c: heard.append([c.previous, c.new, c.reason]))

def fail():
    raise ConnectionError("down")

for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    out = {}
    if command == "trip":
        out["before"] = time.time()
        try:
            breaker.call(fail)
        except ConnectionError:
            pass
        out["after"] = time.time()
    elif command == "call":
        if arg:  # at this wall time: both peers call at once
            while time.time() < float(arg):
                pass
        try:
            breaker.call(lambda: None)
            out["call"] = "ran"
        except CircuitBreakerOpenError:
            out["call"] = "rejected"
    status = breaker.status()
    out.update(state=status["state"], opened_at=status["opened_at"],
               retry_after=status["retry_after"], heard=heard[:])
    heard.clear()
    print(json.dumps(out), flush=True)
"""


class Peer:
    """A process with its own breaker on the shared Redis state, driven line by line."""

    def __init__(self, url: str, timeout: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER, url, str(timeout)], env=python_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def reply(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"peer exited with {self.proc.wait(10)}"
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.send(command)
        return self.reply()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def peers(redis_server):
    pair = [Peer(redis_server, 0.5), Peer(redis_server, 0.5)]
    yield pair
    for peer in pair:
        peer.close()


def wait_out_the_open_period(status: dict) -> None:
    time.sleep((status["retry_after"] or 0) + 0.05)


def test_trials_in_two_processes_add_up_and_close_the_breaker(peers):
    a, b = peers
    assert a.ask("state")["state"] == b.ask("state")["state"] == "closed"
    tripped = a.ask("trip")
    assert b.ask("state")["state"] == "open"  # b now caches the open state
    wait_out_the_open_period(tripped)
    first = a.ask("call")
    assert (first["call"], first["state"]) == ("ran", "half_open")
    assert first["heard"] == [["open", "half_open", "timeout_elapsed"]]
    second = b.ask("call")  # b notices half-open without resetting a's success
    assert (second["call"], second["state"]) == ("ran", "closed")
    assert second["heard"] == [["open", "half_open", "shared_state"],
                               ["half_open", "closed", "success_threshold"]]
    assert a.ask("state")["heard"] == [["half_open", "closed", "shared_state"]]


def test_one_process_makes_the_half_open_transition_when_both_call_at_once(peers):
    a, b = peers
    for _ in range(3):
        tripped = a.ask("trip")
        assert b.ask("state")["state"] == "open"
        wait_out_the_open_period(tripped)
        at = time.time() + 0.2
        for peer in peers:
            peer.send(f"call {at}")
        replies = [peer.reply() for peer in peers]
        assert [r["call"] for r in replies] == ["ran", "ran"]  # one trial each
        heard = [h for r in replies for h in r["heard"]] + [
            h for peer in peers for h in peer.ask("state")["heard"]]
        assert sorted(h[2] for h in heard if h[:2] == ["open", "half_open"]) == [
            "shared_state", "timeout_elapsed"]  # exactly one process made it
        assert a.ask("state")["state"] == b.ask("state")["state"] == "closed"


def test_the_open_time_is_shared_exactly(peers):
    a, b = peers
    tripped = a.ask("trip")
    assert tripped["before"] <= tripped["opened_at"] <= tripped["after"]  # not whole seconds
    assert b.ask("state")["opened_at"] == tripped["opened_at"]
