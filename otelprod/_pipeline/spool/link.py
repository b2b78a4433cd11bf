"""One signal's way to the collector, with the spool behind it.

Each batch, encoded once into the bytes of an OTLP export request (``wire``),
is either sent at once or, when that fails or the collector is already known
to be down, written to the spool. While the collector is down nothing waits
on it: the batch thread spools each batch directly, so the SDK's in-memory
queue keeps draining. A sender thread probes with exponential backoff
(tenacity) and, once the collector answers, replays the spool oldest first;
the next live batch then goes straight out again.

What can go wrong, and what the link does about it:

* **The collector does not answer.** A live send is waited on for
  ``hang_timeout`` at most (and never past the shutdown deadline). Then its
  batch is written to the spool *already claimed* ("held") and the link
  counts as down; the send itself goes on in the background until the export
  timeout. A late success deletes the held copy (no duplicate), a late
  failure releases it for the replay. Only a process that ends while an
  answer is still out leaves its held copy to the next process, which sends
  it again: if the collector had taken it after all, it arrives twice. That
  is the one at-least-once window.
* **The spool cannot be written.** The batch is dropped and counted
  (``spool_full`` or ``spool_unusable``); said once until a write works again.
* **A segment cannot be claimed, read, released or deleted.** It is set
  aside with its own backoff (and said once), the rest of the spool and the
  probe go on, and the sender's CPU stays near zero while it waits. A damaged
  segment is dropped and counted (``corrupt_segment``); one that vanished
  after it was claimed is counted as ``segment_lost``.

Every loss goes to the :class:`~otelprod._pipeline.status.DropLedger`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TypedDict

import tenacity

from otelprod import semconv
from otelprod._pipeline.spool.store import (
    Claim,
    DamagedSegment,
    Segment,
    SegmentLost,
    SpoolDir,
    SpoolWriteError,
)
from otelprod._pipeline.spool.wire import InFlight, Sender, SendError
from otelprod._pipeline.status import DropLedger, ExportHealth
from otelprod._telemetry import truncate

_log = logging.getLogger("otelprod._pipeline.spool")
Reason = semconv.DropReason


class CollectorDown(Exception):
    """The collector did not take a spooled segment: back off, then probe again."""


class SpoolStatus(TypedDict):
    """One signal's spool, as seen by this process."""

    spooling: bool
    spool_bytes: int
    segments: int
    spool_dir: str | None
    spool_errors: int
    spool_problem: str | None


@dataclass(frozen=True)
class Policy:
    """Timings of the link; tests shorten them."""

    export_timeout: float = 5.0
    hang_timeout: float = 0.5  # how long a live export waits for an answer before spooling
    retry_initial: float = 0.5
    retry_max: float = 30.0
    poll_interval: float = 1.0  # how often an idle sender looks for others' segments
    rescan_every: float = 10.0  # recount bytes and recover dead processes' claims
    shutdown_timeout: float = 5.0  # at most this long to empty the spool at shutdown


