"""What the rule-based detectors (``_sqli``, ``_xss``) share: gate selection and excerpts."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

_EXCERPT_CHARS = 80

_R = TypeVar("_R")


class GatedRules(Generic[_R]):
    """Rules in their order, each with a gate: the features of which an input needs one.

    ``select(features)`` is the rules whose gates an input with those ``features`` passes
    (rules with an empty gate always), in order, remembered per set of features (inputs
    share a few dozen sets at most): no rule is looked at only to be skipped.
    """

    _MAX_REMEMBERED = 4096

    def __init__(self, rules: Sequence[_R], gate: Callable[[_R], frozenset[str]]) -> None:
        self.rules = list(rules)
        self._gates = [gate(rule) for rule in self.rules]
        self._selected: dict[frozenset[str], list[_R]] = {}

    def select(self, features: frozenset[str]) -> list[_R]:
        selected = self._selected.get(features)
        if selected is None:
            selected = [rule for rule, gate in zip(self.rules, self._gates, strict=True)
                        if not gate or not gate.isdisjoint(features)]
            if len(self._selected) < self._MAX_REMEMBERED:
                self._selected[features] = selected
        return selected


def combine(patterns: Sequence[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern for several, so a text costs one search: group ``p<i>`` is the i-th.

    The leftmost match wins and, at one position, the earliest pattern; the patterns
    must have no groups of their own.
    """
    assert all(pattern.groups == 0 for pattern in patterns)
    return re.compile("|".join(f"(?P<p{i}>{pattern.pattern})"
                               for i, pattern in enumerate(patterns)))


def combined_index(match: re.Match[str]) -> int:
    """Which of the ``combine``d patterns matched."""
    return int((match.lastgroup or "p0")[1:])


def excerpt(text: str, match: re.Match[str]) -> str:
    """The matched piece of ``text``, cut to a readable length."""
    start, end = match.span()
    piece = text[start : min(end, start + _EXCERPT_CHARS)]
    return piece if end - start <= _EXCERPT_CHARS else piece + "…"
