"""The durable export spool: serialized OTLP requests in segment files on disk.

Why: the SDK keeps a failed batch only until its retries time out, and the
process's memory is the wrong place to keep telemetry during a long collector
outage. So a batch that cannot be sent now is written, as the exact bytes of
its OTLP export request, to one segment file in a spool directory per
service, and sent later, oldest first, by whichever process of that service
claims it first.

The directory is the only shared state, and every step on it is one atomic
filesystem operation, so processes of one service need no other coordination:

* **write**: ``.tmp-<owner>-<seq>`` is written, fsynced, then renamed to the
  segment's name, so a segment either exists complete or not at all;
* **claim**: a sender renames ``<segment>`` to ``<segment>.claim-<owner>``;
  exactly one rename wins, so a segment is never sent twice by two processes;
* **done**: the claimed file is unlinked once the collector accepted it;
* **release**: a failed send renames the claim back;
* **hold**: a batch whose live send has not answered yet is written already
  claimed, so no other process replays it while the answer may still come;
* **recover**: claims and temporary files whose owner process is gone
  (``<owner>`` is the pid and its start time, so a reused pid is not mistaken
  for the dead owner) are renamed back or removed; so are this process's own
  claims that a failed rename left behind.

Nothing here raises into the export path for a file-system fault it can
describe: writing raises :class:`SpoolWriteError` with the reason of the loss
(``spool_full`` for ENOSPC/EDQUOT/EFBIG and the bound, ``spool_unusable``
otherwise), claiming raises the ``OSError`` (other than "someone else took
it"), reading a claim raises :class:`DamagedSegment` or :class:`SegmentLost`.
A directory that cannot even be created leaves the object usable: every write
then fails with ``spool_unusable`` until the directory can be made.

``drops.log`` beside the segments keeps the losses of the service's processes
(one line per save: time, pid, signal, reason, count) for ``otelprod spool
status``; it is rotated once past 256 KiB.

A segment's name carries what is needed without opening it: the time it was
written (for oldest-first order), the writer's pid, the signal, the number of
items (counted when the bound drops it) and a CRC of its bytes.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

_log = logging.getLogger("otelprod._pipeline.spool")

#: The default bound of one service's spool, in bytes.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

SUFFIX = ".otlp"
CLAIM = ".claim-"
_TMP = ".tmp-"
_SEGMENT = re.compile(
    r"^(?P<ns>\d{19})-(?P<pid>\d+)-(?P<seq>\d+)-(?P<signal>traces|metrics|logs)"
    r"-(?P<count>\d+)-(?P<crc>[0-9a-f]{8})\.otlp$"
)
_OWNER = re.compile(r"(?P<pid>\d+)_(?P<started>\d+)")
DROP_LOG = "drops.log"
_DROP_LOG_MAX = 256 * 1024
#: errors that mean "no room": the file system, a quota, or the file-size limit
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_root() -> Path:
    """``<user cache dir>/otelprod/spool``, per platformdirs."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("otelprod")) / "spool"


def service_dir(root: str | os.PathLike[str] | None, service_name: str) -> Path:
    """The spool directory of one service under ``root`` (the default root if None)."""
    safe = _UNSAFE.sub("_", service_name).strip("._") or "unknown_service"
    return Path(root or default_root()) / safe[:128]


def _started(pid: int) -> int | None:
    """A process's start time in centiseconds, or None when no such process runs."""
    try:
        return int(psutil.Process(pid).create_time() * 100)
    except (psutil.Error, OSError):
        return None


def owner_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}_{_started(pid) or 0}"


def owner_alive(token: str) -> bool:
    """Whether the process that wrote ``token`` still runs (and is the same process)."""
    match = _OWNER.fullmatch(token)
    if match is None:
        return False
    return _started(int(match["pid"])) == int(match["started"])


@dataclass(frozen=True, order=True)
class Segment:
    """One spooled OTLP request, known by its file name."""

    name: str
    signal: str
    count: int
    size: int
    crc: int
    written_ns: int

    @classmethod
    def parse(cls, name: str, size: int) -> Segment | None:
        match = _SEGMENT.match(name)
        if match is None:
            return None
        return cls(name, match["signal"], int(match["count"]), size, int(match["crc"], 16),
                   int(match["ns"]))


