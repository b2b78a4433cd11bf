"""Resilience benchmarks: what retry + breaker cost, measured against anchors in one run.

1. Success path of span + breaker + retry around a trivial function, against
   the bare OTel SDK span alone (target <= 1.15x), and against the same span
   around plain pybreaker + plain tenacity stacked.
2. 16 threads x 10 calls of a 20 ms I/O function through one breaker, wall
   time against the same calls unguarded (target <= 1.5x); plain pybreaker
   (one lock across the call: ~16x) and plain tenacity + pybreaker as anchors.

Both sides use a real SDK TracerProvider whose span processor does nothing,
so the figures are the instrumentation's cost, not an exporter's.

    python -m benchmarks.bench_resilience
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import pybreaker
import tenacity

from benchmarks._harness import Result, compare, print_table, sdk_tracer


def _trivial() -> int:
    return 1


def success_path(quick: bool) -> list[Result]:
    from otelprod.error_handling import (
        CircuitBreaker,
        RetryConfig,
        with_circuit_breaker,
        with_retry,
    )

    tracer = sdk_tracer()
    ours_fn = with_circuit_breaker(CircuitBreaker("bench.success"))(
        with_retry(RetryConfig(max_attempts=3, base_delay=0.01))(_trivial))
    plain_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    plain_retry = tenacity.Retrying(stop=tenacity.stop_after_attempt(3),
                                    wait=tenacity.wait_exponential(multiplier=0.01), reraise=True)

    def bare() -> None:
        with tracer.start_as_current_span("op"):
            _trivial()

    def ours() -> None:
        with tracer.start_as_current_span("op"):
            ours_fn()

    def plain() -> None:
        with tracer.start_as_current_span("op"):
            plain_breaker.call(plain_retry, _trivial)

    number, rounds = (3_000, 5) if quick else (20_000, 9)
    ours_us, bare_us = compare(ours, bare, number=number, rounds=rounds)
    plain_us, bare2_us = compare(plain, bare, number=number, rounds=rounds)
    ours2_us, plain2_us = compare(ours, plain, number=number, rounds=rounds)
    return [
        Result("success path: span + breaker + retry", "µs/call", ours_us,
               "bare SDK span", bare_us, "<= 1.15x"),
        Result("success path: span + pybreaker + tenacity (plain)", "µs/call", plain_us,
               "bare SDK span", bare2_us, note="what the plain libraries cost"),
        Result("success path: span + breaker + retry", "µs/call", ours2_us,
               "span + pybreaker + tenacity", plain2_us, "< 1x"),
    ]


def _wall(call: Callable[[], object], threads: int, calls: int) -> float:
    start_line = threading.Barrier(threads + 1)

    def work() -> None:
        start_line.wait()
        for _ in range(calls):
            call()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    start_line.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def concurrency(quick: bool) -> list[Result]:
    from otelprod.error_handling import (
        CircuitBreaker,
        RetryConfig,
        with_circuit_breaker,
        with_retry,
    )

    sdk_tracer()
    threads, calls, io_s = (16, 2, 0.01) if quick else (16, 10, 0.02)

    def io() -> int:
        time.sleep(io_s)
        return 1

    ours_fn = with_circuit_breaker(CircuitBreaker("bench.io"))(
        with_retry(RetryConfig(max_attempts=3, base_delay=0.01))(io))
    breaker_only = CircuitBreaker("bench.io.only")
    plain_breaker = pybreaker.CircuitBreaker()
    plain_retry = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), reraise=True)

    variants: dict[str, Callable[[], object]] = {
        "unguarded": io,
        "ours": ours_fn,
        "ours_breaker_only": lambda: breaker_only.call(io),
        "pybreaker": lambda: plain_breaker.call(io),
        "pybreaker+tenacity": lambda: plain_breaker.call(plain_retry, io),
    }
    rounds = 1 if quick else 3
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            times[name].append(_wall(call, threads, calls))
    med = {k: statistics.median(v) for k, v in times.items()}
    label = f"{threads} threads x {calls} x {io_s * 1000:.0f} ms I/O"
    return [
        Result(f"{label}: breaker + retry", "s wall", med["ours"], "unguarded", med["unguarded"],
               "<= 1.5x"),
        Result(f"{label}: breaker only", "s wall", med["ours_breaker_only"], "unguarded",
               med["unguarded"], "<= 1.5x"),
        Result(f"{label}: plain pybreaker", "s wall", med["pybreaker"], "unguarded",
               med["unguarded"], note="one lock across the call: serialised"),
        Result(f"{label}: breaker + retry", "s wall", med["ours"], "pybreaker + tenacity",
               med["pybreaker+tenacity"], "< 1x"),
    ]


def run(quick: bool = False) -> list[Result]:
    return success_path(quick) + concurrency(quick)


if __name__ == "__main__":
    import sys

    print_table(run(quick="--quick" in sys.argv))
