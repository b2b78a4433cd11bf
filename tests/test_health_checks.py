"""Health checks: what a check may return, timeouts, hung and failing checks, the gauges."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from otelprod import semconv
from otelprod.monitoring import HealthChecker, HealthCheckResult, HealthStatus
from tests.conftest import run_python

H, D, U, K = (HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY,
              HealthStatus.UNKNOWN)


@pytest.fixture
def checker() -> Iterator[HealthChecker]:
    c = HealthChecker()
    yield c
    c.stop()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so blocked checks end and their threads go back to the pool."""
    event = threading.Event()
    yield event
    event.set()


def test_a_check_returning_a_result_keeps_it(checker: HealthChecker) -> None:
    checker.register_check("database", lambda: HealthCheckResult(
        "database", H, "Database operational", 5.2, {"pool": 3}))
    result = checker.run_check("database")
    assert (result.component, result.status, result.message, result.response_time_ms,
            result.metadata) == ("database", H, "Database operational", 5.2, {"pool": 3})
    assert result.to_dict()["timestamp"].endswith("Z")


@pytest.mark.parametrize("returned,status,message", [
    (True, H, ""),
    (None, H, ""),
    (False, U, "check returned False"),
    (D, D, ""),
    ("unhealthy", U, ""),
    ((D, "slow replica"), D, "slow replica"),
    ((False, "no connection"), U, "no connection"),
    (("healthy", "ok", {"lag_s": 0.2}), H, "ok"),
])
def test_what_a_check_may_return(checker: HealthChecker, returned: object,
                                 status: HealthStatus, message: str) -> None:
    checker.register_check("c", lambda: returned)
    result = checker.run_check("c")
    assert (result.component, result.status, result.message) == ("c", status, message)
    assert result.response_time_ms >= 0


def test_an_unsupported_return_value_is_unhealthy_and_says_why(checker: HealthChecker) -> None:
    checker.register_check("c", lambda: 42)
    result = checker.run_check("c")
    assert result.status is U
    assert "unsupported value" in result.message and "int" in result.message


def test_a_check_that_raises_is_unhealthy_with_the_reason(checker: HealthChecker) -> None:
    def broken() -> None:
        raise ConnectionRefusedError("db:5432 refused the connection")

    checker.register_check("db", broken)
    result = checker.run_check("db")
    assert result.status is U
    assert "ConnectionRefusedError" in result.message
    assert "db:5432 refused the connection" in result.message
    assert result.metadata["error.type"] == "ConnectionRefusedError"


def test_hung_and_raising_checks_do_not_delay_the_others(
        checker: HealthChecker, release: threading.Event) -> None:
    hung_started = threading.Event()
    ran_while_hung: list[bool] = []

    def hung() -> bool:
        hung_started.set()
        release.wait(60)
        return True

    def raising() -> None:
        raise RuntimeError("boom")

    def fast() -> bool:
        # runs concurrently with the hung check: it has started and is still blocked
        ran_while_hung.append(hung_started.wait(10) and not release.is_set())
        return True

    checker.register_check("hung", hung, timeout=0.3)
    checker.register_check("raising", raising, timeout=5)
    checker.register_check("fast", fast, timeout=30)
    results = checker.run_all()

    assert not release.is_set()  # run_all came back while the hung check still hangs
    assert results["hung"].status is U
    assert "timed out after 0.3s" in results["hung"].message
    assert results["hung"].metadata["timed_out"] is True
    assert results["raising"].status is U and "RuntimeError: boom" in results["raising"].message
    assert results["fast"].status is H
    assert ran_while_hung == [True]


def test_a_hung_check_is_joined_not_started_again(
        checker: HealthChecker, release: threading.Event) -> None:
    calls = []

    def hung() -> bool:
        calls.append(1)
        release.wait(60)
        return True

    checker.register_check("hung", hung, timeout=0.2)
    first = checker.run_check("hung")
    second = checker.run_check("hung")  # the first run is still in flight
    assert first.status is U and second.status is U
    assert "running for" in second.message
    assert len(calls) == 1
    release.set()
    for _ in range(1000):  # once the in-flight run ends, the next call starts a fresh one
        result = checker.run_check("hung")
        if result.status is H:
            break
        time.sleep(0.01)
    assert result.status is H
    assert len(calls) == 2


