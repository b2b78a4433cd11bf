"""The dead-letter queue: a real SQLite file, real child processes, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otelprod import semconv
from otelprod._telemetry import tracer
from otelprod.cli import main as cli
from otelprod.error_handling import DeadLetterItem, DeadLetterQueue
from tests.conftest import REPO, python_env, run_python
from tests.error_handling_helpers import value


@pytest.fixture
def queue(tmp_path: Path) -> DeadLetterQueue:
    q = DeadLetterQueue(tmp_path / "dl.db", name="test")
    yield q
    q.close()


def test_add_get_remove_clear(queue):
    a = queue.add("send_email", {"to": "a@example.com", "n": [1, 2.5, None, True]},
                  error=ConnectionError("smtp down"), metadata={"tenant": "t1"})
    b = queue.add("charge", {"amount": 5}, error="declined")
    assert (a, b) == (1, 2)
    item = queue.get(a)
    assert isinstance(item, DeadLetterItem)
    assert item.payload == {"to": "a@example.com", "n": [1, 2.5, None, True]}
    assert (item.error_type, item.error_message) == ("ConnectionError", "smtp down")
    assert item.metadata == {"tenant": "t1"} and item.attempts == 1
    assert queue.get(b).error_type is None and queue.get(b).error_message == "declined"
    assert [i.id for i in queue.get_all()] == [1, 2]
    assert [i.id for i in queue.get_all(operation="charge")] == [2]
    assert queue.count() == 2
    assert queue.remove(a) is True and queue.remove(a) is False
    assert queue.get(a) is None
    assert queue.clear() == 1 and queue.count() == 0


def test_items_outlive_the_queue_object(tmp_path):
    path = tmp_path / "x.db"
    DeadLetterQueue(path).add("op", [1, 2, 3])
    again = DeadLetterQueue(path)
    assert [i.payload for i in again.get_all()] == [[1, 2, 3]]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


@pytest.mark.parametrize(("payload", "message"), [
    ({"when": object()}, "payload['when'] is a object"),
    ({"ok": [1, {"deep": {1, 2}}]}, "payload['ok'][1]['deep'] is a set"),
    ({"x": float("nan")}, "payload['x'] is nan, not a finite float"),
    ({1: "a"}, "payload has a key 1 of type int; keys must be str"),
    (b"bytes", "payload is a bytes"),
])
def test_non_json_payload_is_refused_at_add(queue, payload, message):
    with pytest.raises(TypeError) as err:
        queue.add("op", payload)
    assert message in str(err.value)
    assert "must be JSON-serialisable (dict, list, tuple, str, int, finite float" in str(err.value)
    assert queue.count() == 0


def test_other_bad_arguments(queue):
    with pytest.raises(TypeError, match="operation must be a non-empty str, got None"):
        queue.add(None, {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata must be a dict or None, got list"):
        queue.add("op", {}, metadata=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"metadata must be JSON-serialisable.*metadata\['t'\]"):
        queue.add("op", {}, metadata={"t": object()})
    with pytest.raises(TypeError, match="replay: handler must be callable"):
        queue.replay("nope")  # type: ignore[arg-type]


def test_nothing_secret_is_stored(queue, tmp_path):
    """Arguments and error text are scrubbed before they are written to the file."""
    from otelprod._scrub import scrubber

    secret = "dlq-s3cret-4f7e1a"
    scrubber.register_secret(secret)
    item_id = queue.add(f"charge {secret}", {"card": secret, "password": "hunter2-x",
                                              "amount": 5},
                        RuntimeError(f"card {secret} declined"), {"note": f"by {secret}"})
    item = queue.get(item_id)
    assert item.operation == "charge [REDACTED]"
    assert item.payload == {"card": "[REDACTED]", "password": "[REDACTED]", "amount": 5}
    assert item.error_message == "card [REDACTED] declined"
    assert item.metadata == {"note": "by [REDACTED]"}

    def fail(_item):
        raise ValueError(f"still {secret}")

    [result] = queue.replay(fail)
    assert result.error == "ValueError: still [REDACTED]"
    assert queue.get(item_id).error_message == "still [REDACTED]"
    queue.close()
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path
        assert b"hunter2-x" not in path.read_bytes(), path


def test_a_file_that_is_not_a_database_is_named(tmp_path, capsys):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError, match=f"dead-letter queue {garbage}: file is "
                                                    "not a database"):
        DeadLetterQueue(garbage).count()
    for command in (["list"], ["show", "1"], ["replay", "--handler", "builtins:repr"],
                    ["purge", "--yes"]):
        assert cli(["dlq", "--path", str(garbage), *command]) == 2, command
        out, err = capsys.readouterr()
        assert err.strip() == f"otelprod dlq: dead-letter queue {garbage}: file is not a " \
                              "database", command
        assert "Traceback" not in out + err


def test_replay_removes_successes_and_keeps_failures_with_attempts_raised(telemetry, queue):
    for n in range(4):
        queue.add("job", {"n": n})

    def handler(item: DeadLetterItem) -> int:
        if item.payload["n"] % 2:
            raise RuntimeError(f"still failing {item.payload['n']}")
        return item.payload["n"] * 10

    results = queue.replay(handler)
    assert [(r.id, r.status, r.attempts) for r in results] == [
        (1, "replayed", 1), (2, "failed", 2), (3, "replayed", 1), (4, "failed", 2)]
    assert results[0].result == 0 and results[2].result == 20
    assert results[1].error == "RuntimeError: still failing 1"
    left = queue.get_all()
    assert [(i.id, i.attempts, i.error_message) for i in left] == [
        (2, 2, "still failing 1"), (4, 2, "still failing 3")]
    again = queue.replay(lambda item: "fixed", ids=[4, 99])
    assert [(r.id, r.status) for r in again] == [(4, "replayed"), (99, "missing")]
    m = telemetry.metrics()
    q = {semconv.DEADLETTER_QUEUE: "test"}
    assert value(m, semconv.METRIC_DEADLETTER_REPLAYED,
                 {**q, semconv.DEADLETTER_RESULT: "success"}) == 3
    assert value(m, semconv.METRIC_DEADLETTER_REPLAYED,
                 {**q, semconv.DEADLETTER_RESULT: "failure"}) == 2
    assert value(m, semconv.METRIC_DEADLETTER_QUEUE_SIZE, q) == 1


def test_an_item_being_replayed_elsewhere_is_skipped(queue):
    item_id = queue.add("job", {})
    with sqlite3.connect(queue.path) as other:  # another process holds the lease
        other.execute("UPDATE dead_letters SET claimed_until = 9e12 WHERE id = ?", (item_id,))
    handled = []
    (result,) = queue.replay(handled.append)
    assert result.status == "skipped" and handled == []
    assert queue.count() == 1


def test_enqueue_telemetry(telemetry, queue):
    with tracer.start_as_current_span("checkout"):
        queue.add("charge", {"cents": 100}, error=TimeoutError("gateway"))
    (event,) = telemetry.events(semconv.EVENT_DEADLETTER_ENQUEUED)
    assert event.attributes[semconv.DEADLETTER_OPERATION] == "charge"
    assert event.attributes[semconv.DEADLETTER_ITEM_ID] == 1
    assert event.attributes[semconv.ERROR_TYPE] == "TimeoutError"
    m = telemetry.metrics()
    assert value(m, semconv.METRIC_DEADLETTER_ENQUEUED, {semconv.DEADLETTER_QUEUE: "test"}) == 1
    assert value(m, semconv.METRIC_DEADLETTER_QUEUE_SIZE, {semconv.DEADLETTER_QUEUE: "test"}) == 1


def test_import_creates_nothing_and_first_use_creates_the_default(tmp_path):
    code = """
        import os
        from otelprod.error_handling import dead_letter_queue, status_report
        status_report()
        print(os.path.exists('.otelprod'), dead_letter_queue.count())
        dead_letter_queue.add('op', {'a': 1})
        print(os.path.exists('.otelprod/dead_letter.db'), dead_letter_queue.count())
    """
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", "True", "1"]


def test_env_var_chooses_the_file(tmp_path):
    target = tmp_path / "elsewhere" / "q.db"
    code = "from otelprod.error_handling import dead_letter_queue as q; q.add('op', 1)"
    result = run_python(code, cwd=tmp_path, env=python_env(OTELPROD_DLQ_PATH=str(target)))
    assert result.returncode == 0, result.stderr
    assert DeadLetterQueue(target).count() == 1
    assert not (tmp_path / ".otelprod").exists()


WRITER = """
import sys
from otelprod.error_handling import DeadLetterQueue
q = DeadLetterQueue(sys.argv[1])
for n in range(int(sys.argv[3])):
    item_id = q.add(sys.argv[2], {"writer": sys.argv[2], "n": n, "blob": "x" * 200})
    print(item_id, flush=True)
