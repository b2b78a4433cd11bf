"""Where a breaker's state lives: pybreaker's storages, and what their Redis one lacks.

In memory only this process changes the state, under the breaker's lock. In
Redis (pybreaker's ``CircuitRedisStorage``) several processes share it, and
pybreaker leaves two gaps that this module closes for otelprod's processes:

- the open -> half-open transition is a read-then-write: two processes that
  both see the timeout elapse both reset the shared success count, so trials
  never add up. Here it is one Redis transaction (WATCH/MULTI): one process
  makes the transition, the others only notice it;
- pybreaker stores the open time in whole seconds, truncated, so the open
  period can end up to 1 s early. Here the exact time is stored next to it
  (key ``opened_at_exact``) and read when it agrees with pybreaker's value.
  A process running plain pybreaker on the same keys writes only the whole
  seconds: a period it opened can still end up to 1 s early.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pybreaker

from otelprod._compat import pybreaker as compat

_log = logging.getLogger("otelprod.error_handling")


class StateStore:
    """The breaker's view of a pybreaker storage kept in this process."""

    shared = False

    def __init__(self, storage: pybreaker.CircuitBreakerStorage) -> None:
        self.storage = storage

    def opened_at(self) -> float | None:
        at = self.storage.opened_at
        return at.timestamp() if at is not None else None

    def set_opened_at(self, now: float) -> None:
        self.storage.opened_at = datetime.fromtimestamp(now, timezone.utc)

    def begin_half_open(self, now: float, timeout: float) -> bool:
        """Move open -> half-open in the storage (the caller holds the breaker's lock)."""
        self.storage.reset_success_counter()
        self.storage.state = pybreaker.STATE_HALF_OPEN
        return True


class RedisStateStore(StateStore):
    """A ``CircuitRedisStorage`` that other processes share."""

    shared = True

    def __init__(self, storage: pybreaker.CircuitRedisStorage) -> None:
        super().__init__(storage)
        self.redis = compat.redis_client(storage)
        self.keys = {name: compat.redis_key(storage, name) for name in (
            "state", "success_counter", "opened_at", "opened_at_exact")}

    def opened_at(self) -> float | None:
        try:
            whole, exact = self.redis.mget(self.keys["opened_at"], self.keys["opened_at_exact"])
        except Exception:
            _log.warning("reading the open time from Redis failed", exc_info=True)
            return None
        return _open_time(whole, exact)

    def set_opened_at(self, now: float) -> None:
        super().set_opened_at(now)  # pybreaker's whole seconds, for plain pybreaker processes
        try:
            self.redis.set(self.keys["opened_at_exact"], repr(now))
        except Exception:
            _log.warning("writing the open time to Redis failed", exc_info=True)

    def begin_half_open(self, now: float, timeout: float) -> bool:
        """True for the one process whose transaction made the transition."""
        import redis

        keys = self.keys
        try:
            with self.redis.pipeline() as pipe:
                pipe.watch(keys["state"], keys["opened_at"], keys["opened_at_exact"])
                state = pipe.get(keys["state"])
                opened = _open_time(pipe.get(keys["opened_at"]), pipe.get(keys["opened_at_exact"]))
                if state != pybreaker.STATE_OPEN.encode() or (
                        opened is not None and now < opened + timeout):
                    return False
                pipe.multi()
                pipe.set(keys["success_counter"], 0)
                pipe.set(keys["state"], pybreaker.STATE_HALF_OPEN)
                pipe.execute()
                return True
        except redis.WatchError:
            return False  # another process changed it first
        except redis.RedisError:
            _log.warning("the half-open transition in Redis failed", exc_info=True)
            return False


def _open_time(whole: bytes | None, exact: bytes | None) -> float | None:
    if not whole:
        return None
    seconds = int(whole)
    if exact:
        precise = float(exact)
        if int(precise) == seconds:  # written together: the exact one is ours
            return precise
    return float(seconds)


def state_store(storage: pybreaker.CircuitBreakerStorage) -> StateStore:
    if isinstance(storage, pybreaker.CircuitRedisStorage):
        return RedisStateStore(storage)
    return StateStore(storage)
