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

And a Redis that is gone or stalled must cost a call little and say so little:

- the client otelprod creates (:func:`redis_storage`) has connect and socket
  timeouts and at most one immediate retry (redis-py's defaults, a 5 s
  timeout and ten retries with backoff, blocked a breaker call 6 to 15 s);
- pybreaker's storage logs every Redis error with a traceback, several per
  call; its logger is replaced by :class:`QuietLog`: one line per outage,
  then at most one a minute with the count (also for the storage's own
  warnings here).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pybreaker

from otelprod._compat import pybreaker as compat

_log = logging.getLogger("otelprod.error_handling")

#: seconds a Redis failure of one breaker stays quiet after it was said
SAY_AGAIN_AFTER_S = 60.0


def redis_storage(url: str, namespace: str, timeout: float) -> pybreaker.CircuitRedisStorage:
    """pybreaker's Redis storage on a client that never blocks a call for long."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # one immediate retry after a dropped connection (a pooled one gone stale when Redis
    # restarted); none after a timeout: a stalled Redis would only stall the call twice
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
    return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=namespace)


class QuietLog:
    """Stands in for a logger on the Redis path: the first failure is said in one
    line (no traceback), then at most once a minute with the count in between."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self._clock = clock
        self._lock = threading.Lock()
        self._said_at: float | None = None
        self._since = 0

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        error = sys.exc_info()[1]
        text = msg % args if args else msg
        if error is not None:
            text = f"{text} ({type(error).__name__}: {error})"
        self.say(text)

    error = warning = exception

    def say(self, text: str) -> None:
        now = self._clock()
        with self._lock:
            if self._said_at is not None and now - self._said_at < SAY_AGAIN_AFTER_S:
                self._since += 1
                return
            repeats, self._since, self._said_at = self._since, 0, now
        more = f"; {repeats} more Redis failures in the last minute" if repeats else ""
        _log.warning("%s: Redis failed: %s%s", self.what, text, more)


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
        self.log = QuietLog(f"circuit breaker storage {self.keys['state'].rsplit(':', 1)[0]}")
        # pybreaker's storage logs every Redis error with a traceback: a logger of our own
        storage.logger = self.log  # type: ignore[assignment]

    def opened_at(self) -> float | None:
        try:
            whole, exact = self.redis.mget(self.keys["opened_at"], self.keys["opened_at_exact"])
        except Exception:
            self.log.exception("reading the open time failed")
            return None
        return _open_time(whole, exact)

    def set_opened_at(self, now: float) -> None:
        super().set_opened_at(now)  # pybreaker's whole seconds, for plain pybreaker processes
        try:
            self.redis.set(self.keys["opened_at_exact"], repr(now))
        except Exception:
            self.log.exception("writing the open time failed")

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
            self.log.exception("the half-open transition failed")
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
