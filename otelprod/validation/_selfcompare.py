"""SQL injection by comparing an operand with itself: ``or a=a``, ``([RANDNUM]=[RANDNUM]``.

Such a condition is true whatever the operand holds, which is why an injection that cannot know
a value uses it. A name counts only after a SQL keyword (``&&`` joins shell commands,
``f(name=name)`` passes a keyword argument in pasted code); a string or a [bracketed] name also
after ``&&``, ``||``, ``(`` or ``,``; a number after a keyword, and only where the condition
ends the input or goes on as SQL (``or 1=1--``, ``WHERE 1=1 AND 1=0#``: prose about SQL names
the idiom, ``start with WHERE 1=1 so that every condition…``).
"""

from __future__ import annotations

import re

_OPERAND = r"(\[\w{1,30}\]|[\w.@$]{1,30}|'[^'\n]{0,20}'|\"[^\"\n]{0,20}\")"
# the right operand, whole: not followed by more of a name or by arithmetic on it
_RIGHT_OPERAND = re.compile(_OPERAND + r"(?![\w\]'\"$]|\s*(?:[(.+*/]|-(?!-)))")
_KEYWORD_BEFORE = re.compile(r"(?<![\w$])(?:and|or|xor|not|when|where|having)\Z")
_NUMBER = re.compile(r"[\d.]+")
# after a comparison of numbers: the end, a comment (an en dash too, as pasted), a quote or
# parenthesis closing, a statement's end, another condition
_SQL_GOES_ON = re.compile(r"\s*(?:\Z|--|#|/\*|[\u2013'\");]|(?:and|or|xor)(?![\w$]))")
_NAME = re.compile(r"[a-z_$@][\w.$@]*")
_TAG = re.compile(r"<[a-z!/?]")  # markup: its "="s are attributes
_BLANKS = " \t\n\r"
_OPERAND_ENDS = {"'": "'", '"': '"', "[": "]"}  # by the operand's first character
_MAX_COMPARISONS = 8  # the first "="s of the input; each costs a few Python steps


def self_comparison(text: str) -> str | None:
    """An excerpt from the first comparison of an operand with itself, or None."""
    if _TAG.search(text):
        return None
    at = text.find("=")
    for _ in range(_MAX_COMPARISONS):
        if at < 0:
            return None
        last = _skip_blanks_back(text, at)  # just past the left operand
        first = at + 1  # the right operand's first character
        while first < len(text) and text[first] in _BLANKS:
            first += 1
        if last and first < len(text) and text[last - 1] not in "<>!=" and text[first] != "=":
            # cheap first: an HTML attribute (``src="x"``) ends unlike its value starts
            ends = _OPERAND_ENDS.get(text[first])
            alike = text[last - 1] == ends if ends else _in_name(text[last - 1])
            right = alike and _RIGHT_OPERAND.match(text, first)
            if right:
                start = last - len(right.group(1))
                if _compared_with_itself(text, right.group(1), start, right.end()):
                    return text[start : start + 80]
        at = text.find("=", at + 1)
    return None


def _in_name(char: str) -> bool:
    return char.isalnum() or char in "_.@$"


def _compared_with_itself(text: str, operand: str, start: int, after: int) -> bool:
    """Whether the ``operand`` that also follows the "=" starts at ``start`` (not inside a
    longer name), with a lead that makes the comparison SQL."""
    if (start < 0 or not text.startswith(operand, start)
            or (start and _in_name(text[start - 1]))):
        return False
    lead = _lead(text, start)
    if _NUMBER.fullmatch(operand):
        return lead == "keyword" and _SQL_GOES_ON.match(text, after) is not None
    return lead == "keyword" or (lead == "symbol" and not _NAME.fullmatch(operand))


def _lead(text: str, start: int) -> str:
    """What leads up to the operand at ``start``: ``"keyword"`` (AND, OR, WHEN, WHERE, …,
    perhaps then a parenthesis), ``"symbol"`` (``&&``, ``||``, ``(``, ``,``) or ``""``."""
    at = _skip_blanks_back(text, start)
    if at and text[at - 1] == "(":
        before = _skip_blanks_back(text, at - 1)
        return "keyword" if _KEYWORD_BEFORE.search(text, max(0, before - 8), before) else "symbol"
    if _KEYWORD_BEFORE.search(text, max(0, at - 8), at):
        return "keyword"
    return "symbol" if text[at - 1 : at] == "," or text[max(0, at - 2) : at] in ("&&", "||") else ""


def _skip_blanks_back(text: str, end: int) -> int:
    """The position just past the last character before ``end`` that is no blank."""
    while end and text[end - 1] in _BLANKS:
        end -= 1
    return end
