"""Standard-library implementation details otelprod relies on (see ``otelprod/_compat``).

* ``itertools.count``'s repr is ``count(N)``, N being how many times
  ``next()`` was called. The resilience wrappers count calls with one
  ``next()`` on a count per attribute set (one atomic C call, no lock, about
  20 ns) and read the total from the repr, the only way to read it without
  advancing it.
"""

from __future__ import annotations

import itertools


def count_value(counter: itertools.count[int]) -> int:
    """How many times ``next(counter)`` was called (for a count started at 0, step 1)."""
    text = repr(counter)
    if not (text.startswith("count(") and text.endswith(")")):
        raise ValueError(f"itertools.count's repr is {text!r}, not 'count(N)': otelprod reads "
                         "call counts from it (see otelprod/_compat/stdlib.py)")
    return int(text[6:-1])
