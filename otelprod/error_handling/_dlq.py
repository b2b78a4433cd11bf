"""A durable dead-letter queue: failed operations kept in SQLite for review and replay.

SQLite in WAL mode with ``synchronous=FULL``: every ``add`` that returned is
on disk, whatever happens to the process afterwards (SIGKILL included), and
several processes may write at once (each waits for the others through the
busy timeout). The file is opened on first use, never at import, at
``OTELPROD_DLQ_PATH`` or ``.otelprod/dead_letter.db`` under the working
directory. Payloads must be JSON-serialisable: a payload that is not is
refused at ``add`` with the offending key named, instead of becoming a row
that cannot be replayed.

Nothing secret is written to the file: the operation, payload, metadata and
error text are scrubbed before they are stored (a registered secret or a value
under a sensitive key such as ``password`` becomes ``[REDACTED]``). A replay
handler therefore gets ``[REDACTED]`` where the secret was: pass a secret's
name in the payload and look the value up when replaying, not the value.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tenacity
from opentelemetry.metrics import CallbackOptions, Observation

from otelprod import semconv
from otelprod._scrub import scrubber
from otelprod._telemetry import add_event, meter, safely, truncate
from otelprod.error_handling._common import _log
from otelprod.error_handling._validate import Checker

ENV_PATH = "OTELPROD_DLQ_PATH"
DEFAULT_PATH = Path(".otelprod") / "dead_letter.db"
#: how long a replaying process owns an item before another may take it
REPLAY_LEASE_S = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    payload TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    last_attempt_at REAL NOT NULL,
    claimed_until REAL
);
CREATE INDEX IF NOT EXISTS dead_letters_operation ON dead_letters (operation);
"""
_COLUMNS = ("id, operation, payload, error_type, error_message, metadata, attempts, "
            "created_at, last_attempt_at")

_enqueued = meter.create_counter(
    semconv.METRIC_DEADLETTER_ENQUEUED, unit="{item}",
    description="Operations put into the dead-letter queue.")
_replayed = meter.create_counter(
    semconv.METRIC_DEADLETTER_REPLAYED, unit="{item}",
    description="Dead-letter replays, by result.")
_queues: weakref.WeakSet[DeadLetterQueue] = weakref.WeakSet()


def _observe_sizes(_options: CallbackOptions) -> list[Observation]:
    out = []
    for queue in list(_queues):
        try:
            out.append(Observation(queue.count(), {semconv.DEADLETTER_QUEUE: queue.name}))
        except Exception:
            _log.debug("could not count dead letters in %s", queue, exc_info=True)
    return out


meter.create_observable_gauge(
    semconv.METRIC_DEADLETTER_QUEUE_SIZE, callbacks=[_observe_sizes], unit="{item}",
    description="Operations waiting in the dead-letter queue.")

def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


_JSON_ALLOWED = "dict, list, tuple, str, int, finite float, bool or None"


