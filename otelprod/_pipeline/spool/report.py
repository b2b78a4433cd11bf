"""What a spool directory holds, read from the outside: for ``otelprod spool status``.

Nothing here writes: a spool that a running service uses can be looked into
at any time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from otelprod._pipeline.spool.store import CLAIM, DROP_LOG, Segment, unclaimed


def read_drops(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """signal -> reason -> items, from a spool directory's drop log (and its rotation)."""
    out: dict[str, dict[str, int]] = {}
    for name in (f"{DROP_LOG}.1", DROP_LOG):
        try:
            lines = (Path(path) / name).read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for line in lines.splitlines():
            parts = line.split()
            if len(parts) != 5 or not parts[4].isdigit():
                continue
            by_reason = out.setdefault(parts[2], {})
            by_reason[parts[3]] = by_reason.get(parts[3], 0) + int(parts[4])
    return out


def writable(path: str | os.PathLike[str]) -> bool | None:
    """Whether the directory looks writable (a read-only mount, or no write permission
    for a non-root user); None when it does not exist. Root's immutable (chattr +i)
    directories are not seen here: a write is the only test of those."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return None
    return os.access(path, os.W_OK)


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
        segment = Segment.parse(unclaimed(name), size)
        if segment is None:
            continue
        info = signals.setdefault(segment.signal, {"segments": 0, "bytes": 0, "items": 0})
        info["segments"] += 1
        info["bytes"] += size
        info["items"] += segment.count
        claimed += CLAIM in name
        oldest = segment.written_ns if oldest is None else min(oldest, segment.written_ns)
    drops = read_drops(directory)
    dropped_by_reason: dict[str, int] = {}
    for by_reason in drops.values():
        for reason, n in by_reason.items():
            dropped_by_reason[reason] = dropped_by_reason.get(reason, 0) + n
    return {
        "path": str(directory),
        "writable": writable(directory),
        "segments": sum(s["segments"] for s in signals.values()),
        "bytes": sum(s["bytes"] for s in signals.values()),
        "claimed": claimed,
        "oldest_age_s": None if oldest is None else round((time.time_ns() - oldest) / 1e9, 1),
        "signals": signals,
        "dropped": sum(dropped_by_reason.values()),
        "dropped_by_reason": dropped_by_reason,
        "dropped_by_signal": drops,
    }
