"""Demo scene: a limiter driven past its limit, waiting callers, and a queue
shedding load, so rejections and waits show up in traces and metrics."""

from __future__ import annotations

import random
import time

from otelprod._telemetry import tracer
from otelprod.demo import DemoOutput
from otelprod.rate_limiter import (
    BackpressureRejected,
    RateLimitConfig,
    RateLimitExceeded,
    RateLimitStrategy,
    rate_limit_manager,
    rate_limited,
)

TITLE = "rate limiting: rejections, waits and backpressure"


class _FlakyPartnerAPI:
    """A partner API that answers slowly, and sometimes far too slowly."""

    def __init__(self, seed: int = 7) -> None:
        self._rng = random.Random(seed)

    def lookup(self, n: int) -> dict[str, int]:
        time.sleep(self._rng.choice((0.001, 0.002, 0.02)))
        return {"id": n}


def run(out: DemoOutput) -> None:
    api = _FlakyPartnerAPI()
    limiter = rate_limit_manager.register_limiter(
        "demo.partner_api",
        RateLimitConfig(requests_per_second=20, burst_size=5,
                        strategy=RateLimitStrategy.TOKEN_BUCKET, max_wait=0.5),
    )

    @rate_limited(limiter)
    def lookup(n: int) -> dict[str, int]:
        return api.lookup(n)

    refused = 0
    with tracer.start_as_current_span("burst of lookups"):
        for n in range(15):  # 15 calls at once against a burst of 5
            try:
                lookup(n)
            except RateLimitExceeded:
                refused += 1
    out.step(f"15 lookups at once against burst 5: {15 - refused} allowed, {refused} "
             "rejected (ratelimiter.rejected events with retry_after)")

    waited = 0.0
    with tracer.start_as_current_span("patient lookups"):
        for n in range(6):  # these wait for their slot instead (20/s: ~50 ms apart)
            status = limiter.acquire(wait=True)
            waited += status.waited
            api.lookup(n)
    out.step(f"6 patient lookups waited {waited:.2f} s in total (ratelimiter.wait events, "
             "ratelimiter.wait.duration)")

    per_user = rate_limit_manager.register_limiter(
        "demo.per_user", RateLimitConfig(5, 2, RateLimitStrategy.SLIDING_WINDOW))
    users = ["ann", "bob", "ann", "ann", "bob", "ann"]
    allowed = [per_user.acquire(key=u).allowed for u in users]
    out.step("per-user sliding window (2 per 0.4 s): " + ", ".join(
        f"{u}={'ok' if a else 'no'}" for u, a in zip(users, allowed, strict=True)))

    queue = rate_limit_manager.register_backpressure(
        "demo.jobs", max_queue_size=8, high_watermark=0.75, low_watermark=0.25)
    admitted = shed = 0
    with tracer.start_as_current_span("enqueue jobs"):
        for _ in range(12):  # producers outrun the consumer
            ok, _reason = queue.should_accept()
            if ok:
                queue.add_item()
                admitted += 1
            else:
                shed += 1
        while queue.size > 1:  # the consumer catches up, down to the low watermark
            queue.remove_item()
        try:
            with queue.slot():
                api.lookup(99)
        except BackpressureRejected:  # pragma: no cover - the queue has drained
            shed += 1
    out.step(f"backpressure: {admitted} jobs admitted, {shed} shed at the high watermark "
             "(backpressure.rejections, backpressure.queue.size)")