def _not_json(value: Any, where: str, depth: int = 0) -> str | None:
    """Where ``value`` stops being JSON, as a message; None when it is JSON throughout."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, not a finite float"
    if depth > 100:
        return f"{where} nests deeper than 100 levels"
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _not_json(item, f"{where}[{i}]", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return (f"{where} has a key {key!r} of type {type(key).__name__}; "
                        "keys must be str")
            problem = _not_json(item, f"{where}[{key!r}]", depth + 1)
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__name__}"


def _to_json(value: Any, what: str) -> str:
    problem = _not_json(value, what)
    if problem:
        raise TypeError(f"dead_letter_queue.add: {what} must be JSON-serialisable ({_JSON_ALLOWED})"
                        f"; {problem}")
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _check_path(check: Checker, path: Any) -> None:
    if path is not None and not (isinstance(path, (str, os.PathLike)) and str(path)):
        check._bad("path", path, "a file path (str or os.PathLike) or None")


def _check_operation(operation: Any) -> None:
    if operation is not None and not isinstance(operation, str):
        raise TypeError(f"operation: expected a str or None, got {type(operation).__name__} "
                        f"{operation!r}")


def _item_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"item_id: expected an int, got {type(value).__name__} {value!r}")
    return value


@dataclass(frozen=True)
class DeadLetterItem:
    """One failed operation, as stored."""

    id: int
    operation: str
    payload: Any
    error_type: str | None
    error_message: str | None
    metadata: dict[str, Any]
    attempts: int  # failed attempts: 1 at ``add``, one more per failed replay
    created_at: float
    last_attempt_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> DeadLetterItem:
        return cls(id=row[0], operation=row[1], payload=json.loads(row[2]), error_type=row[3],
                   error_message=row[4], metadata=json.loads(row[5]), attempts=row[6],
                   created_at=row[7], last_attempt_at=row[8])


@dataclass(frozen=True)
class ReplayResult:
    """What became of one item in ``replay``.

    ``status``: ``replayed`` (handler succeeded, item removed), ``failed``
    (handler raised, item kept with ``attempts`` raised), ``skipped`` (another
    process is replaying it right now) or ``missing`` (no such id).
    """

    id: int
    status: str
    operation: str | None = None
    attempts: int = 0
    error: str | None = None
    result: Any = None

    @property
    def success(self) -> bool:
        return self.status == "replayed"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["result"] = truncate(self.result) if self.result is not None else None
        return out


class DeadLetterQueue:
    """A dead-letter queue in one SQLite file; safe across threads and processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, name: str = "default",
                 busy_timeout: float = 30.0) -> None:
        check = Checker("DeadLetterQueue")
        _check_path(check, path)
        if not isinstance(name, str) or not name:
            check._bad("name", name, "a non-empty str")
        check.number("busy_timeout", busy_timeout, 0, exclusive=True)
        check.done()
        self.name = name
        self.busy_timeout = busy_timeout
        self._configured = Path(path) if path is not None else None
        self._resolved: Path | None = None
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._attrs = {semconv.DEADLETTER_QUEUE: name}
        _queues.add(self)

    # --- where, and the connection ---------------------------------------------------------
    @property
    def path(self) -> Path:
        """The database file: explicit path, else ``$OTELPROD_DLQ_PATH``, else ``./.otelprod/``."""
        if self._resolved is None:
            chosen = self._configured or os.environ.get(ENV_PATH) or DEFAULT_PATH
            self._resolved = Path(chosen).expanduser().absolute()
        return self._resolved

    def configure(self, path: str | os.PathLike[str] | None) -> None:
        """Point the queue at another file (None: back to the default); reopened on next use."""
        check = Checker("DeadLetterQueue.configure")
        _check_path(check, path)
        check.done()
        with self._lock:
            self.close()
            self._configured = Path(path) if path is not None else None
            self._resolved = None

    def close(self) -> None:
        _queues.discard(self)  # a closed queue is no longer observed by the size gauge
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                safely("closing the dead-letter database", self._conn.close)
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        # Caller holds self._lock. A connection inherited over fork() is abandoned, not used.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.DatabaseError as exc:
            raise type(exc)(f"dead-letter queue {path}: {exc}") from exc
        try:
            # Switching a new file to WAL while another process does the same can fail
            # with "database is locked" without waiting for the busy timeout: retry it.
            tenacity.Retrying(
                retry=tenacity.retry_if_exception(_is_locked), reraise=True,
                stop=tenacity.stop_after_delay(self.busy_timeout),
                wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.2),
            )(self._prepare, conn)
        except sqlite3.DatabaseError as exc:  # "file is not a database": say which file
            conn.close()
            raise type(exc)(f"dead-letter queue {path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        _queues.add(self)  # observed again if it was closed and is used once more
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(_SCHEMA)

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.execute(sql, tuple(params))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return cursor

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db().execute(sql, tuple(params)).fetchall()

    # --- the API -------------------------------------------------------------------------
    def add(self, operation: str, payload: Any, error: BaseException | str | None = None,
            metadata: dict[str, Any] | None = None) -> int:
        """Store a failed operation; returns its id once it is committed to disk."""
        if not isinstance(operation, str) or not operation:
            raise TypeError("dead_letter_queue.add: operation must be a non-empty str, got "
                            f"{operation!r} ({type(operation).__name__})")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError("dead_letter_queue.add: metadata must be a dict or None, got "
                            f"{type(metadata).__name__}")
        payload_json = _to_json(scrubber.scrub(payload), "payload")
        metadata_json = _to_json(scrubber.scrub(metadata or {}), "metadata")
        operation = scrubber.scrub_text(operation)
        if isinstance(error, BaseException):
            error_type: str | None = type(error).__qualname__
            error_message: str | None = scrubber.scrub_text(str(error))
        elif error is None or isinstance(error, str):
            error_type = None
            error_message = None if error is None else scrubber.scrub_text(error)
        else:
            raise TypeError("dead_letter_queue.add: error must be an exception, a str or None, "
                            f"got {type(error).__name__}")
        now = time.time()
        item_id = int(self._write(
            "INSERT INTO dead_letters (operation, payload, error_type, error_message, metadata,"
            " attempts, created_at, last_attempt_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (operation, payload_json, error_type, error_message, metadata_json, now, now),
        ).lastrowid or 0)
        safely("counting a dead letter", _enqueued.add, 1, self._attrs)
        attrs: dict[str, Any] = {semconv.DEADLETTER_QUEUE: self.name,
                                 semconv.DEADLETTER_OPERATION: operation,
                                 semconv.DEADLETTER_ITEM_ID: item_id}
        if error_type:
            attrs[semconv.ERROR_TYPE] = error_type
        add_event(semconv.EVENT_DEADLETTER_ENQUEUED, attrs)
        return item_id

    def get_all(self, operation: str | None = None, limit: int | None = None
                ) -> list[DeadLetterItem]:
        """Stored items, oldest first; optionally of one operation, at most ``limit``."""
        _check_operation(operation)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValueError(f"limit: expected an int >= 0 or None, got {type(limit).__name__} "
                             f"{limit!r}")
        if not self._exists():
            return []
        sql = f"SELECT {_COLUMNS} FROM dead_letters"
        params: list[Any] = []
        if operation is not None:
            sql += " WHERE operation = ?"
            params.append(operation)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [DeadLetterItem._from_row(r) for r in self._read(sql, params)]

    def get(self, item_id: int) -> DeadLetterItem | None:
        item_id = _item_id(item_id)
        if not self._exists():
            return None
        rows = self._read(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (item_id,))
        return DeadLetterItem._from_row(rows[0]) if rows else None

    def remove(self, item_id: int) -> bool:
        item_id = _item_id(item_id)
        if not self._exists():
            return False
        return self._write("DELETE FROM dead_letters WHERE id = ?", (item_id,)).rowcount > 0

    def clear(self, operation: str | None = None) -> int:
        """Delete every item (or every item of ``operation``); returns how many."""
        _check_operation(operation)
        if not self._exists():
            return 0
        if operation is None:
            return self._write("DELETE FROM dead_letters").rowcount
        return self._write("DELETE FROM dead_letters WHERE operation = ?", (operation,)).rowcount

    def count(self) -> int:
        """How many items wait; 0 without creating the file when there is none yet."""
        if not self._exists():
            return 0
        return int(self._read("SELECT COUNT(*) FROM dead_letters")[0][0])

    def replay(self, handler: Callable[[DeadLetterItem], Any], ids: Iterable[int] | None = None,
               *, operation: str | None = None) -> list[ReplayResult]:
        """Hand items to ``handler`` one by one: removed when it returns, kept when it raises.

        Each item is leased while its handler runs, so two processes replaying
        at once never both handle it. ``ids`` limits the replay to those items.
        """
        if not callable(handler):
            raise TypeError(f"replay: handler must be callable, got {type(handler).__name__}")
        if ids is None:
            targets = [item.id for item in self.get_all(operation=operation)]
        else:
            targets = [_item_id(i) for i in ids]
        return [self._replay_one(handler, item_id) for item_id in targets]

    def _replay_one(self, handler: Callable[[DeadLetterItem], Any], item_id: int) -> ReplayResult:
        now = time.time()
        if not self._exists():
            return ReplayResult(item_id, "missing")
        claimed = self._write(
            "UPDATE dead_letters SET claimed_until = ? WHERE id = ?"
            " AND (claimed_until IS NULL OR claimed_until < ?)",
            (now + REPLAY_LEASE_S, item_id, now)).rowcount
        item = self.get(item_id)
        if item is None:
            return ReplayResult(item_id, "missing")
        if not claimed:
            return ReplayResult(item_id, "skipped", item.operation, item.attempts,
                                "being replayed by another process")
        try:
            result = handler(item)
        except Exception as exc:
            error = scrubber.scrub_text(f"{type(exc).__qualname__}: {exc}")
            self._write(
                "UPDATE dead_letters SET attempts = attempts + 1, last_attempt_at = ?,"
                " error_type = ?, error_message = ?, claimed_until = NULL WHERE id = ?",
                (time.time(), type(exc).__qualname__, scrubber.scrub_text(str(exc)), item_id))
            self._count_replay(semconv.DeadLetterResult.FAILURE)
            return ReplayResult(item_id, "failed", item.operation, item.attempts + 1, error)
        except BaseException:
            self._write("UPDATE dead_letters SET claimed_until = NULL WHERE id = ?", (item_id,))
            raise
        self._write("DELETE FROM dead_letters WHERE id = ?", (item_id,))
        self._count_replay(semconv.DeadLetterResult.SUCCESS)
        return ReplayResult(item_id, "replayed", item.operation, item.attempts, None, result)

    def _count_replay(self, result: str) -> None:
        safely("counting a replay", _replayed.add, 1,
               {**self._attrs, semconv.DEADLETTER_RESULT: result})

    def _exists(self) -> bool:
        return (self._conn is not None and self._pid == os.getpid()) or self.path.exists()

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "size": self.count()}

    def __repr__(self) -> str:
        return f"<DeadLetterQueue {self.name!r} at {self.path}>"


#: The process-wide queue the seed's examples and ``with_retry(dead_letter=True)`` use.
dead_letter_queue = DeadLetterQueue()


def configure_dead_letter_queue(path: str | os.PathLike[str] | None) -> DeadLetterQueue:
    """Move the global queue to ``path`` (None: back to the env var / default)."""
    dead_letter_queue.configure(path)
    return dead_letter_queue