class SignalLink:
    """The per-process export path of one signal: send now, or spool and replay."""

    def __init__(self, signal: str, sender: Sender, spool: SpoolDir, policy: Policy,
                 health: ExportHealth, ledger: DropLedger) -> None:
        self.signal = signal
        self.sender = sender
        self.spool = spool
        self.policy = policy
        self.health = health
        self.ledger = ledger
        self.down = False
        self.closed = False
        #: set at shutdown (monotonic): no wait outlasts it; later batches are spooled
        self.deadline: float | None = None
        self._wake = threading.Condition()  # answers and the deadline wake the live wait
        #: cut sends -> their held copy (None: no copy: the spool failed), items, and the
        #: reason they count as dropped if the late answer is a failure
        self._unanswered: dict[InFlight, tuple[Claim | None, int, str]] = {}
        self._aside: dict[str, tuple[float, float]] = {}  # segment -> (retry at, delay)
        self._said: set[str] = set()  # conditions said once, until they clear
        self._stop = threading.Event()
        self._urgent = threading.Event()
        self._thread: threading.Thread | None = None
        thread = threading.Thread(target=self._run, daemon=True, name=f"otelprod-spool-{signal}")
        try:
            thread.start()
            self._thread = thread
        except RuntimeError:
            # A forked worker's first export can come at its exit, where Python
            # 3.12+ starts no thread: the link still sends and spools without one.
            pass

    def set_deadline(self, deadline: float | None) -> None:
        """From now on no wait outlasts ``deadline`` (monotonic); None lifts it."""
        with self._wake:
            self.deadline = deadline
            self._wake.notify_all()

    # --- the export path (the SDK's batch thread) ---------------------------------
    def submit(self, data: bytes, count: int, timeout: float | None = None) -> bool:
        """Send or spool one request; True when it is with the collector or on disk
        (or may still be taken: an answer that is late)."""
        if self.down or self.closed:
            return self._to_spool(data, count)
        now = time.monotonic()
        budget = min(timeout or self.policy.export_timeout, self.policy.export_timeout)
        deadline = self.deadline
        if deadline is not None:
            budget = min(budget, deadline - now)
            if budget <= 0:  # the shutdown deadline has passed: to disk
                return self._to_spool(data, count)
        wait = min(budget, self.policy.hang_timeout)
        inflight = InFlight(self._wake)
        if not self.sender.start(data, budget, inflight):
            # no thread may start now (the interpreter is exiting): wait in this one
            try:
                self.sender.send(data, wait)
            except SendError as exc:
                inflight.finish(exc)
            else:
                inflight.finish(None)
        if self._answered_by(inflight, now + wait):
            return self._answered(inflight.error, data, count)
        return self._cut(inflight, data, count, wait)

    def _answered_by(self, inflight: InFlight, until: float) -> bool:
        with self._wake:
            while not inflight.done:
                limit = until if self.deadline is None else min(until, self.deadline)
                remaining = limit - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def _answered(self, error: SendError | None, data: bytes, count: int) -> bool:
        if error is None:
            self.health.record(True)
            return True
        self.health.record(False, str(error))
        if not error.retryable:
            self.ledger.record(self.signal, count, Reason.REJECTED)
            return False
        self._mark_down(str(error))
        return self._to_spool(data, count)

    def _cut(self, inflight: InFlight, data: bytes, count: int, waited: float) -> bool:
        """No answer in time: keep a held copy on disk until the answer comes."""
        deadline = self.deadline
        why = (f"no answer within {waited:.1f} s" if deadline is None
               or time.monotonic() < deadline else "no answer by the shutdown deadline")
        self.health.record(False, why)
        self._mark_down(why)
        held: Claim | None = None
        reason: str = Reason.SHUTDOWN_DEADLINE
        try:
            held = self.spool.write_claimed(self.signal, data, count)
        except SpoolWriteError as exc:
            self._spool_failed(exc)
            reason = exc.reason
        with self._wake:
            self._unanswered[inflight] = (held, count, reason)
        inflight.then(lambda error: self._late(inflight, error))
        return True

    def _late(self, inflight: InFlight, error: SendError | None) -> None:
        """The answer to a cut send came (or it was cancelled at close)."""
        with self._wake:
            entry = self._unanswered.pop(inflight, None)
        if entry is None:
            return  # close() settled it already
        held, count, reason = entry
        if error is None:
            self.health.record(True)
            if held is not None:
                held.done()  # delivered: the copy on disk must never be sent again
            return
        if not error.retryable:
            if held is not None:
                held.drop(Reason.REJECTED)
            else:
                self.ledger.record(self.signal, count, Reason.REJECTED)
        elif held is not None:
            held.release()  # the replay sends it
        else:
            self.ledger.record(self.signal, count, reason)

    def _to_spool(self, data: bytes, count: int) -> bool:
        try:
            self.spool.write(self.signal, data, count)
        except SpoolWriteError as exc:
            self.ledger.record(self.signal, count, exc.reason)
            self._spool_failed(exc)
            return False
        self._clear("write")
        return True

    def _spool_failed(self, exc: SpoolWriteError) -> None:
        if self._say_once("write"):  # once, not once per batch (a full disk stays full)
            _log.warning("otelprod spool: %s: %s that the collector does not take is "
                         "dropped until it can", exc, self.signal)

    def _mark_down(self, reason: str) -> None:
        if not self.down:
            self.down = True
            _log.warning("otelprod: the collector does not take %s (%s); spooling to %s "
                         "until it does", self.signal, truncate(reason, 160),
                         self.spool.path)

    def _say_once(self, condition: str) -> bool:
        if condition in self._said:
            return False
        self._said.add(condition)
        return True

    def _clear(self, condition: str) -> None:
        self._said.discard(condition)

    # --- the sender thread ------------------------------------------------------------
    def _run(self) -> None:
        policy = self.policy
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CollectorDown),
            wait=tenacity.wait_exponential_jitter(multiplier=policy.retry_initial,
                                                  max=policy.retry_max,
                                                  jitter=policy.retry_initial),
            stop=tenacity.stop_when_event_set(self._stop),
            sleep=self._sleep,
            reraise=True,
        )
        last_rescan = time.monotonic()
        while not self._stop.is_set():
            self._urgent.wait(policy.poll_interval)
            self._urgent.clear()
            if self._stop.is_set():
                break
            try:
                if time.monotonic() - last_rescan >= policy.rescan_every:
                    last_rescan = time.monotonic()
                    self.spool.recover()
                    self.spool.scan()
                self.save_drops()
                retrying(self._drain)
            except CollectorDown:
                pass  # stopped while the collector was down
            except Exception:  # the sender must outlive any surprise
                if self._say_once("sender"):
                    _log.exception("otelprod spool: sender error")

    def _sleep(self, seconds: float) -> None:
        self._urgent.wait(seconds)
        self._urgent.clear()

    def _drain(self, deadline: float | None = None) -> bool:
        """Send pending segments oldest first; raise CollectorDown when it refuses.

        True when nothing of this signal is left to send (set-aside segments count
        as left).
        """
        while True:
            now = time.monotonic()
            segments = [s for s in self.spool.pending(self.signal)
                        if self._aside.get(s.name, (0.0, 0.0))[0] <= now]
            if not segments:
                if self.down:  # e.g. another process sent ours: probe with an empty request
                    self._probe(deadline)
                return not self._aside
            for segment in segments:
                if deadline is None and self._stop.is_set():
                    return False
                timeout = self.policy.export_timeout
                cut = deadline if deadline is not None else self.deadline  # shutdown's, too
                if cut is not None:
                    timeout = min(timeout, cut - time.monotonic())
                    if timeout <= 0:
                        return False
                self._send_segment(segment, timeout)
            # every segment was sent, dropped, set aside or taken by another process

    def _probe(self, deadline: float | None) -> None:
        timeout = self.policy.export_timeout
        cut = deadline if deadline is not None else self.deadline
        if cut is not None:
            timeout = min(timeout, max(0.0, cut - time.monotonic()))
        try:
            self.sender.send(b"", timeout)  # an empty export request is valid OTLP
        except SendError as exc:
            if exc.retryable:
                raise CollectorDown(str(exc)) from None
        self._up()

    def _up(self) -> None:
        if self.down:
            self.down = False
            _log.info("otelprod: the collector takes %s again; replaying the spool",
                      self.signal)

    def _send_segment(self, segment: Segment, timeout: float) -> None:
        try:
            claim = self.spool.claim(segment)
        except OSError:  # counted, and said, by the spool
            self._set_aside(segment)
            return
        if claim is None:
            return  # another process (or thread) took it
        try:
            data = claim.read()
        except DamagedSegment as exc:
            claim.drop(Reason.CORRUPT_SEGMENT)
            _log.warning("otelprod spool: dropped damaged segment %s (%s)", segment.name, exc)
            return
        except SegmentLost:
            claim.lost(Reason.SEGMENT_LOST)
            _log.warning("otelprod spool: segment %s vanished before it was sent",
                         segment.name)
            return
        except OSError as exc:
            claim.release()
            self.spool.failed(f"cannot read {segment.name}: {exc}")
            self._set_aside(segment)
            return
        try:
            self.sender.send(data, timeout)
        except SendError as exc:
            self.health.record(False, str(exc))
            if exc.retryable:
                claim.release()
                self._mark_down(str(exc))
                raise CollectorDown(str(exc)) from None
            claim.drop(Reason.REJECTED)
            return
        claim.done()
        self._aside.pop(segment.name, None)
        self._clear("aside")
        self.health.record(True)
        self._up()

    def _set_aside(self, segment: Segment) -> None:
        """Leave ``segment`` alone for a while (its own backoff), then try it again."""
        _, delay = self._aside.get(segment.name, (0.0, 0.0))
        delay = min(self.policy.retry_max, max(self.policy.retry_initial, delay * 2))
        self._aside[segment.name] = (time.monotonic() + delay, delay)
        if self._say_once("aside"):
            _log.warning("otelprod spool: %s; it stays on disk and is tried again later",
                         truncate(self.spool.problem or segment.name, 300))

    def save_drops(self) -> None:
        """Append the losses counted since the last save to the spool's drop log."""
        unsaved = self.ledger.take_unsaved()
        if unsaved and not self.spool.log_drops(unsaved):
            self.ledger.keep_unsaved(unsaved)  # saved once the directory takes it

    # --- flush and close ---------------------------------------------------------------
    def flush(self, timeout: float, attempts: int = 3) -> bool:
        """Send what is spooled for this signal, within ``timeout`` seconds.

        A collector that refuses is tried ``attempts`` times in all, with the
        retry backoff in between (one that just came back may need a reconnect).
        """
        deadline = time.monotonic() + timeout
        self._aside.clear()  # a flush tries every segment once more
        delay = self.policy.retry_initial
        for attempt in range(attempts):
            try:
                return self._drain(deadline=deadline)
            except CollectorDown:
                if attempt + 1 == attempts or time.monotonic() + delay >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, self.policy.retry_max)
        return False

    def close(self, timeout: float) -> bool:
        """Stop the sender, try once more to empty the spool, and close the connection.

        What is still spooled stays on disk for the next process of the service.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self.deadline is not None:  # shutdown's own deadline wins
            deadline = min(deadline, self.deadline)
        self.closed = True
        self._stop.set()
        self._urgent.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            # Let a replay under way end (its send keeps the deadline): a segment it holds
            # is invisible to the flush below, and one whose send fails goes back to it.
            self._thread.join(max(0.0, deadline - time.monotonic()))
        flushed = self.flush(max(0.0, deadline - time.monotonic()))
        self._settle_unanswered()
        self.spool.recover()  # gives back what a failed rename of ours left claimed
        self.save_drops()
        try:
            self.sender.close()
        except Exception:
            pass
        return flushed and not self._aside

    def _settle_unanswered(self) -> None:
        """Sends still unanswered at close: their held copy goes back to the spool for
        the next process (the at-least-once window); without a copy they are lost."""
        with self._wake:
            unanswered, self._unanswered = self._unanswered, {}
        for inflight, (held, count, _) in unanswered.items():
            inflight.cancel()
            if held is not None:
                held.release()
            else:
                self.ledger.record(self.signal, count, Reason.SHUTDOWN_DEADLINE)

    def status(self) -> SpoolStatus:
        spool = self.spool
        return SpoolStatus(spooling=self.down, spool_bytes=spool.bytes_of(self.signal),
                           segments=len(spool.pending(self.signal)), spool_dir=str(spool.path),
                           spool_errors=spool.errors, spool_problem=spool.problem)

