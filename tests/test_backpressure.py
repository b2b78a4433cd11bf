"""Backpressure: the hard limit, watermarks with hysteresis, the slot that
cannot leak, thread safety and telemetry."""

from __future__ import annotations

import json
import threading

import pytest
from opentelemetry import trace

from otelprod import semconv
from otelprod.errors import ConfigurationError
from otelprod.rate_limiter import (
    Backpressure,
    BackpressureRejected,
    RateLimitManager,
    rate_limit_manager,
)
from tests.conftest import Telemetry
from tests.rate_limit_helpers import points, unique


def test_seed_pattern_accepts_up_to_max_queue_size_then_refuses() -> None:
    bp = rate_limit_manager.register_backpressure(unique("seed"), max_queue_size=3)
    for _ in range(3):
        ok, reason = bp.should_accept()
        assert ok and reason == "accepted"
        bp.add_item()
    ok, reason = bp.should_accept()
    assert not ok and reason == "queue full (3/3)"
    bp.remove_item()
    assert bp.should_accept() == (True, "accepted")


def test_add_item_enforces_the_hard_limit_even_after_a_racy_check() -> None:
    bp = Backpressure(unique("race"), 1)
    assert bp.should_accept()[0] and bp.should_accept()[0]  # two callers both checked...
    bp.add_item()
    with pytest.raises(BackpressureRejected, match=r"queue full \(1/1\)") as info:
        bp.add_item()  # ...only one gets in
    assert info.value.reason == "full" and bp.size == 1


def test_watermarks_shed_load_early_with_hysteresis() -> None:
    bp = Backpressure(unique("wm"), 10, high_watermark=0.8, low_watermark=0.5)
    assert (bp.high_mark, bp.low_mark) == (8, 5)
    for _ in range(8):
        assert bp.should_accept()[0]
        bp.add_item()
    ok, reason = bp.should_accept()
    assert not ok and reason.startswith("shedding load: 8/10") and bp.is_shedding
    for expected_size in (7, 6):  # still shedding above the low watermark
        bp.remove_item()
        assert bp.size == expected_size and not bp.should_accept()[0]
    bp.remove_item()  # down to 5: accepting again
    assert bp.should_accept() == (True, "accepted") and not bp.is_shedding
    stats = bp.stats()
    assert stats["rejected_shedding"] == 3 and stats["rejected_full"] == 0


def test_slot_releases_on_exceptions_and_refuses_when_full() -> None:
    bp = Backpressure(unique("slot"), 2)
    with pytest.raises(RuntimeError), bp.slot():
        assert bp.size == 1
        raise RuntimeError("boom")
    assert bp.size == 0
    with bp.slot(), bp.slot():
        assert bp.size == 2
        with pytest.raises(BackpressureRejected) as info, bp.slot():
            pass
        assert info.value.reason == "full" and bp.size == 2
    assert bp.size == 0


def test_slots_never_leak_or_overfill_under_threads() -> None:
    bp = Backpressure(unique("threads"), 3)
    peak, admitted, refused = [0], [0], [0]
    lock = threading.Lock()

    def worker() -> None:
        for i in range(2_000):
            try:
                with bp.slot():
                    with lock:
                        admitted[0] += 1
                        peak[0] = max(peak[0], bp.size)
                    if i % 3 == 0:
                        raise ValueError
            except BackpressureRejected:
                with lock:
                    refused[0] += 1
            except ValueError:
                pass

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bp.size == 0 and peak[0] <= 3
    assert admitted[0] + refused[0] == 12_000
    assert bp.stats()["accepted"] == admitted[0]


def test_unmatched_remove_is_ignored_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    bp = Backpressure(unique("under"), 2)
    bp.remove_item()
    assert bp.size == 0 and bp.stats()["unmatched_removals"] == 1
    assert "without a matching add_item" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"max_queue_size": 0}, ["max_queue_size", "int 0", ">= 1"]),
        ({"max_queue_size": 2.5}, ["max_queue_size", "float 2.5"]),
        ({"max_queue_size": 10, "high_watermark": 1.5}, ["high_watermark", "float 1.5", "(0, 1]"]),
        ({"max_queue_size": 10, "high_watermark": 0.5, "low_watermark": 0.8},
         ["low_watermark", "float 0.8", "<= high_watermark"]),
        ({"max_queue_size": 10, "low_watermark": 0}, ["low_watermark", "int 0"]),
    ],
)
def test_bad_backpressure_configuration_is_refused(
    kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Backpressure("q", **kwargs)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)


def test_manager_lookup_and_json_stats() -> None:
    manager = RateLimitManager()
    bp = manager.register_backpressure("jobs", 5, high_watermark=0.6, low_watermark=0.2)
    assert manager.get_backpressure("jobs") is bp
    with pytest.raises(KeyError, match="no backpressure controller named 'nope'"):
        manager.get_backpressure("nope")
    bp.add_item()
    stats = json.loads(json.dumps(manager.get_all_stats(), allow_nan=False))["backpressure"]
    assert stats["jobs"]["queue_size"] == 1 and stats["jobs"]["pressure"] == 0.2


def test_queue_size_gauge_rejection_counter_and_event(telemetry: Telemetry) -> None:
    bp = Backpressure(unique("tel"), 2, high_watermark=0.5)
    with trace.get_tracer("test").start_as_current_span("enqueue"):
        bp.add_item()
        assert not bp.should_accept()[0]  # shedding at 1 of 2
        bp.add_item()
        with pytest.raises(BackpressureRejected):
            bp.add_item()
    m = telemetry.metrics()
    name = {semconv.BACKPRESSURE_NAME: bp.name}
    (size,) = points(m, semconv.METRIC_BACKPRESSURE_QUEUE_SIZE, name)
    assert size.value == 2
    rejections = {a[semconv.BACKPRESSURE_REASON]: p.value
                  for a, p in m[semconv.METRIC_BACKPRESSURE_REJECTIONS]
                  if a[semconv.BACKPRESSURE_NAME] == bp.name}
    assert rejections == {"shedding": 1, "full": 1}
    events = telemetry.events(semconv.EVENT_BACKPRESSURE_REJECTED)
    assert [e.attributes[semconv.BACKPRESSURE_REASON] for e in events] == ["shedding", "full"]