def test_async_checks_run_from_sync_code(checker: HealthChecker) -> None:
    async def ok() -> HealthCheckResult:
        await asyncio.sleep(0)
        return HealthCheckResult("cache", H, "pong")

    async def stuck() -> bool:
        await asyncio.sleep(60)
        return True

    async def failing() -> None:
        raise TimeoutError("redis did not answer")

    checker.register_check("cache", ok)
    checker.register_check("stuck", stuck, timeout=0.2)
    checker.register_check("failing", failing)
    results = checker.run_all()
    assert results["cache"].status is H and results["cache"].message == "pong"
    assert results["stuck"].status is U and "timed out" in results["stuck"].message
    assert results["failing"].status is U and "redis did not answer" in results["failing"].message


def test_async_checks_run_on_the_callers_loop_when_awaited(checker: HealthChecker) -> None:
    loops = []

    async def check() -> bool:
        loops.append(asyncio.get_running_loop())
        return True

    async def stuck() -> bool:
        await asyncio.sleep(60)
        return True

    checker.register_check("loop", check)
    checker.register_check("stuck", stuck, timeout=0.2)
    checker.register_check("sync", lambda: (D, "sync in the pool"))

    async def main() -> tuple[asyncio.AbstractEventLoop, dict[str, HealthCheckResult]]:
        return asyncio.get_running_loop(), await checker.arun_all()

    loop, results = asyncio.run(main())
    assert loops == [loop]
    assert results["loop"].status is H
    assert results["stuck"].status is U and "timed out" in results["stuck"].message
    assert results["sync"].status is D and results["sync"].message == "sync in the pool"


def test_overall_status_non_critical_checks_only_degrade(checker: HealthChecker) -> None:
    state = {"db": H, "cache": H}
    checker.register_check("db", lambda: state["db"], critical=True)
    checker.register_check("cache", lambda: state["cache"], critical=False)
    assert checker.get_overall_status() is H
    state["cache"] = U
    assert checker.get_overall_status() is D
    state["db"] = D
    assert checker.get_overall_status() is D
    state["db"] = U
    assert checker.get_overall_status() is U
    state.update(db=H, cache=K)  # a non-critical check that cannot tell is ignored
    assert checker.get_overall_status() is H
    state["db"] = K
    assert checker.get_overall_status() is K
    assert checker.failing_critical(checker.last_results()) == []


def test_an_unregistered_check_name_gives_unknown_with_the_registered_ones(
        checker: HealthChecker) -> None:
    checker.register_check("database", lambda: True)
    result = checker.run_check("component_name")
    assert result.status is K
    assert "database" in result.message
    assert result.metadata == {"registered": ["database"]}


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"timeout": 0}, ValueError, "timeout must be a number of seconds in (0, 3600]"),
    ({"timeout": "5"}, ValueError, "got str '5'"),
    ({"interval": -1}, ValueError, "interval"),
    ({"critical": "yes"}, TypeError, "critical must be a bool"),
])
def test_bad_registrations_are_refused_clearly(checker: HealthChecker, kwargs: dict,
                                               error: type, fragment: str) -> None:
    with pytest.raises(error, match="'db'") as info:
        checker.register_check("db", lambda: True, **kwargs)
    assert fragment in str(info.value)


def test_bad_name_or_function_is_refused(checker: HealthChecker) -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        checker.register_check("", lambda: True)
    with pytest.raises(TypeError, match="check must be callable, got str"):
        checker.register_check("db", "select 1")  # type: ignore[arg-type]


def test_status_gauge_and_duration_histogram(checker: HealthChecker, telemetry) -> None:
    calls = []

    def db() -> tuple[HealthStatus, str]:
        calls.append(1)
        return D, "replica lag"

    checker.register_check("gauge-db", db)
    checker.register_check("gauge-never-run", lambda: True)
    checker.run_check("gauge-db")
    metrics = telemetry.metrics()
    assert len(calls) == 1  # collecting the gauge ran no check

    points = {(a[semconv.HEALTH_CHECK_NAME], a[semconv.HEALTH_STATUS]): p.value
              for a, p in metrics[semconv.METRIC_HEALTH_CHECK_STATUS]
              if a[semconv.HEALTH_CHECK_NAME].startswith("gauge-")}
    assert points == {
        ("gauge-db", "healthy"): 0, ("gauge-db", "degraded"): 1,
        ("gauge-db", "unhealthy"): 0, ("gauge-db", "unknown"): 0,
        ("gauge-never-run", "healthy"): 0, ("gauge-never-run", "degraded"): 0,
        ("gauge-never-run", "unhealthy"): 0, ("gauge-never-run", "unknown"): 1,
    }
    durations = [p for a, p in metrics[semconv.METRIC_HEALTH_CHECK_DURATION]
                 if a == {semconv.HEALTH_CHECK_NAME: "gauge-db"}]
    assert len(durations) == 1 and durations[0].count == 1
    assert list(durations[0].explicit_bounds) == list(semconv.DURATION_BUCKETS_S)


