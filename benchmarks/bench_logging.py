"""Logging benchmarks: one structured JSON log call, against two anchors in one run.

The call: a JSON line with trace context (inside a recording SDK span), one
context field and three keyword fields, scrubbed. Anchors:

* structlog with ``JSONRenderer`` (contextvars merged, level, ISO UTC
  timestamp and an OTel trace-id processor, so the lines carry the same
  information), written synchronously;
* a plain stdlib ``logging`` call with the default formatter, three
  ``extra=`` fields, written synchronously.

All write to a discarding stream. otelprod takes what the line needs in the
caller and formats and writes it in a background thread, so its cost is
measured three ways, each against the anchor measured the same way:

* the caller's cost: CPU time of the logging thread (``time.thread_time``);
  what a request pays, the writer's work aside;
* the whole cost: CPU time of the process (both threads), including a flush
  per round, so the writer's formatting and writing are counted;
* wall time including the flush: on a busy machine this also counts waiting
  for the CPU and for the GIL between the two threads.

The OTLP bridge's rows (a ``logging`` call exported over OTLP) are in
``bench_init``, which runs ``otelprod.init()`` against a loopback receiver.

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


class Cost:
    """Per-call µs of a function, measured three ways (see the module docstring)."""

    def __init__(self) -> None:
        self.caller: list[float] = []
        self.whole: list[float] = []
        self.wall: list[float] = []

    def measure(self, fn: Callable[[], object], number: int,
                after: Callable[[], object] | None = None) -> None:
        gc.collect()
        wall, process, thread = time.perf_counter(), time.process_time(), time.thread_time()
        for _ in range(number):
            fn()
        caller = time.thread_time() - thread
        if after is not None:
            after()
        self.caller.append(caller / number * 1e6)
        self.whole.append((time.process_time() - process) / number * 1e6)
        self.wall.append((time.perf_counter() - wall) / number * 1e6)

    def median(self, which: str) -> float:
        return statistics.median(getattr(self, which))


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
    ours_cost, plain_cost, slog_cost = Cost(), Cost(), Cost()
    set_context(user_id="u-1")
    structlog.contextvars.bind_contextvars(user_id="u-1")
    try:
        with tracer.start_as_current_span("request"):
            for fn in (ours, plain, with_structlog):
                fn()  # warm up
            flush_logging()
            for _ in range(rounds):  # interleaved, so machine noise hits all alike
                ours_cost.measure(ours, number, after=flush_logging)
                plain_cost.measure(plain, number)
                slog_cost.measure(with_structlog, number)
    finally:
        clear_context()
        structlog.contextvars.clear_contextvars()
    return [
        Result("JSON log call + trace ctx + 3 fields: caller CPU", "µs/call",
               ours_cost.median("caller"), "structlog JSONRenderer", slog_cost.median("caller"),
               "<= 1.0x", note="CPU of the logging thread; scrubbed"),
        Result("JSON log call: whole cost, CPU incl. the writer", "µs/call",
               ours_cost.median("whole"), "structlog JSONRenderer", slog_cost.median("whole"),
               "<= 3x", note="process CPU, formatting and writing in the background thread"),
        Result("JSON log call: whole cost, CPU incl. the writer", "µs/call",
               ours_cost.median("whole"), "stdlib logging, default fmt",
               plain_cost.median("whole"), "", note="the stdlib line has no JSON, no trace ids"),
        Result("JSON log call: wall time incl. the writer", "µs/call", ours_cost.median("wall"),
               "structlog JSONRenderer", slog_cost.median("wall"), "",
               note="also counts waiting for the CPU and the GIL"),
    ]


if __name__ == "__main__":
    print_table(run())