class SpoolWriteError(Exception):
    """A batch could not be spooled; ``reason`` is the drop reason (spool_full, ...)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SpoolFull(SpoolWriteError):
    """A batch could not be spooled for want of room (the bound, the disk, a limit)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "spool_full")


class DamagedSegment(Exception):
    """A claimed segment's bytes do not match its name (size or CRC)."""


class SegmentLost(Exception):
    """A claimed segment is gone (deleted by someone else) before it was read."""


class Claim:
    """A segment this process holds: send it, then :meth:`done`, :meth:`drop` or :meth:`release`."""

    def __init__(self, spool: SpoolDir, segment: Segment, path: Path) -> None:
        self.spool = spool  # which holds ``path`` already (see SpoolDir.claim)
        self.segment = segment
        self.path = path

    def read(self) -> bytes:
        """The request bytes; raises DamagedSegment, SegmentLost or another OSError."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise SegmentLost(self.segment.name) from None
        if zlib.crc32(data) != self.segment.crc or len(data) != self.segment.size:
            raise DamagedSegment(f"{self.segment.name}: {len(data)} bytes, expected "
                                 f"{self.segment.size} with CRC {self.segment.crc:08x}")
        return data

    def done(self) -> None:
        """The collector took it: delete it (retried later if the directory refuses)."""
        self.spool._remove(self, dropped=None)

    def drop(self, reason: str) -> None:
        """Delete it without sending, counted as dropped for ``reason``."""
        self.spool._remove(self, dropped=reason)

    def lost(self, reason: str) -> None:
        """It is gone already (or unreadable for good): count it, forget it."""
        self.spool._release_hold(self.path.name)
        self.spool._forget_bytes(self.segment)
        self.spool._count_drop(self.segment.signal, self.segment.count, reason)

    def release(self) -> bool:
        """Give it back for a later send (by any process); False when the rename failed
        (this process renames it back later, see :meth:`SpoolDir.recover`)."""
        try:
            os.replace(self.path, self.spool.path / self.segment.name)
        except FileNotFoundError:
            return True  # already given back, or gone
        except OSError as exc:
            self.spool.failed(f"cannot give back {self.path.name}: {exc}")
            return False
        finally:
            self.spool._release_hold(self.path.name)
        return True


class SpoolDir:
    """One service's spool directory, as seen by this process.

    ``max_bytes`` bounds the directory (all processes, all signals): writing
    past it deletes the oldest segments first and counts their items as
    dropped. The byte count is kept in memory and refreshed from the
    directory when it says the bound is near, and by :meth:`scan`.
    ``on_drop(signal, count, reason)`` is told of every item the spool itself
    drops (the bound, damaged or vanished segments, refused replays).
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES,
                 on_drop: Callable[[str, int, str], None] | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool_max_bytes: expected an int > 0, got {max_bytes!r}")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._seq = 0
        self._owner = owner_token()
        self._bytes: dict[str, int] = {"traces": 0, "metrics": 0, "logs": 0}
        self.dropped: dict[str, int] = {"traces": 0, "metrics": 0, "logs": 0}
        self.written = 0
        self._held: set[str] = set()  # claim files a live Claim object stands for
        self._undeleted: set[str] = set()  # claim files sent, whose deletion failed
        #: the latest file-system failure, None once a write works again
        self.problem: str | None = None
        self.errors = 0  # file-system failures: to create, write, claim, read, rename, delete
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.failed(f"cannot create {self.path}: {exc}")
            return
        self.recover()
        self.scan()

    # --- accounting -------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return sum(self._bytes.values())

    def bytes_of(self, signal: str) -> int:
        return self._bytes.get(signal, 0)

    def scan(self) -> dict[str, int]:
        """Recount the bytes of every segment in the directory (every process's)."""
        counts = dict.fromkeys(self._bytes, 0)
        for name, size in self._entries():
            segment = Segment.parse(unclaimed(name), size)
            if segment is not None:
                counts[segment.signal] += segment.size
        with self._lock:
            self._bytes = counts
        return counts

    def _entries(self) -> Iterator[tuple[str, int]]:
        try:
            with os.scandir(self.path) as it:
                for entry in it:
                    if entry.name.startswith(".") or SUFFIX not in entry.name:
                        continue
                    try:
                        yield entry.name, entry.stat().st_size
                    except OSError:  # taken by another process meanwhile
                        continue
        except OSError:
            return

    def pending(self, signal: str | None = None) -> list[Segment]:
        """Unclaimed segments, oldest first."""
        out = []
        for name, size in self._entries():
            if not name.endswith(SUFFIX):
                continue
            segment = Segment.parse(name, size)
            if segment is not None and (signal is None or segment.signal == signal):
                out.append(segment)
        out.sort(key=lambda s: (s.written_ns, s.name))
        return out

    # --- writing ------------------------------------------------------------------
    def write(self, signal: str, data: bytes, count: int) -> Segment:
        """Store one request durably; past the bound, drop the oldest data first.

        Raises :class:`SpoolWriteError` (nothing is counted: the caller drops the batch).
        """
        return self._write(signal, data, count, claimed=False)[0]

    def write_claimed(self, signal: str, data: bytes, count: int) -> Claim:
        """Store one request already claimed by this process (see "hold")."""
        segment, path = self._write(signal, data, count, claimed=True)
        return Claim(self, segment, path)  # held since before it was written

    def _write(self, signal: str, data: bytes, count: int, *,
               claimed: bool) -> tuple[Segment, Path]:
        size = len(data)
        with self._lock:
            self._seq += 1
            seq = self._seq
        if size > self.max_bytes:  # could never fit: drop it rather than everything else
            raise SpoolFull(f"a {size}-byte {signal} batch exceeds spool_max_bytes "
                            f"({self.max_bytes})")
        if self.total_bytes + size > self.max_bytes:
            self._make_room(size)
        name = (f"{time.time_ns():019d}-{os.getpid()}-{seq}-{signal}-{count}"
                f"-{zlib.crc32(data):08x}{SUFFIX}")
        final = self.path / (f"{name}{CLAIM}{self._owner}" if claimed else name)
        tmp = self.path / f"{_TMP}{self._owner}-{seq}"
        if claimed:
            self._hold(final.name)  # before it exists: recover() must never give it back
        try:
            self._write_file(tmp, data)
            os.replace(tmp, final)
        except OSError as exc:
            if claimed:
                self._release_hold(final.name)
            _unlink_quietly(tmp)
            reason = "spool_full" if exc.errno in _NO_ROOM else "spool_unusable"
            problem = self.failed(f"cannot write to {self.path}: {exc}")
            raise SpoolWriteError(problem, reason) from exc
        _fsync_dir(self.path)
        self.problem = None
        with self._lock:
            self._bytes[signal] = self._bytes.get(signal, 0) + size
            self.written += 1
        segment = Segment.parse(name, size)
        assert segment is not None
        return segment, final

    def _write_file(self, tmp: Path, data: bytes) -> None:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the directory was removed (or never made): make it
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _make_room(self, size: int) -> None:
        """Delete the oldest unclaimed segments until ``size`` more bytes fit."""
        self.scan()  # other processes may have sent or written meanwhile
        excess = self.total_bytes + size - self.max_bytes
        if excess <= 0:
            return
        for segment in self.pending():
            try:
                claim = self.claim(segment)
            except OSError:
                return  # the directory refuses: the write that follows will say so
            if claim is None:
                continue
            claim.drop("spool_full")
            excess -= segment.size
            if excess <= 0:
                return

    # --- claiming -----------------------------------------------------------------
    def claim(self, segment: Segment) -> Claim | None:
        """Take ``segment`` for this process, or None if another process was first.

        Raises the ``OSError`` when the directory refuses the rename.
        """
        target = self.path / f"{segment.name}{CLAIM}{self._owner}"
        self._hold(target.name)  # before the rename: recover() must never give it back
        try:
            os.rename(self.path / segment.name, target)
        except FileNotFoundError:
            self._release_hold(target.name)
            return None
        except OSError as exc:
            self._release_hold(target.name)
            self.failed(f"cannot claim {segment.name}: {exc}")
            raise
        return Claim(self, segment, target)

    def failed(self, problem: str) -> str:
        """Note a file-system failure (counted; the latest is kept to be shown)."""
        with self._lock:
            self.errors += 1
        self.problem = problem
        return problem

    def _hold(self, name: str) -> None:
        with self._lock:
            self._held.add(name)

    def _release_hold(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def _remove(self, claim: Claim, *, dropped: str | None) -> None:
        segment, name = claim.segment, claim.path.name
        try:
            os.unlink(claim.path)
        except FileNotFoundError:
            self._release_hold(name)
        except OSError as exc:
            # Sent (or to be dropped) but still on disk: it must never be sent again.
            # It keeps this process's claim, and recover() deletes it once it can.
            with self._lock:
                self._undeleted.add(name)
                self._held.discard(name)
            self.failed(f"cannot delete {name}: {exc}")
        else:
            self._release_hold(name)
        self._forget_bytes(segment)
        if dropped is not None:
            self._count_drop(segment.signal, segment.count, dropped)

    def _forget_bytes(self, segment: Segment) -> None:
        with self._lock:
            self._bytes[segment.signal] = max(0, self._bytes.get(segment.signal, 0)
                                              - segment.size)

    def _count_drop(self, signal: str, count: int, reason: str) -> None:
        with self._lock:
            self.dropped[signal] = self.dropped.get(signal, 0) + count
        if self._on_drop is not None:
            try:
                self._on_drop(signal, count, reason)
            except Exception:
                pass

    def recover(self) -> int:
        """Give back the claims, and remove the temporary files, of dead processes.

        This process's own leftovers are settled too: a claim whose release
        failed is renamed back, a sent segment whose deletion failed is deleted.
        Returns how many claims were given back.
        """
        recovered = 0
        try:
            names = os.listdir(self.path)
        except OSError:
            return 0
        alive: dict[str, bool] = {}
        with self._lock:
            held, undeleted = set(self._held), set(self._undeleted)
        for name in names:
            if CLAIM in name:
                original, token = name.rsplit(CLAIM, 1)
                if token == self._owner:
                    if name in undeleted:
                        self._retry_delete(name)
                        continue
                    if name in held:
                        continue
                elif alive.setdefault(token, owner_alive(token)):
                    continue
                try:
                    os.rename(self.path / name, self.path / original)
                    recovered += 1
                except OSError:
                    pass
            elif name.startswith(_TMP):
                token = name[len(_TMP):].rsplit("-", 1)[0]
                if token != self._owner and not alive.setdefault(token, owner_alive(token)):
                    _unlink_quietly(self.path / name)
        return recovered

    def _retry_delete(self, name: str) -> None:
        try:
            os.unlink(self.path / name)
        except FileNotFoundError:
            pass
        except OSError:
            return
        with self._lock:
            self._undeleted.discard(name)

    def purge(self) -> tuple[int, int]:
        """Delete every unclaimed segment, uncounted; returns (segments, bytes)."""
        segments = size = 0
        for segment in self.pending():
            try:
                claim = self.claim(segment)
            except OSError:
                break
            if claim is None:
                continue
            try:
                os.unlink(claim.path)
            except OSError:
                claim.release()
                continue
            finally:
                self._release_hold(claim.path.name)
            segments += 1
            size += segment.size
        self.scan()
        return segments, size

    # --- the drop log -----------------------------------------------------------------
    def log_drops(self, counts: dict[tuple[str, str], int]) -> bool:
        """Append this process's losses to ``drops.log``; False when it cannot."""
        if not counts:
            return True
        stamp, pid = int(time.time()), os.getpid()
        text = "".join(f"{stamp} {pid} {signal} {reason} {n}\n"
                       for (signal, reason), n in sorted(counts.items()))
        log = self.path / DROP_LOG
        try:
            if log.stat().st_size > _DROP_LOG_MAX:
                os.replace(log, self.path / f"{DROP_LOG}.1")
        except OSError:
            pass
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, text.encode())  # one small append: whole lines, even shared
            finally:
                os.close(fd)
        except OSError:
            return False
        return True


def unclaimed(name: str) -> str:
    return name.split(CLAIM, 1)[0]


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the directory (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
