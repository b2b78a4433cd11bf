"""What the rule-based detectors (``_sqli``, ``_xss``) share: gates and excerpts."""

from __future__ import annotations

import re

# A cheap test that must pass before a rule's pattern runs: any of these substrings, or a
# match of a pattern that cannot backtrack. Most input never reaches the real patterns.
Gate = tuple[str, ...] | re.Pattern[str]

_EXCERPT_CHARS = 80


def passes(gate: Gate, text: str) -> bool:
    if isinstance(gate, tuple):
        # substring tests: C's substring search beats a regex alternation, which tries
        # every alternative at every position
        return any(word in text for word in gate)
    return gate.search(text) is not None


def excerpt(text: str, match: re.Match[str]) -> str:
    """The matched piece of ``text``, cut to a readable length."""
    start, end = match.span()
    piece = text[start : min(end, start + _EXCERPT_CHARS)]
    return piece if end - start <= _EXCERPT_CHARS else piece + "…"
