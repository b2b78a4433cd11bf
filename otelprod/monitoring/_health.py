"""Health checks: sync or async, each with a timeout, none able to hang its caller.

Every check runs on a bounded pool of daemon threads and the caller waits at
most the check's timeout. A run still in flight is joined rather than started
again, so a check that hangs occupies one thread, not one per probe. The
``health.check.status`` gauge reads the last results; it never runs a check
itself, so a hung check cannot stall a metrics export either.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from otelprod import _forks, _telemetry, semconv
from otelprod.monitoring._model import STATUS_RANK, HealthCheckResult, HealthStatus
from otelprod.monitoring._pool import DaemonPool, PoolUnavailable

_log = logging.getLogger("otelprod.monitoring")

#: what a check may return (or an awaitable of it)
CheckFunction = Callable[[], Any]
#: fn(name, previous status, new result, critical) on every status change
StatusListener = Callable[[str, HealthStatus, HealthCheckResult, bool], None]

DEFAULT_TIMEOUT = 5.0
DEFAULT_INTERVAL = 30.0
MAX_WORKERS = 8


@dataclass
class _Check:
    name: str
    fn: Callable[[], Any]
    timeout: float
    critical: bool
    interval: float
    is_async: bool
    description: str = ""
    last: HealthCheckResult | None = None
    last_run: float = -math.inf  # monotonic
    inflight: Future[HealthCheckResult] | None = None
    inflight_since: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _positive(name: str, key: str, value: Any, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 < value <= upper):
        raise ValueError(
            f"health check {name!r}: {key} must be a number of seconds in (0, {upper:g}], "
            f"got {type(value).__name__} {value!r}")
    return float(value)


def normalise(name: str, raw: Any, elapsed_ms: float) -> HealthCheckResult:
    """Turn whatever a check returned into a :class:`HealthCheckResult`.

    Accepted: a result, a bool, a status (or its string), a ``(status,
    message)`` or ``(status, message, metadata)`` tuple, or None (a check that
    returned without raising is healthy).
    """
    if isinstance(raw, HealthCheckResult):
        if not raw.response_time_ms:
            raw.response_time_ms = elapsed_ms
        if not raw.component:
            raw.component = name
        return raw
    status, message, metadata = HealthStatus.HEALTHY, "", {}
    try:
        if raw is None or raw is True:
            pass
        elif raw is False:
            status, message = HealthStatus.UNHEALTHY, "check returned False"
        elif isinstance(raw, (HealthStatus, str)):
            status = HealthStatus.coerce(raw)
        elif isinstance(raw, tuple) and 1 <= len(raw) <= 3:
            status = (HealthStatus.HEALTHY if raw[0] is True else
                      HealthStatus.UNHEALTHY if raw[0] is False else HealthStatus.coerce(raw[0]))
            message = str(raw[1]) if len(raw) > 1 else ""
            metadata = dict(raw[2]) if len(raw) > 2 else {}
        else:
            raise TypeError(f"got {type(raw).__name__}")
    except (TypeError, ValueError) as exc:
        status = HealthStatus.UNHEALTHY
        message = (f"check returned an unsupported value ({exc}); return a HealthCheckResult, "
                   "a bool, a HealthStatus or a (status, message) tuple")
    return HealthCheckResult(name, status, message, elapsed_ms, metadata)


def _from_exception(name: str, exc: BaseException, elapsed_ms: float) -> HealthCheckResult:
    text = _telemetry.truncate(str(exc), 300)
    return HealthCheckResult(
        name, HealthStatus.UNHEALTHY,
        f"check raised {type(exc).__name__}: {text}" if text else
        f"check raised {type(exc).__name__}",
        elapsed_ms, {"error.type": type(exc).__qualname__})


class HealthChecker:
    """Registry and runner of health checks.

    ``critical`` checks decide readiness: one of them UNHEALTHY makes the
    overall status UNHEALTHY. A non-critical check can at worst make the
    overall status DEGRADED.
    """

    def __init__(self, *, max_workers: int = MAX_WORKERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._checks: dict[str, _Check] = {}
        self._lock = threading.RLock()
        self._listeners: list[StatusListener] = []
        self._pool = DaemonPool(max_workers, "otelprod-health")
        self._clock = clock
        self._scheduler: threading.Thread | None = None
        self._stop = threading.Event()
        _checkers.add(self)
        _forks.register(self, after_in_child=HealthChecker._after_fork)

    # --- registry ---------------------------------------------------------------
    def register_check(self, name: str, check: CheckFunction, *, timeout: float = DEFAULT_TIMEOUT,
                       critical: bool = True, interval: float | None = None,
                       description: str = "") -> None:
        """Register (or replace) the check ``name``.

        ``check`` is a plain or ``async`` function of no arguments. ``interval``
        is how often the background runner re-runs it once monitoring has
        started (default 30 s); ``timeout`` bounds every run.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise ValueError(f"health check name: expected a non-empty str of at most 255 "
                             f"characters, got {type(name).__name__} {name!r}")
        if not callable(check):
            raise TypeError(f"health check {name!r}: check must be callable, "
                            f"got {type(check).__name__}")
        if not isinstance(critical, bool):
            raise TypeError(f"health check {name!r}: critical must be a bool, "
                            f"got {type(critical).__name__}")
        entry = _Check(
            name=name, fn=check, timeout=_positive(name, "timeout", timeout, 3600),
            critical=critical,
            interval=DEFAULT_INTERVAL if interval is None else _positive(
                name, "interval", interval, 86400),
            is_async=inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(
                type(check).__call__),
            description=description)
        with self._lock:
            self._checks[name] = entry

    def unregister_check(self, name: str) -> bool:
        with self._lock:
            return self._checks.pop(name, None) is not None

    def has_check(self, name: str) -> bool:
        return name in self._checks

    @property
    def check_names(self) -> list[str]:
        with self._lock:
            return list(self._checks)

    def is_critical(self, name: str) -> bool:
        check = self._checks.get(name)
        return bool(check and check.critical)

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(name, previous, result, critical)`` whenever a check's status changes."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_status_listener(self, listener: StatusListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # --- running --------------------------------------------------------------------
    def _call(self, check: _Check) -> HealthCheckResult:
        """Runs on a pool thread."""
        started = time.perf_counter()
        try:
            raw = asyncio.run(check.fn()) if check.is_async else check.fn()
            if inspect.isawaitable(raw):  # a sync function that returned a coroutine
                raw = asyncio.run(_await(raw))
            return normalise(check.name, raw, (time.perf_counter() - started) * 1000)
        except Exception as exc:
            return _from_exception(check.name, exc, (time.perf_counter() - started) * 1000)

    def _start(self, check: _Check) -> tuple[Future[HealthCheckResult], float]:
        """The run in flight for ``check`` (joined, not doubled) and when it started."""
        with check.lock:
            if check.inflight is None or check.inflight.done():
                check.inflight_since = self._clock()
                try:
                    check.inflight = self._pool.submit(lambda: self._call(check))
                except PoolUnavailable:  # at interpreter exit: the check cannot run now
                    check.inflight = Future()
                    check.inflight.set_result(HealthCheckResult(
                        check.name, HealthStatus.UNKNOWN, "not run: the process is exiting"))
            return check.inflight, check.inflight_since

    def _wait(self, check: _Check, future: Future[HealthCheckResult], since: float,
              deadline: float) -> HealthCheckResult:
        try:
            result = future.result(timeout=max(0.0, deadline - self._clock()))
        except FutureTimeout:
            running = self._clock() - since
            result = HealthCheckResult(
                check.name, HealthStatus.UNHEALTHY,
                f"check timed out after {check.timeout:g}s (running for {running:.1f}s)",
                check.timeout * 1000, {"timeout_s": check.timeout, "timed_out": True})
        except CancelledError:  # pragma: no cover - nothing cancels a shared run
            result = HealthCheckResult(check.name, HealthStatus.UNHEALTHY, "check was cancelled")
        return result

    def _unknown(self, name: str) -> HealthCheckResult:
        names = self.check_names
        return HealthCheckResult(
            name, HealthStatus.UNKNOWN,
            f"no health check is registered as {name!r} (registered: "
            f"{', '.join(sorted(names)) or 'none'})", 0.0, {"registered": sorted(names)})

    def run_check(self, name: str) -> HealthCheckResult:
        """Run one check now and return its result, waiting at most its timeout.

        An unregistered ``name`` gives an UNKNOWN result that lists the
        registered checks, which is what a troubleshooting session wants.
        """
        check = self._checks.get(name)
        if check is None:
            return self._unknown(name)
        future, since = self._start(check)
        result = self._wait(check, future, since, since + check.timeout)
        self._store(check, result)
        return result

    def run_all(self, names: Iterable[str] | None = None) -> dict[str, HealthCheckResult]:
        """Run checks concurrently; the whole call takes at most the longest timeout."""
        with self._lock:
            checks = [self._checks[n] for n in (names if names is not None else self._checks)
                      if n in self._checks]
        started = [(check, *self._start(check)) for check in checks]
        results: dict[str, HealthCheckResult] = {}
        for check, future, since in started:
            result = self._wait(check, future, since, since + check.timeout)
            self._store(check, result)
            results[check.name] = result
        return results

    async def arun_check(self, name: str) -> HealthCheckResult:
        """Like :meth:`run_check`, awaited: async checks run on the caller's event loop."""
        check = self._checks.get(name)
        if check is None:
            return self._unknown(name)
        if check.is_async:
            result = await self._run_on_loop(check)
        else:
            future, since = self._start(check)
            wrapped = asyncio.wrap_future(future)
            # asyncio.wait, unlike wait_for, never cancels the shared run on timeout
            await asyncio.wait({wrapped}, timeout=max(0.0, since + check.timeout - self._clock()))
            # never cancel ``wrapped``: that would cancel a run still queued for others
            result = self._wait(check, future, since, since + check.timeout)
        self._store(check, result)
        return result

    async def arun_all(self) -> dict[str, HealthCheckResult]:
        names = self.check_names
        results = await asyncio.gather(*(self.arun_check(n) for n in names))
        return dict(zip(names, results, strict=True))

    async def _run_on_loop(self, check: _Check) -> HealthCheckResult:
        started = time.perf_counter()
        try:
            raw = await asyncio.wait_for(check.fn(), check.timeout)
            return normalise(check.name, raw, (time.perf_counter() - started) * 1000)
        except asyncio.TimeoutError:
            return HealthCheckResult(
                check.name, HealthStatus.UNHEALTHY, f"check timed out after {check.timeout:g}s",
                check.timeout * 1000, {"timeout_s": check.timeout, "timed_out": True})
        except Exception as exc:
            return _from_exception(check.name, exc, (time.perf_counter() - started) * 1000)

    def _store(self, check: _Check, result: HealthCheckResult) -> None:
        with check.lock:
            previous = check.last.status if check.last is not None else HealthStatus.UNKNOWN
            check.last = result
            check.last_run = self._clock()
        try:
            _duration.record(result.response_time_ms / 1000,
                                  {semconv.HEALTH_CHECK_NAME: check.name})
        except Exception:  # telemetry trouble is never the caller's
            pass
        if previous is not result.status and self._checks.get(check.name) is check:
            for listener in list(self._listeners):
                try:
                    listener(check.name, previous, result, check.critical)
                except Exception:
                    _log.exception("health status listener %r failed", listener)

    # --- reading ----------------------------------------------------------------
    def last_results(self) -> dict[str, HealthCheckResult | None]:
        """The latest result of every check (None if it never ran); runs nothing."""
        with self._lock:
            return {name: c.last for name, c in self._checks.items()}

    def overall_status(self, results: dict[str, HealthCheckResult | None] | None = None
                       ) -> HealthStatus:
        """The worst status, where a non-critical check can only degrade.

        An UNKNOWN non-critical check (one that cannot tell yet) is ignored.
        """
        if results is None:
            results = self.last_results()
        worst = HealthStatus.HEALTHY
        for name, result in results.items():
            status = result.status if result is not None else HealthStatus.UNKNOWN
            if not self.is_critical(name):
                if status is HealthStatus.UNKNOWN:
                    continue
                if status is HealthStatus.UNHEALTHY:
                    status = HealthStatus.DEGRADED
            if STATUS_RANK[status] > STATUS_RANK[worst]:
                worst = status
        return worst

    def get_overall_status(self) -> HealthStatus:
        """The overall status after running every check (the seed's name)."""
        return self.overall_status(dict(self.run_all()))

    def failing_critical(self, results: dict[str, HealthCheckResult | None]) -> list[str]:
        return sorted(n for n, r in results.items()
                      if self.is_critical(n) and r is not None
                      and r.status is HealthStatus.UNHEALTHY)

    def _observe(self, options: CallbackOptions) -> Iterator[Observation]:
        with self._lock:
            snapshot = [(c.name, c.last) for c in self._checks.values()]
        for name, last in snapshot:
            current = last.status if last is not None else HealthStatus.UNKNOWN
            for status in HealthStatus:
                yield Observation(1 if status is current else 0, {
                    semconv.HEALTH_CHECK_NAME: name, semconv.HEALTH_STATUS: status.value})

    # --- background runner ---------------------------------------------------------
    def start(self) -> None:
        """Re-run each check every ``interval`` seconds in a daemon thread (idempotent)."""
        with self._lock:
            if self._scheduler is not None and self._scheduler.is_alive():
                return
            self._stop = threading.Event()
            self._scheduler = threading.Thread(target=self._schedule, args=(self._stop,),
                                               daemon=True, name="otelprod-health-scheduler")
            self._scheduler.start()

    def stop(self, timeout: float = 1.0) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._stop.set()
        if scheduler is not None and scheduler is not threading.current_thread():
            scheduler.join(timeout)

    def _after_fork(self) -> None:
        """In a forked child: the parent's threads are gone, and so are its runs in flight."""
        was_running = self._scheduler is not None and not self._stop.is_set()
        self._lock = threading.RLock()
        for check in self._checks.values():
            check.lock = threading.Lock()
            check.inflight = None
        self._scheduler = None
        if was_running:  # a pre-fork server's worker keeps its periodic checks
            self.start()

    def _schedule(self, stop: threading.Event) -> None:
        while not stop.is_set():
            now = self._clock()
            with self._lock:
                due = [c.name for c in self._checks.values() if now - c.last_run >= c.interval]
                upcoming = [c.last_run + c.interval - now for c in self._checks.values()]
            if due:
                try:
                    self.run_all(due)
                except Exception:  # pragma: no cover - run_all does not raise
                    _log.exception("background health checks failed")
                continue
            stop.wait(min([1.0, *upcoming]) if upcoming else 1.0)


# One instrument each per process, whatever the number of checkers: the SDK hands
# a second registration of an observable instrument the first one's callbacks.
_checkers: weakref.WeakSet[HealthChecker] = weakref.WeakSet()


def _observe_all(options: CallbackOptions) -> Iterator[Observation]:
    for checker in list(_checkers):
        yield from checker._observe(options)


_duration = _telemetry.duration_histogram(semconv.METRIC_HEALTH_CHECK_DURATION,
                                          "Time one health check took.")
_telemetry.meter.create_observable_gauge(
    semconv.METRIC_HEALTH_CHECK_STATUS, callbacks=[_observe_all], unit="{status}",
    description="1 for the current status of each health check, 0 for the others.")


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
