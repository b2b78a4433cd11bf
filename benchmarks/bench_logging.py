"""Logging benchmarks: one structured JSON log call, against two anchors in one run.

The call: a JSON line with trace context (inside a recording SDK span), one
context field and three keyword fields, scrubbed. Anchors:

* a plain stdlib ``logging`` call with the default formatter, three
  ``extra=`` fields, written synchronously;
* structlog with ``JSONRenderer`` (contextvars merged, level, ISO UTC
  timestamp and an OTel trace-id processor, so the lines carry the same
  information), written synchronously.

All three write to a discarding stream. otelprod formats in the caller and
writes in a background thread, so its figure is measured twice: the
caller's latency alone, and the full cost including a flush per round (so the
writer's work, which competes for the GIL, is counted too).

    python -m benchmarks.bench_logging
"""

from __future__ import annotations

import gc
import io
import logging
import statistics
import time
from collections.abc import Callable

from opentelemetry import trace

from benchmarks._harness import Result, print_table, sdk_tracer


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _isolated(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    return logger


def _timed(fn: Callable[[], object], number: int, after: Callable[[], object] | None = None
           ) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    if after is not None:
        after()
    return (time.perf_counter() - start) / number * 1e6


def run(quick: bool = False) -> list[Result]:
    import structlog

    from otelprod.structured_logging import (
        ObservabilitySystem,
        clear_context,
        flush_logging,
        set_context,
        setup_json_logging,
    )

    tracer = sdk_tracer()

    # otelprod: its handler on an isolated logger tree, so nothing else prints
    setup_json_logging("INFO", stream=_Discard(), logger=_isolated("bench_ours"))
    ours_logger = ObservabilitySystem("bench_ours").get_logger("mod")

    def ours() -> None:
        ours_logger.info("order placed", order_id=1234, amount=19.99, currency="EUR")

    # stdlib: the default formatter, synchronously
    plain_logger = _isolated("bench_plain")
    plain_handler = logging.StreamHandler(_Discard())
    plain_handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    plain_logger.addHandler(plain_handler)

    def plain() -> None:
        plain_logger.info("order placed", extra={"order_id": 1234, "amount": 19.99,
                                                 "currency": "EUR"})

    # structlog: JSONRenderer with the same information in the line
    def add_trace(_: object, __: str, event: dict) -> dict:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event["trace_id"] = trace.format_trace_id(ctx.trace_id)
            event["span_id"] = trace.format_span_id(ctx.span_id)
        return event

    slog = structlog.wrap_logger(
        structlog.WriteLogger(_Discard()),
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), add_trace,
                    structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )

    def with_structlog() -> None:
        slog.info("order placed", order_id=1234, amount=19.99, currency="EUR")

    number, rounds = (2_000, 3) if quick else (10_000, 7)
    caller: list[float] = []
    full: list[float] = []
    plain_us: list[float] = []
    slog_us: list[float] = []
    set_context(user_id="u-1")
    structlog.contextvars.bind_contextvars(user_id="u-1")
    try:
        with tracer.start_as_current_span("request"):
            for fn in (ours, plain, with_structlog):
                fn()  # warm up
            flush_logging()
            for _ in range(rounds):  # interleaved, so machine noise hits all alike
                caller.append(_timed(ours, number))
                flush_logging()
                full.append(_timed(ours, number, after=flush_logging))
                plain_us.append(_timed(plain, number))
                slog_us.append(_timed(with_structlog, number))
    finally:
        clear_context()
        structlog.contextvars.clear_contextvars()
    ours_caller, ours_full = statistics.median(caller), statistics.median(full)
    plain_med, slog_med = statistics.median(plain_us), statistics.median(slog_us)
    return [
        Result("JSON log call + trace ctx + 3 fields (incl. write)", "µs/call", ours_full,
               "structlog JSONRenderer", slog_med, "<= 3x",
               note="scrubbed; written by the background thread"),
        Result("JSON log call + trace ctx + 3 fields (incl. write)", "µs/call", ours_full,
               "stdlib logging, default fmt", plain_med, "",
               note="the stdlib line has no JSON, no trace ids"),
        Result("JSON log call: caller latency only", "µs/call", ours_caller,
               "structlog JSONRenderer", slog_med, "",
               note="what the logging thread waits for"),
    ]


if __name__ == "__main__":
    print_table(run())
