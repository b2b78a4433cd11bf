"""The private parts of pybreaker that otelprod/_compat/pybreaker.py uses are still there.

Each check fails with a message naming the attribute, so that a pybreaker
upgrade that removes or changes one says exactly what to fix.
"""

from __future__ import annotations

import inspect
import threading

import pybreaker
import pytest
import redis

from otelprod._compat import pybreaker as compat

FIX = "otelprod/_compat/pybreaker.py relies on it (see PRIVATE there)"


def need(owner: object, attribute: str) -> object:
    qualified = f"pybreaker.{type(owner).__name__}.{attribute}"
    assert hasattr(owner, attribute), (
        f"{qualified} is gone in pybreaker {pybreaker_version()}: {FIX}")
    return getattr(owner, attribute)


def pybreaker_version() -> str:
    from importlib.metadata import version

    return version("pybreaker")


def test_every_private_attribute_is_checked_here():
    checked = {"CircuitBreaker._lock", "CircuitBreaker._state",
               "CircuitBreaker._create_new_state", "CircuitRedisStorage._redis",
               "CircuitRedisStorage._namespace"}
    assert set(compat.PRIVATE) == checked, "a private access without a check below"


def test_lock_is_the_reentrant_lock_that_transitions_hold():
    breaker = pybreaker.CircuitBreaker()
    lock = need(breaker, "_lock")
    assert lock is compat.lock(breaker)
    with lock, lock:  # re-entrant: our state changes nest with pybreaker's
        pass
    opened = threading.Event()

    def open_it() -> None:
        breaker.open()
        opened.set()

    with lock:
        worker = threading.Thread(target=open_it)
        worker.start()
        assert not opened.wait(0.2), (
            "pybreaker.CircuitBreaker._lock: open() no longer takes it: " + FIX)
    worker.join(10)
    assert opened.is_set()


def test_state_is_the_cached_state_object():
    breaker = pybreaker.CircuitBreaker()
    state = need(breaker, "_state")
    assert isinstance(state, pybreaker.CircuitBreakerState), (
        f"pybreaker.CircuitBreaker._state is a {type(state).__name__}, "
        f"not a CircuitBreakerState: {FIX}")
    breaker.open()
    assert compat.cached_state(breaker).name == pybreaker.STATE_OPEN, (
        "pybreaker.CircuitBreaker._state no longer follows transitions: " + FIX)


def test_create_new_state_without_notify_has_no_side_effects():
    class Listener(pybreaker.CircuitBreakerListener):
        def __init__(self) -> None:
            self.changes = 0

        def state_change(self, cb: object, old: object, new: object) -> None:
            self.changes += 1

    listener = Listener()
    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    breaker = pybreaker.CircuitBreaker(state_storage=storage, listeners=[listener])
    create = need(breaker, "_create_new_state")
    params = list(inspect.signature(create).parameters)  # type: ignore[arg-type]
    assert params[:3] == ["new_state", "prev_state", "notify"], (
        f"pybreaker.CircuitBreaker._create_new_state takes {params} now: {FIX}")
    storage.increment_counter()
    storage.increment_success_counter()
    old, new = compat.install_state(breaker, pybreaker.STATE_HALF_OPEN)
    assert (old.name, new.name) == (pybreaker.STATE_CLOSED, pybreaker.STATE_HALF_OPEN)
    assert breaker._state is new
    assert (storage.counter, storage.success_counter, listener.changes) == (1, 1, 0), (
        "pybreaker.CircuitBreaker._create_new_state(notify=False) now touches the storage "
        "or the listeners: " + FIX)
    for name in (pybreaker.STATE_OPEN, pybreaker.STATE_CLOSED):
        compat.install_state(breaker, name)
    assert (storage.counter, storage.success_counter, listener.changes) == (1, 1, 0)


@pytest.mark.redis
def test_redis_storage_client_and_key_names(redis_server):
    client = redis.Redis.from_url(redis_server)
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="ns")
    assert need(storage, "_redis") is client, (
        "pybreaker.CircuitRedisStorage._redis is no longer the client it was given: " + FIX)
    need(storage, "_namespace")
    for key in ("state", "fail_counter", "success_counter"):
        assert compat.redis_key(storage, key) == f"ns:pybreaker:{key}"
        assert client.exists(compat.redis_key(storage, key)), (
            f"pybreaker.CircuitRedisStorage._namespace({key!r}) is not where the storage keeps "
            f"{key!r}: {FIX}")
    storage.state = pybreaker.STATE_OPEN
    assert client.get(compat.redis_key(storage, "state")) == b"open"


def test_renew_lock_gives_a_fresh_reentrant_lock():
    breaker = pybreaker.CircuitBreaker()
    held = compat.lock(breaker)
    held.acquire()  # as if a thread of the parent held it at fork()
    try:
        compat.renew_lock(breaker)
        fresh = compat.lock(breaker)
        assert fresh is not held
        done = threading.Event()
        worker = threading.Thread(target=lambda: (breaker.open(), done.set()))
        worker.start()
        worker.join(10)
        assert done.is_set(), "pybreaker.CircuitBreaker._lock: open() used the old lock"
    finally:
        held.release()
