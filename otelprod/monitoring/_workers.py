"""Pre-fork servers: one process answers the probes, for every worker.

Under gunicorn (or any pre-fork server) one health port serves several
processes. One of them serves it: the arbiter with ``preload_app`` (it ran
``init()`` before forking), else the first worker that bound the port. Every
other process of the group writes a heartbeat, about once a second, into a
small private directory named after the port (``$TMPDIR/otelprod-health-<uid>/
<port>/<pid>.json``): its pid, the time, and whether its critical health checks
pass, as its background checks last found. The serving process reads them:

* ``/health/live`` fails when there are workers and none of them has
  written a heartbeat within ``stale_after`` seconds (every worker hung);
  a worker that died is forgotten (its pid is gone), as gunicorn replaces it.
  A serving process that is a worker itself (no ``preload_app``: it is not the
  parent of the others) counts as one fresh worker: it is answering;
* ``/health/ready`` also needs at least one worker that is fresh and ready;
* the report lists each worker.

A worker whose serving process is gone (the first worker exited) takes the
port over at its next heartbeat. The alternative, each worker binding the
port with ``SO_REUSEPORT``, was rejected: each probe would reach one worker
at random, so a hung worker fails one probe in N and a probe never speaks for
the pod; macOS does not even balance such sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: seconds between two heartbeats of a worker
HEARTBEAT_INTERVAL = 1.0
#: a worker silent for longer than this counts as hung
DEFAULT_STALE_AFTER = 10.0
_SERVER = "server.json"


def _uid() -> int:
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else 0


def group_dir(port: int) -> Path:
    """Where the processes sharing ``port`` meet; private to this user."""
    return Path(tempfile.gettempdir()) / f"otelprod-health-{_uid()}" / str(port)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class WorkerBeat:
    """The last heartbeat of one worker, as the serving process sees it."""

    pid: int
    parent: int
    age_s: float
    ready: bool
    failing: tuple[str, ...]
    fresh: bool

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "parent": self.parent, "last_heartbeat_s": round(self.age_s, 3),
                "fresh": self.fresh, "ready": self.ready, "failing": list(self.failing)}


class WorkerGroup:
    """The processes that share one health port, met in one directory."""

    def __init__(self, port: int, stale_after: float = DEFAULT_STALE_AFTER) -> None:
        self.port = port
        self.stale_after = stale_after
        self.path = group_dir(port)

    def _prepare(self) -> None:
        root = self.path.parent
        root.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(root)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != _uid() or info.st_mode & 0o077:
            raise PermissionError(f"{root} is not a private directory of this user")
        self.path.mkdir(mode=0o700, exist_ok=True)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self._prepare()
        temporary = self.path / f".{name}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, self.path / name)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # --- the serving process ----------------------------------------------------------------
    def claim(self) -> None:
        """This process serves the port now; heartbeats left by an earlier run are dropped."""
        self._write(_SERVER, {"pid": os.getpid(), "since": time.time()})
        for beat in self.beats():
            if not beat.fresh:
                with contextlib.suppress(OSError):
                    (self.path / f"{beat.pid}.json").unlink()

    def release(self) -> None:
        """This process stops serving (only its own claim is removed)."""
        data = self._read(self.path / _SERVER)
        if data is not None and data.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                (self.path / _SERVER).unlink()

    def server_pid(self) -> int | None:
        """The live process, other than this one, that serves the port; else None."""
        data = self._read(self.path / _SERVER)
        pid = data.get("pid") if data else None
        if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
            return pid
        return None

    def beats(self) -> list[WorkerBeat]:
        """Every other worker's last heartbeat; those of dead processes are removed."""
        out = []
        now = time.time()
        try:
            entries = list(self.path.glob("*.json"))
        except OSError:
            return []
        for path in entries:
            if path.name == _SERVER or not path.stem.isdigit():
                continue
            pid = int(path.stem)
            if pid == os.getpid():
                continue
            if not pid_alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            data = self._read(path)
            if data is None:
                continue
            age = max(0.0, now - float(data.get("time", 0.0)))
            out.append(WorkerBeat(pid, int(data.get("parent", 0)), age,
                                  bool(data.get("ready", True)),
                                  tuple(str(f) for f in data.get("failing", ())),
                                  age <= self.stale_after))
        return sorted(out, key=lambda beat: beat.pid)

    # --- a worker ---------------------------------------------------------------------------
    def beat(self, ready: bool, failing: list[str]) -> None:
        self._write(f"{os.getpid()}.json",
                    {"pid": os.getpid(), "parent": os.getppid(), "time": time.time(),
                     "ready": ready, "failing": failing})

    def leave(self) -> None:
        with contextlib.suppress(OSError):
            (self.path / f"{os.getpid()}.json").unlink()


@dataclass(frozen=True)
class WorkersView:
    """What the serving process makes of its workers' heartbeats."""

    beats: tuple[WorkerBeat, ...]

    @property
    def serving_process_is_a_worker(self) -> bool:
        """False for the arbiter of a ``preload_app`` server: the workers are its children."""
        return not any(beat.parent == os.getpid() for beat in self.beats)

    @property
    def alive(self) -> bool:
        """False only when there are workers and every one of them is silent."""
        return self.serving_process_is_a_worker or any(beat.fresh for beat in self.beats)

    @property
    def ready(self) -> bool:
        """Some worker can take requests (the serving one's own checks are asked apart)."""
        return self.serving_process_is_a_worker or any(
            beat.fresh and beat.ready for beat in self.beats)

    def to_dict(self) -> dict[str, Any]:
        return {"served_by": os.getpid(), "serving_process_is_a_worker":
                self.serving_process_is_a_worker, "alive": self.alive, "ready": self.ready,
                "workers": [beat.to_dict() for beat in self.beats]}


__all__ = ["DEFAULT_STALE_AFTER", "HEARTBEAT_INTERVAL", "WorkerBeat", "WorkerGroup",
           "WorkersView", "group_dir", "pid_alive"]
