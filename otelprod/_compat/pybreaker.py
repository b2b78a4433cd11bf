"""pybreaker's private parts that otelprod's breakers use, all in one place.

pybreaker 1.4 has no public way to:

- take the lock its own transitions take (``CircuitBreaker._lock``): our state
  changes must nest with pybreaker's, or a listener that reads the state from
  inside a transition would deadlock against a thread holding a second lock;
- read the cached state object without pybreaker's unlocked refresh
  (``CircuitBreaker._state``; the refresh is the race of issue 17, item 2);
- install a state that another process set in shared storage without the side
  effects of a transition (``_create_new_state(..., notify=False)``; a
  transition resets the shared counters, so two processes noticing half-open
  would wipe each other's trial successes);
- reach the Redis client and key names of a ``CircuitRedisStorage``
  (``_redis``, ``_namespace``) for the atomic open -> half-open transition.

``tests/test_compat_pybreaker.py`` checks each entry of ``PRIVATE`` against the
installed pybreaker and names the attribute when an upgrade breaks it.
"""

from __future__ import annotations

import threading
from typing import Any

import pybreaker

#: every private attribute used below -> what otelprod relies on it being
PRIVATE: dict[str, str] = {
    "CircuitBreaker._lock": "a re-entrant lock that open(), close(), half_open() "
                            "and the state setter hold while they change the state",
    "CircuitBreaker._state": "the cached state object (a CircuitBreakerState whose name "
                             "is the state's name)",
    "CircuitBreaker._create_new_state": "(new_state, prev_state=None, notify=False) -> a state "
                                        "object; with notify=False it neither touches the "
                                        "storage nor calls the listeners",
    "CircuitRedisStorage._redis": "the redis client the storage was created with",
    "CircuitRedisStorage._namespace": "(key) -> the full Redis key under which the storage "
                                      "keeps that value ('state', 'opened_at', ...)",
}


def lock(breaker: pybreaker.CircuitBreaker) -> Any:
    """The re-entrant lock pybreaker's own transitions hold."""
    return breaker._lock


def renew_lock(breaker: pybreaker.CircuitBreaker) -> None:
    """A fresh lock, for a forked child whose parent may have held the old one."""
    breaker._lock = threading.RLock()


def cached_state(breaker: pybreaker.CircuitBreaker) -> pybreaker.CircuitBreakerState:
    """The state object pybreaker caches, read without its unlocked refresh."""
    return breaker._state


def install_state(breaker: pybreaker.CircuitBreaker, name: str
                  ) -> tuple[pybreaker.CircuitBreakerState, pybreaker.CircuitBreakerState]:
    """Cache a state object for ``name`` with no side effects; (old, new). Hold the lock."""
    old = breaker._state
    new = breaker._create_new_state(name, prev_state=old, notify=False)
    breaker._state = new
    return old, new


def redis_client(storage: pybreaker.CircuitRedisStorage) -> Any:
    return storage._redis


def redis_key(storage: pybreaker.CircuitRedisStorage, key: str) -> str:
    return storage._namespace(key)
