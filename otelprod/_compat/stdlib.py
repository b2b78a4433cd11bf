"""Standard-library implementation details otelprod relies on (see ``otelprod/_compat``).

* ``logging.handlers.QueueListener`` stops its thread when it dequeues the
  object in its private ``_sentinel`` (what ``enqueue_sentinel()`` queues).
  The JSON writer takes several queued lines at a time, so it must know the
  sentinel to hand it back alone.

* ``itertools.count``'s repr is ``count(N)``, N being how many times
  ``next()`` was called. The resilience wrappers count calls with one
  ``next()`` on a count per attribute set (one atomic C call, no lock, about
  20 ns) and read the total from the repr, the only way to read it without
  advancing it.
* ``threading._SHUTTING_DOWN`` says that the interpreter has begun to exit,
  when Python 3.12 starts no new thread (:func:`threads_refused`).
"""

from __future__ import annotations

import itertools
import logging.handlers
from typing import Any


def count_value(counter: itertools.count[int]) -> int:
    """How many times ``next(counter)`` was called (for a count started at 0, step 1)."""
    text = repr(counter)
    if not (text.startswith("count(") and text.endswith(")")):
        raise ValueError(f"itertools.count's repr is {text!r}, not 'count(N)': otelprod reads "
                         "call counts from it (see otelprod/_compat/stdlib.py)")
    return int(text[6:-1])


def queue_listener_sentinel(listener: logging.handlers.QueueListener) -> Any:
    """The object that stops ``listener``'s thread when dequeued."""
    try:
        return listener._sentinel  # type: ignore[attr-defined]
    except AttributeError:
        raise AttributeError(
            "logging.handlers.QueueListener has no attribute '_sentinel', which otelprod's "
            "JSON writer uses to stop its thread (see otelprod/_compat/stdlib.py)") from None


def threads_refused() -> bool:
    """Whether the interpreter has begun to exit (``threading._shutdown`` ran).

    From then on Python 3.12 refuses to start a thread ("can't create new
    thread at interpreter shutdown"); 3.13 allows it again. The exporters must
    not begin a send that needs a new thread then (a gRPC future starts one),
    and there is no public way to ask, so they read ``threading._SHUTTING_DOWN``.
    """
    import threading

    try:
        return bool(threading._SHUTTING_DOWN)  # type: ignore[attr-defined]
    except AttributeError:
        raise AttributeError("threading has no attribute '_SHUTTING_DOWN', which otelprod reads "
                             "to avoid starting threads at interpreter exit (see "
                             "otelprod/_compat/stdlib.py)") from None