"""


def writer(path: Path, tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(path), tag,
                             str(count)], env=python_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigkill_loses_nothing_committed(tmp_path):
    path = tmp_path / "kill.db"
    proc = writer(path, "victim", 1_000_000)
    acknowledged = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) == 60:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {item.id: item for item in DeadLetterQueue(path).get_all()}
    assert set(acknowledged) <= set(stored)
    assert all(stored[i].payload["blob"] == "x" * 200 for i in stored)
    ns = sorted(item.payload["n"] for item in stored.values())
    assert ns == list(range(len(ns)))  # nothing torn, nothing out of order


def test_two_processes_add_at_once(tmp_path):
    path = tmp_path / "two.db"
    procs = [writer(path, tag, 120) for tag in ("a", "b")]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    items = DeadLetterQueue(path).get_all()
    assert len(items) == 240 and len({i.id for i in items}) == 240
    for tag in ("a", "b"):
        assert sorted(i.payload["n"] for i in items if i.operation == tag) == list(range(120))


# --- CLI --------------------------------------------------------------------------------
def test_cli_list_show_replay_purge(tmp_path, capsys, monkeypatch):
    path = tmp_path / "cli.db"
    q = DeadLetterQueue(path)
    q.add("signup", {"email": "a@example.com", "password": "hunter22"}, error=ValueError("dup"))
    q.add("signup", {"email": "b@example.com"}, error=ValueError("dup"))
    (tmp_path / "replayers.py").write_text(textwrap.dedent("""
        def accept(item):
            if item.payload["email"].startswith("b"):
                raise RuntimeError("still broken")
            return "ok"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    base = ["dlq", "--path", str(path)]

    assert cli([*base, "list"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 dead letter(s)" in out and "signup" in out and "ValueError: dup" in out

    assert cli([*base, "show", "1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["payload"]["email"] == "a@example.com"
    assert shown["payload"]["password"] == "[REDACTED]"  # CLI output is scrubbed
    assert cli([*base, "show", "9"]) == 1

    assert cli([*base, "list", "--json"]) == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [1, 2]

    assert cli([*base, "replay", "--handler", "replayers:accept"]) == 1  # one still fails
    out = capsys.readouterr().out
    assert "replayed 1 of 2" in out and "RuntimeError: still broken" in out
    assert [i.id for i in q.get_all()] == [2] and q.get(2).attempts == 2

    assert cli([*base, "replay", "--handler", "replayers"]) == 2
    assert "package.module:function" in capsys.readouterr().err
    assert cli([*base, "replay", "--handler", "replayers:nope"]) == 2

    assert cli([*base, "purge"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert cli([*base, "purge", "--yes"]) == 0
    assert "purged 1" in capsys.readouterr().out
    assert q.count() == 0


def test_a_forked_child_opens_its_own_connection(tmp_path):
    q = DeadLetterQueue(tmp_path / "fork.db")
    q.add("parent", 1)  # the parent's connection is open when it forks
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            q.add("child", 2)
            os._exit(0 if q.count() == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    q.add("parent", 3)
    assert [i.operation for i in q.get_all()] == ["parent", "child", "parent"]
