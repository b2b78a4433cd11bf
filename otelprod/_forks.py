"""The one place otelprod hooks into ``os.fork()``.

A pre-fork server (gunicorn with ``preload_app``) forks a process whose other
threads may be in the middle of a call: every lock they hold at that moment
stays held forever in the child, and every thread they ran is gone there. So
each object whose locks or threads a child needs registers callbacks here,
together with itself:

* the registry holds the owner weakly: an object that is gone drops out;
* a callback receives the owner as its only argument, so it need not (and
  must not) hold a reference to it; register a plain function or an unbound
  method (``forks.register(self, after_in_child=HealthChecker._after_fork)``);
* ``before`` callbacks run newest first, ``after_in_parent`` and
  ``after_in_child`` oldest first, as ``os.register_at_fork`` runs its own;
* a callback that fails is logged and the others still run: a fork never
  breaks over telemetry.

Order against the SDK: the registry's hook is registered when this module is
first imported, before otelprod builds any SDK object, so its child callbacks
run *before* the SDK's own fork handlers. That is what most state needs (the
SDK's batch processors restart their worker threads in their handlers, and
those threads then use our exporters). A callback that takes a lock the SDK
renews in its handler must run *after* it: :func:`register_late`.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: a callback: called with the object it was registered with
Hook = Callable[[T], object]

_log = logging.getLogger("otelprod.forks")


@dataclass(frozen=True)
class _Entry:
    owner: weakref.ref[Any]
    before: Hook[Any] | None
    after_in_parent: Hook[Any] | None
    after_in_child: Hook[Any] | None


_lock = threading.RLock()
_entries: list[_Entry] = []
_pruned_at = 0  # how many entries there were after the last pruning


def register(owner: T, *, before: Hook[T] | None = None,
             after_in_parent: Hook[T] | None = None,
             after_in_child: Hook[T] | None = None) -> None:
    """Call these around every ``os.fork()`` for as long as ``owner`` lives."""
    global _pruned_at
    entry = _Entry(weakref.ref(owner), before, after_in_parent, after_in_child)
    with _lock:
        _entries.append(entry)
        if len(_entries) > 2 * _pruned_at + 16:  # dead owners out, in amortised O(1)
            _entries[:] = [e for e in _entries if e.owner() is not None]
            _pruned_at = len(_entries)


def register_late(owner: T, after_in_child: Hook[T]) -> None:
    """Call ``after_in_child`` in a forked child *after* every fork handler registered so far.

    For callbacks that need what the SDK renews in its own handlers (e.g. a
    provider's lock): register it right after building the SDK objects. Each
    call adds a handler to the interpreter that stays for the life of the
    process (doing nothing once ``owner`` is gone), so call it once per
    pipeline, not per object.
    """
    ref = weakref.ref(owner)

    def hook() -> None:
        alive = ref()
        if alive is not None:
            _call("after_in_child", after_in_child, alive)

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=hook)


def _call(phase: str, callback: Hook[Any], owner: Any) -> None:
    try:
        callback(owner)
    except Exception:
        _log.warning("otelprod: the %s fork handler %r of %r failed", phase,
                     getattr(callback, "__qualname__", callback), owner, exc_info=True)


def _live(phase: str) -> list[tuple[Hook[Any], Any]]:
    calls = []
    for entry in _entries:
        callback = getattr(entry, phase)
        owner = entry.owner()
        if callback is not None and owner is not None:
            calls.append((callback, owner))
    return calls


def _before() -> None:
    _lock.acquire()  # released in both after-hooks: no registration is half done at fork
    for callback, owner in reversed(_live("before")):
        _call("before", callback, owner)


def _after_in_parent() -> None:
    try:
        for callback, owner in _live("after_in_parent"):
            _call("after_in_parent", callback, owner)
    finally:
        _lock.release()


def _after_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # the parent's is held by the forking thread's twin
    for callback, owner in _live("after_in_child"):
        _call("after_in_child", callback, owner)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before, after_in_parent=_after_in_parent,
                        after_in_child=_after_in_child)
