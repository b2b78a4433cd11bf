"""``otelprod dlq list | show ID | replay --handler MOD:FUNC | purge --yes``.

Output goes through the scrubber: a dead letter's payload is exactly where a
password or token from a failed request would sit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from otelprod.error_handling import DeadLetterQueue, dead_letter_queue


def _queue(args: argparse.Namespace) -> DeadLetterQueue:
    return DeadLetterQueue(args.path) if args.path else dead_letter_queue


def _scrub(value: Any) -> Any:
    from otelprod._scrub import scrubber

    return scrubber.scrub(value)


def _print_json(value: Any) -> None:
    print(json.dumps(_scrub(value), indent=2, sort_keys=True, default=str))


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def cmd_list(args: argparse.Namespace) -> int:
    queue = _queue(args)
    items = queue.get_all(operation=args.operation, limit=args.limit)
    if args.json:
        _print_json([item.to_dict() for item in items])
        return 0
    print(f"{len(items)} of {queue.count()} dead letter(s) in {queue.path}")
    for item in items:
        error = f"{item.error_type or 'error'}: {item.error_message or ''}"
        line = (f"{item.id:>6}  {_when(item.created_at)}  {item.operation}  "
                f"attempts={item.attempts}  {error}")
        print(_scrub(line[:200]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    item = _queue(args).get(args.id)
    if item is None:
        print(f"no dead letter with id {args.id}", file=sys.stderr)
        return 1
    _print_json(item.to_dict())
    return 0


def load_handler(spec: str) -> Callable[..., Any]:
    """``package.module:function`` -> the function (clear errors for each way it can fail)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--handler must look like 'package.module:function', got {spec!r}")
    module = importlib.import_module(module_name)
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"--handler {spec!r} is a {type(target).__name__}, not a callable")
    return target  # type: ignore[no-any-return]


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        handler = load_handler(args.handler)
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"cannot load the replay handler: {exc}", file=sys.stderr)
        return 2
    results = _queue(args).replay(handler, ids=args.id or None, operation=args.operation)
    if args.json:
        _print_json([r.to_dict() for r in results])
    else:
        for r in results:
            print(_scrub(f"{r.id:>6}  {r.status:<8}  {r.operation or ''}  attempts={r.attempts}"
                         + (f"  {r.error}" if r.error else "")))
        ok = sum(r.success for r in results)
        print(f"replayed {ok} of {len(results)}")
    return 0 if all(r.success for r in results) else 1


def cmd_purge(args: argparse.Namespace) -> int:
    if not args.yes:
        print("purge deletes dead letters for good: add --yes to confirm", file=sys.stderr)
        return 2
    queue = _queue(args)
    if args.id:
        removed = sum(queue.remove(i) for i in args.id)
    else:
        removed = queue.clear(operation=args.operation)
    print(f"purged {removed} dead letter(s) from {queue.path}")
    return 0


def register(subparsers: Any) -> None:
    dlq = subparsers.add_parser("dlq", help="inspect, replay and purge the dead-letter queue")
    dlq.add_argument("--path", help="database file (default: $OTELPROD_DLQ_PATH or "
                                    "./.otelprod/dead_letter.db)")
    sub = dlq.add_subparsers(dest="dlq_command", required=True)

    p = sub.add_parser("list", help="list dead letters, oldest first")
    p.add_argument("--operation")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show one dead letter in full")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("replay", help="hand dead letters to a handler; remove those it accepts")
    p.add_argument("--handler", required=True,
                   help="package.module:function, called with each DeadLetterItem")
    p.add_argument("--id", type=int, action="append", help="only this item (repeatable)")
    p.add_argument("--operation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("purge", help="delete dead letters")
    p.add_argument("--id", type=int, action="append", help="only this item (repeatable)")
    p.add_argument("--operation")
    p.add_argument("--yes", action="store_true", help="confirm the deletion")
    p.set_defaults(func=cmd_purge)
