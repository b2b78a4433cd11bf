"""Backpressure: admit work only while the queue behind it can take more.

A rate limiter caps how fast work arrives; backpressure caps how much is in
flight. Watermarks add hysteresis so callers shed load *before* the hard
limit: once the queue reaches the high watermark, ``should_accept`` says no
until it has drained to the low watermark, instead of flapping at the edge.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.util.types import AttributeValue

from otelprod import _forks, semconv
from otelprod._telemetry import add_event
from otelprod.errors import ConfigurationError, OtelprodError
from otelprod.rate_limiter import _instruments as _inst
from otelprod.rate_limiter._config import _is_real, _type
from otelprod.rate_limiter._limiter import log, renew_lock

_FULL = semconv.BackpressureReason.FULL
_SHEDDING = semconv.BackpressureReason.SHEDDING


class BackpressureRejected(OtelprodError):
    """Raised by :meth:`Backpressure.slot` and :meth:`Backpressure.add_item` when
    an item is refused; ``reason`` is ``"full"`` or ``"shedding"``."""

    def __init__(self, name: str, reason: str, message: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"backpressure {name!r} refused an item: {message}")


def _watermark(key: str, value: object, max_size: int, problems: list[str]) -> int:
    """A watermark as a fraction of ``max_queue_size`` (0 < f <= 1) -> an item count."""
    if not _is_real(value) or not 0 < value <= 1:  # type: ignore[operator]
        problems.append(
            f"{key}: {_type(value)} {value!r} must be a fraction of max_queue_size in (0, 1]"
        )
        return max_size
    return max(1, round(max_size * float(value)))  # type: ignore[arg-type]


class Backpressure:
    """Counts items in flight against ``max_queue_size``; thread-safe.

    ``high_watermark`` and ``low_watermark`` are fractions of
    ``max_queue_size``: from ``high`` (default 1.0, the hard limit) new items
    are refused until the queue is down to ``low`` (default: equal to high,
    no hysteresis).
    """

    def __init__(self, name: str, max_queue_size: int, *, high_watermark: float = 1.0,
                 low_watermark: float | None = None) -> None:
        problems: list[str] = []
        if not isinstance(name, str) or not name:
            problems.append(f"name: {_type(name)} {name!r} must be a non-empty str")
        if (not isinstance(max_queue_size, int) or isinstance(max_queue_size, bool)
                or max_queue_size < 1):
            problems.append(
                f"max_queue_size: {_type(max_queue_size)} {max_queue_size!r} must be an int >= 1"
            )
            max_queue_size = 1
        high = _watermark("high_watermark", high_watermark, max_queue_size, problems)
        low = high if low_watermark is None else _watermark(
            "low_watermark", low_watermark, max_queue_size, problems)
        if low_watermark is not None and _is_real(high_watermark) and _is_real(low_watermark) \
                and low_watermark > high_watermark:
            problems.append(
                f"low_watermark: {_type(low_watermark)} {low_watermark!r} must be <= "
                f"high_watermark ({high_watermark!r})"
            )
        if problems:
            raise ConfigurationError(problems)
        self.name = name
        self.max_queue_size = max_queue_size
        self.high_mark = high
        self.low_mark = low
        self._size = 0
        self._shedding = False
        self._accepted = 0
        self._rejected = {_FULL: 0, _SHEDDING: 0}
        self._underflows = 0
        self._lock = threading.Lock()
        n = semconv.BACKPRESSURE_NAME
        r = semconv.BACKPRESSURE_REASON
        self._attrs: dict[str, dict[str, AttributeValue]] = {
            _FULL: {n: name, r: _FULL}, _SHEDDING: {n: name, r: _SHEDDING}}
        _inst.track_backpressure(self)
        _forks.register(self, after_in_child=renew_lock)

    def __repr__(self) -> str:
        return f"<Backpressure {self.name!r} {self._size}/{self.max_queue_size}>"

    @property
    def size(self) -> int:
        """Items currently admitted."""
        return self._size

    @property
    def pressure(self) -> float:
        """How full the queue is, from 0.0 to 1.0."""
        return self._size / self.max_queue_size

    @property
    def is_shedding(self) -> bool:
        """True between reaching the high watermark and draining to the low one."""
        with self._lock:
            return self._verdict() is not None

    def should_accept(self) -> tuple[bool, str]:
        """Whether a new item should be admitted now, and why (not)."""
        with self._lock:
            reason = self._verdict()
        if reason is None:
            return True, "accepted"
        self._on_reject(reason)
        return False, self._explain(reason)

    def add_item(self) -> None:
        """Count an item in; raises :class:`BackpressureRejected` at ``max_queue_size``
        (the watermarks are advice for ``should_accept``; only the hard limit is
        enforced here, so a check-then-add race can never overfill the queue)."""
        with self._lock:
            full = self._size >= self.max_queue_size
            if not full:
                self._size += 1
                self._accepted += 1
        if full:
            self._on_reject(_FULL)
            raise BackpressureRejected(self.name, _FULL, self._explain(_FULL))

    def remove_item(self) -> None:
        """Count an item out. An unmatched call is logged and ignored."""
        with self._lock:
            if self._size > 0:
                self._size -= 1
                return
            self._underflows += 1
        log.warning("backpressure %r: remove_item() without a matching add_item()", self.name)

    @contextmanager
    def slot(self) -> Iterator[Backpressure]:
        """Admit one item for the ``with`` block, or raise :class:`BackpressureRejected`.

        Check and add happen under one lock and the slot is released however the
        block ends, so it can neither overfill the queue nor leak a slot.
        """
        with self._lock:
            reason = self._verdict()
            if reason is None:
                self._size += 1
                self._accepted += 1
        if reason is not None:
            self._on_reject(reason)
            raise BackpressureRejected(self.name, reason, self._explain(reason))
        try:
            yield self
        finally:
            self.remove_item()

    def reset(self) -> None:
        """Forget every admitted item (for instance after the queue was purged)."""
        with self._lock:
            self._size = 0
            self._shedding = False

    def stats(self) -> dict[str, Any]:
        """Counters and settings as plain JSON-serialisable values."""
        with self._lock:
            shedding = self._verdict() is not None
            return {
                "name": self.name,
                "queue_size": self._size,
                "max_queue_size": self.max_queue_size,
                "high_watermark_items": self.high_mark,
                "low_watermark_items": self.low_mark,
                "pressure": self._size / self.max_queue_size,
                "shedding": shedding,
                "accepted": self._accepted,
                "rejected": sum(self._rejected.values()),
                "rejected_full": self._rejected[_FULL],
                "rejected_shedding": self._rejected[_SHEDDING],
                "unmatched_removals": self._underflows,
            }

    # --- internals ----------------------------------------------------------------
    def _verdict(self) -> str | None:
        """None to accept, else the reason to refuse (called under the lock)."""
        size = self._size
        if size >= self.max_queue_size:
            self._shedding = self.low_mark < self.max_queue_size
            return _FULL
        if self._shedding:
            if size > self.low_mark:
                return _SHEDDING
            self._shedding = False
        elif size >= self.high_mark:
            self._shedding = True
            return _SHEDDING
        return None

    def _explain(self, reason: str) -> str:
        if reason == _FULL:
            return f"queue full ({self._size}/{self.max_queue_size})"
        return (f"shedding load: {self._size}/{self.max_queue_size} items, accepting again "
                f"at {self.low_mark}")

    def _on_reject(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1
        attrs = self._attrs[reason]
        _inst.record(_inst.rejections_counter, 1, attrs)
        add_event(semconv.EVENT_BACKPRESSURE_REJECTED, attrs)