def test_the_gauge_callback_never_waits_for_a_hung_check(
        checker: HealthChecker, telemetry, release: threading.Event) -> None:
    checker.register_check("gauge-hung", lambda: release.wait(60), timeout=0.2)
    checker.run_check("gauge-hung")
    # the run is still blocked; collecting reads the cached timeout result
    metrics = telemetry.metrics()
    assert not release.is_set()
    current = {a[semconv.HEALTH_STATUS] for a, p in metrics[semconv.METRIC_HEALTH_CHECK_STATUS]
               if a[semconv.HEALTH_CHECK_NAME] == "gauge-hung" and p.value == 1}
    assert current == {"unhealthy"}


def test_background_runner_reruns_checks_at_their_interval(checker: HealthChecker) -> None:
    ran = threading.Semaphore(0)

    def check() -> bool:
        ran.release()
        return True

    checker.register_check("periodic", check, interval=0.05)
    checker.start()
    checker.start()  # idempotent
    assert all(ran.acquire(timeout=30) for _ in range(3))
    checker.stop()
    assert checker.last_results()["periodic"] is not None


def test_status_listeners_hear_changes_only(checker: HealthChecker) -> None:
    heard = []
    state = {"s": H}
    checker.register_check("flappy", lambda: state["s"], critical=False)
    checker.add_status_listener(lambda n, prev, res, crit: heard.append(
        (n, prev, res.status, crit)))
    checker.run_check("flappy")
    checker.run_check("flappy")
    state["s"] = U
    checker.run_check("flappy")
    checker.run_check("flappy")
    state["s"] = H
    checker.run_check("flappy")
    assert heard == [("flappy", K, H, False), ("flappy", H, U, False), ("flappy", U, H, False)]


def test_the_pool_is_bounded_runs_everything_and_never_holds_exit_up(
        release: threading.Event) -> None:
    from otelprod.monitoring._pool import DaemonPool

    pool = DaemonPool(3, "test-pool")
    blocked = [pool.submit(lambda: release.wait(60)) for _ in range(2)]
    quick = [pool.submit(lambda n=n: n * n) for n in range(20)]
    assert [f.result(timeout=30) for f in quick] == [n * n for n in range(20)]
    assert pool._threads == 3  # two blocked, one for the rest
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("test-pool"))
    release.set()
    assert all(f.result(timeout=30) for f in blocked)
    with pytest.raises(ValueError, match="max_workers"):
        DaemonPool(0, "x")


FORK = """
import os, sys, threading, time
from otelprod.monitoring import HealthChecker

release = threading.Event()
ran_in = []
checker = HealthChecker()
checker.register_check("periodic", lambda: ran_in.append(os.getpid()) or True, interval=0.05)
checker.register_check("hung", lambda: release.wait(60) if os.getpid() == parent else True,
                       timeout=0.3)
parent = os.getpid()
checker.start()
assert checker.run_check("hung").status.value == "unhealthy"  # in flight at the fork
pid = os.fork()
if pid == 0:
    ok = checker.run_check("hung").status.value == "healthy"  # not joined to a dead run
    deadline = time.monotonic() + 30
    while os.getpid() not in ran_in and time.monotonic() < deadline:
        time.sleep(0.02)
    os._exit(0 if ok and os.getpid() in ran_in else 1)
_, status = os.waitpid(pid, 0)
release.set()
print("child exit", os.waitstatus_to_exitcode(status))
"""


def test_a_forked_worker_keeps_its_periodic_checks_and_no_dead_runs() -> None:
    result = run_python(FORK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child exit 0"


def test_a_check_due_while_the_process_exits_is_unknown_not_an_error(
        checker: HealthChecker, monkeypatch: pytest.MonkeyPatch) -> None:
    """At interpreter exit Python 3.12+ starts no thread: a check that comes due then
    (the background runner keeps going until shutdown stops it) is not run, says why,
    and raises nothing."""
    ran = []
    checker.register_check("late", lambda: ran.append(1) or True)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    result = checker.run_check("late")
    assert result.status is HealthStatus.UNKNOWN
    assert "exiting" in result.message
    monkeypatch.undo()
    assert checker.run_check("late").status is HealthStatus.HEALTHY  # later runs are normal
    assert ran == [1]
