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
* **recover**: claims and temporary files whose owner process is gone
  (``<owner>`` is the pid and its start time, so a reused pid is not mistaken
  for the dead owner) are renamed back or removed.

A segment's name carries what is needed without opening it: the time it was
written (for oldest-first order), the writer's pid, the signal, the number of
items (counted when the bound drops it) and a CRC of its bytes.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

_log = logging.getLogger("otelprod._pipeline.spool")

#: The default bound of one service's spool, in bytes.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

SUFFIX = ".otlp"
_CLAIM = ".claim-"
_TMP = ".tmp-"
_SEGMENT = re.compile(
    r"^(?P<ns>\d{19})-(?P<pid>\d+)-(?P<seq>\d+)-(?P<signal>traces|metrics|logs)"
    r"-(?P<count>\d+)-(?P<crc>[0-9a-f]{8})\.otlp$"
)
_OWNER = re.compile(r"(?P<pid>\d+)_(?P<started>\d+)")
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


class Claim:
    """A segment this process claimed: send it, then :meth:`done` or :meth:`release`."""

    def __init__(self, spool: SpoolDir, segment: Segment, path: Path) -> None:
        self.spool = spool
        self.segment = segment
        self.path = path

    def read(self) -> bytes | None:
        """The request bytes, or None when the file is damaged (it is then dropped)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        if zlib.crc32(data) != self.segment.crc or len(data) != self.segment.size:
            _log.warning("otelprod spool: dropping damaged segment %s", self.segment.name)
            self.drop()
            return None
        return data

    def done(self) -> None:
        self.spool._remove(self.path, self.segment, dropped=False)

    def drop(self) -> None:
        """Delete without sending, counted as dropped (e.g. the collector rejected it)."""
        self.spool._remove(self.path, self.segment, dropped=True)

    def release(self) -> None:
        try:
            os.replace(self.path, self.spool.path / self.segment.name)
        except OSError:
            pass


class SpoolDir:
    """One service's spool directory, as seen by this process.

    ``max_bytes`` bounds the directory (all processes, all signals): writing
    past it deletes the oldest segments first and counts their items as
    dropped. The byte count is kept in memory and refreshed from the
    directory when it says the bound is near, and by :meth:`scan`.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES,
                 on_drop: Callable[[str, int], None] | None = None) -> None:
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
        self.path.mkdir(parents=True, exist_ok=True)
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
            segment = Segment.parse(_unclaimed(name), size)
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
        """Store one request durably; past the bound, drop the oldest data first."""
        size = len(data)
        with self._lock:
            self._seq += 1
            seq = self._seq
        if size > self.max_bytes:  # could never fit: drop it rather than everything else
            self._count_drop(signal, count)
            raise SpoolFull(f"a {size}-byte {signal} batch exceeds spool_max_bytes "
                            f"({self.max_bytes})")
        if self.total_bytes + size > self.max_bytes:
            self._make_room(size)
        name = (f"{time.time_ns():019d}-{os.getpid()}-{seq}-{signal}-{count}"
                f"-{zlib.crc32(data):08x}{SUFFIX}")
        tmp = self.path / f"{_TMP}{self._owner}-{seq}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the directory was removed under us: make it again
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path / name)
        _fsync_dir(self.path)
        with self._lock:
            self._bytes[signal] = self._bytes.get(signal, 0) + size
            self.written += 1
        segment = Segment.parse(name, size)
        assert segment is not None
        return segment

    def _make_room(self, size: int) -> None:
        """Delete the oldest unclaimed segments until ``size`` more bytes fit."""
        self.scan()  # other processes may have sent or written meanwhile
        excess = self.total_bytes + size - self.max_bytes
        if excess <= 0:
            return
        for segment in self.pending():
            claim = self.claim(segment)
            if claim is None:
                continue
            claim.drop()
            excess -= segment.size
            if excess <= 0:
                return

    # --- claiming -----------------------------------------------------------------
    def claim(self, segment: Segment) -> Claim | None:
        """Take ``segment`` for this process, or None if another process was first."""
        target = self.path / f"{segment.name}{_CLAIM}{self._owner}"
        try:
            os.rename(self.path / segment.name, target)
        except OSError:
            return None
        return Claim(self, segment, target)

    def _remove(self, path: Path, segment: Segment, *, dropped: bool) -> None:
        try:
            os.unlink(path)
        except OSError:
            return
        with self._lock:
            self._bytes[segment.signal] = max(0, self._bytes.get(segment.signal, 0)
                                              - segment.size)
        if dropped:
            self._count_drop(segment.signal, segment.count)

    def _count_drop(self, signal: str, count: int) -> None:
        with self._lock:
            self.dropped[signal] = self.dropped.get(signal, 0) + count
        if self._on_drop is not None:
            try:
                self._on_drop(signal, count)
            except Exception:
                pass

    def recover(self) -> int:
        """Give back the claims, and remove the temporary files, of dead processes."""
        recovered = 0
        try:
            names = os.listdir(self.path)
        except OSError:
            return 0
        alive: dict[str, bool] = {}
        for name in names:
            if _CLAIM in name:
                original, token = name.rsplit(_CLAIM, 1)
                if token == self._owner or alive.setdefault(token, owner_alive(token)):
                    continue
                try:
                    os.rename(self.path / name, self.path / original)
                    recovered += 1
                except OSError:
                    pass
            elif name.startswith(_TMP):
                token = name[len(_TMP):].rsplit("-", 1)[0]
                if token != self._owner and not alive.setdefault(token, owner_alive(token)):
                    try:
                        os.unlink(self.path / name)
                    except OSError:
                        pass
        return recovered

    def release_own_claims(self) -> None:
        """Rename this process's claims back (at shutdown: another process may send them)."""
        suffix = f"{_CLAIM}{self._owner}"
        for name, _ in list(self._entries()):
            if name.endswith(suffix):
                try:
                    os.rename(self.path / name, self.path / name[: -len(suffix)])
                except OSError:
                    pass

    def purge(self) -> tuple[int, int]:
        """Delete every unclaimed segment, uncounted; returns (segments, bytes)."""
        segments = size = 0
        for segment in self.pending():
            claim = self.claim(segment)
            if claim is None:
                continue
            try:
                os.unlink(claim.path)
            except OSError:
                continue
            segments += 1
            size += segment.size
        self.scan()
        return segments, size


class SpoolFull(Exception):
    """A batch could not be spooled (it alone exceeds the bound)."""


def _unclaimed(name: str) -> str:
    return name.split(_CLAIM, 1)[0]


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


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a spool directory holds, for ``otelprod spool status``; reads only."""
    directory = Path(path)
    signals: dict[str, dict[str, int]] = {}
    claimed = 0
    oldest: int | None = None
    try:
        entries = [(e.name, e.stat().st_size) for e in os.scandir(directory)
                   if not e.name.startswith(".")]
    except OSError:
        entries = []
    for name, size in entries:
        segment = Segment.parse(_unclaimed(name), size)
        if segment is None:
            continue
        info = signals.setdefault(segment.signal, {"segments": 0, "bytes": 0, "items": 0})
        info["segments"] += 1
        info["bytes"] += size
        info["items"] += segment.count
        claimed += _CLAIM in name
        oldest = segment.written_ns if oldest is None else min(oldest, segment.written_ns)
    return {
        "path": str(directory),
        "segments": sum(s["segments"] for s in signals.values()),
        "bytes": sum(s["bytes"] for s in signals.values()),
        "claimed": claimed,
        "oldest_age_s": None if oldest is None else round((time.time_ns() - oldest) / 1e9, 1),
        "signals": signals,
    }
