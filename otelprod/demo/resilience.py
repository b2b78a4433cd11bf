"""Demo scene: a flaky dependency, and what retries, a breaker, fallbacks and the
dead-letter queue make of it. Every step shows up as span events in Jaeger."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from otelprod._telemetry import tracer
from otelprod.error_handling import (
    CircuitBreakerConfig,
    DeadLetterItem,
    DeadLetterQueue,
    ErrorSeverity,
    RetryConfig,
    circuit_breaker,
    error_handler,
    with_circuit_breaker,
    with_fallback,
    with_retry,
)

TITLE = "resilience: retries, a circuit breaker, fallbacks, dead letters"


class FlakyInventory:
    """A fake stock service: blips now and then, or is down altogether."""

    def __init__(self) -> None:
        self.down = False
        self.blips = 0  # the next N calls fail, then it answers again
        self.calls = 0

    def reserve(self, sku: str, qty: int) -> dict[str, Any]:
        self.calls += 1
        time.sleep(0.002)
        if self.down:
            raise ConnectionError("inventory service unreachable")
        if self.blips:
            self.blips -= 1
            raise TimeoutError("inventory service timed out")
        return {"sku": sku, "reserved": qty}


def run(out) -> None:  # type: ignore[no-untyped-def]
    inventory = FlakyInventory()
    with tempfile.TemporaryDirectory(prefix="otelprod-demo-") as scratch:
        queue = DeadLetterQueue(Path(scratch) / "dead_letter.db", name="demo")
        breaker = circuit_breaker("demo.inventory", CircuitBreakerConfig(
            failure_threshold=3, success_threshold=2, timeout=0.5, half_open_timeout=5))
        breaker.reset()

        @with_fallback({"reserved": 0, "degraded": True}, name="demo.reserve")
        @with_circuit_breaker(breaker)
        @with_retry(RetryConfig(max_attempts=3, base_delay=0.01, max_delay=0.05,
                                dead_letter=queue, name="demo.inventory.reserve"))
        def reserve(sku: str, qty: int) -> dict[str, Any]:
            return inventory.reserve(sku, qty)

        def order(n: int) -> dict[str, Any]:
            with tracer.start_as_current_span("reserve stock", attributes={"order.id": n}):
                return reserve(f"sku-{n}", 1 + n % 3)

        inventory.blips = 2
        result = order(1)
        out.step(f"blip: 2 timeouts retried, then reserved {result['reserved']} "
                 f"(breaker {breaker.state})")

        inventory.down = True
        degraded = [order(n) for n in range(2, 7)]
        out.step(f"outage: {sum(r.get('degraded', False) for r in degraded)} orders answered by "
                 f"the fallback; breaker {breaker.state}; {queue.count()} dead letters")

        try:
            inventory.reserve("sku-x", 1)
        except ConnectionError as exc:
            with tracer.start_as_current_span("nightly sync"):
                error_handler.handle_error(exc, context="demo.inventory_sync",
                                           severity=ErrorSeverity.HIGH,
                                           additional_info={"sku": "sku-x"})
        out.step("a handled error: exception on the span, an ERROR log record, errors.handled")

        inventory.down = False
        time.sleep(0.55)  # the breaker's timeout: the next calls are half-open trials
        recovered = [order(n) for n in range(7, 9)]
        out.step(f"recovered: {len(recovered)} trial calls succeeded; breaker {breaker.state}")

        def redeliver(item: DeadLetterItem) -> Any:
            return inventory.reserve(*item.payload["args"], **item.payload["kwargs"])

        with tracer.start_as_current_span("replay dead letters"):
            results = queue.replay(redeliver)
        out.step(f"replayed {sum(r.success for r in results)} of {len(results)} dead letters; "
                 f"{queue.count()} left")
        queue.close()
