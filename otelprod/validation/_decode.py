"""Turn whatever arrived into text, then peel off the encodings attackers hide behind.

Detectors match structure, not spelling, so every layer a browser or a
database would peel off is peeled off here first: URL encoding (repeatedly,
``%uXXXX`` too), HTML entities (with or without the semicolon, zero-padded),
JavaScript and CSS escapes, UTF-7 for the classic ``+ADw-`` trick, null
bytes, and compatibility forms (full-width ``＜``). Every step is a single
linear pass; nothing here can backtrack.
"""

from __future__ import annotations

import functools
import html
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, unquote_to_bytes

#: how many times a layer of encoding is peeled before giving up (``%252527``)
MAX_DECODE_ROUNDS = 4

_PCT_U = re.compile(r"%u([0-9a-fA-F]{4})")
_ESCAPE_RUN = re.compile(r"(?:%[0-9a-fA-F]{2})+")
_MANY_PERCENT_SIGNS = 64
_JS_ESCAPE = re.compile(
    r"\\(?:u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|(0)(?![0-9]))"
)
_CSS_HEX_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t]?")
_ESCAPED_PUNCT = re.compile(r"\\([^\w\s])")
# a C callable as the replacement: a template such as r"\1" costs a Python call per
# substitution on 3.10 and 3.11
_FIRST_GROUP = operator.itemgetter(1)
_BACKSLASH_RUN = re.compile(r"\\{2,}")
_UTF7_CHUNK = re.compile(r"\+(A[A-Za-z0-9/]{1,7})-?")  # markup characters all encode as +A…
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL_INVISIBLE = re.compile(r"[\x00-\x1f\x7f\\]")
# the same sets as bytes, for ``_holds``
_ALL_CONTROL_BYTES = bytes([*range(0x20), 0x7F])
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_EXEC_COMMENT = re.compile(r"/\*!?\d{0,6}")
_SPLIT_WORD = re.compile(r"\w/\*[^*]{0,64}\*/\w")
_CDATA = re.compile(r"<!\[cdata\[|\]\]>")


def to_text(value: Any) -> tuple[str, list[str]]:
    """``value`` as a ``str`` that is safe to encode, plus the problems seen on the way.

    Never raises: ``None`` becomes ``""``, bytes are decoded as UTF-8 with
    replacement, lone surrogates are replaced, anything else goes through
    ``str()``.
    """
    if type(value) is str and value.isascii():  # the common case; ASCII has no surrogates
        return value, []
    problems: list[str] = []
    if value is None:
        return "", ["value is None"]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8"), problems
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace"), ["value is not valid UTF-8"]
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:  # a __str__ that raises is still just bad input
            return "", [f"value of type {type(value).__name__} cannot be read as text"]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.append("value is not valid Unicode (lone surrogate)")
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value, problems


def _utf7_char(match: re.Match[str]) -> str:
    return _utf7_markup(match.group(0), match.group(1))


@functools.lru_cache(maxsize=256)  # an input repeats a few chunks many times (+ADw-+ADw-…)
def _utf7_markup(chunk: str, body: str) -> str:
    try:
        decoded = ("+" + body + "-").encode("ascii").decode("utf-7")
    except Exception:
        return chunk
    # only the markup characters the trick is about; "+1" stays "+1"
    return decoded if decoded and all(c in "<>\"'`=()/&;:" for c in decoded) else chunk


def _js_unescape(match: re.Match[str]) -> str:
    if match.group(4):  # \0
        return ""
    code = int(match.group(1) or match.group(2) or match.group(3), 16)
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else ""


def _css_unescape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else ""


def _percent_decode(text: str) -> str:
    """``%XX`` escapes read as UTF-8; in ASCII text, escapes that are no UTF-8 as Latin-1
    bytes (``1%A0UNION``: a no-break space, which NFKC then makes a space)."""
    if not text.isascii():
        return unquote(text, errors="replace")
    if text.count("%") > _MANY_PERCENT_SIGNS:
        # unquote_to_bytes raises and catches an exception for every "%" that starts no
        # escape: on such text, a run of escapes at a time
        return _ESCAPE_RUN.sub(_decode_escape_run, text)
    decoded = _ascii_escapes(text)
    if decoded is not None:
        return decoded
    return _utf8_or_latin1(unquote_to_bytes(text))  # several times faster than unquote()


# every escape of an ASCII character, in either case: "3c", "3C" -> "<"
_ASCII_ESCAPE = {f"{high}{low}": chr(code) for code in range(0x80)
                 for high in {f"{code:02x}"[0], f"{code:02X}"[0]}
                 for low in {f"{code:02x}"[1], f"{code:02X}"[1]}}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _ascii_escapes(text: str) -> str | None:
    """``text`` with its ``%XX`` escapes decoded when each one is an ASCII character (the
    usual case: ``%3C``, ``%27``, ``%09``), else None for ``unquote_to_bytes`` to read the
    bytes above 0x7F as UTF-8 or Latin-1. A dictionary lookup per escape is half the cost."""
    pieces = text.split("%")
    out = [pieces[0]]
    escape = _ASCII_ESCAPE.get
    for piece in pieces[1:]:
        char = escape(piece[:2])
        if char is not None:
            out.append(char + piece[2:])
        elif len(piece) >= 2 and piece[0] in _HEX_DIGITS and piece[1] in _HEX_DIGITS:
            return None  # a byte above 0x7F
        else:
            out.append("%" + piece)  # no escape: "100%", "%zz"
    return "".join(out)


def _decode_escape_run(match: re.Match[str]) -> str:
    return _utf8_or_latin1(bytes.fromhex(match.group(0).replace("%", "")))


def _utf8_or_latin1(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decode_once(text: str, css: bool) -> str:
    if "%" in text:
        if "%u" in text or "%U" in text:
            text = _PCT_U.sub(lambda m: chr(int(m.group(1), 16)), text)
        text = _percent_decode(text)
    if "&" in text:
        text = html.unescape(text)
    if "\\" in text:
        if "\\\\" in text:  # a run of backslashes escapes itself down to one, in one pass
            text = _BACKSLASH_RUN.sub(r"\\\\", text)
        text = _JS_ESCAPE.sub(_js_unescape, text)
        if css:
            text = _CSS_HEX_ESCAPE.sub(_css_unescape, text)
        text = _ESCAPED_PUNCT.sub(_FIRST_GROUP, text)
    if "+A" in text:
        text = _UTF7_CHUNK.sub(_utf7_char, text)
    return text


def deep_decode(text: str, *, css: bool = True) -> str:
    """Peel encodings until nothing changes (at most ``MAX_DECODE_ROUNDS`` times).

    Null bytes stay: a browser drops them (``<scr%00ipt>``), a database reads them as
    whitespace (``1%00UNION%00SELECT``); each detector's view does what its reader does.
    ``css=False``: a backslash before hex digits is no CSS escape, as a database reads it
    (``\\1AND`` is not U+001A then ``ND``).
    """
    if "%" in text or "&" in text or "\\" in text or "+" in text:  # else nothing to peel
        for _ in range(MAX_DECODE_ROUNDS):
            decoded = _decode_once(text, css)
            if decoded == text:
                break
            text = decoded
            if "%" not in text and "&" not in text and "\\" not in text and "+A" not in text:
                break  # no layer left to peel: spare the round that would only confirm it
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text


# MySQL outside a literal: ``\\N`` is NULL, any other backslash is no token (read as a space)
_SQL_BACKSLASH = re.compile(r"\\(N?)")
_SQL_NULL = {"": " ", "N": " null "}


def _sql_backslash(match: re.Match[str]) -> str:
    return _SQL_NULL[match.group(1)]


def sql_decode(text: str) -> str:
    """``text`` decoded as a database reads it: the web encodings peeled, then MySQL's
    backslashes (``\\1=\\1AND\\1=\\1``, ``'is\\N-!'``) instead of CSS's."""
    return _sql_backslashes(deep_decode(text, css=False))


def _sql_backslashes(text: str) -> str:
    return _SQL_BACKSLASH.sub(_sql_backslash, text) if "\\" in text else text


def strip_block_comments(text: str, replacement: str) -> str:
    """Replace ``/* … */`` with ``replacement``, keeping MySQL's ``/*! … */`` bodies.

    A linear scan with ``str.find``: a regular expression here would rescan
    the rest of the input from every unterminated ``/*``.
    """
    if "/*" not in text:
        return text
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("/*", pos)
        if start < 0:
            break
        end = text.find("*/", start + 2)
        if end < 0:
            break
        out.append(text[pos:start])
        body = text[start + 2 : end]
        if body.startswith("!"):  # executable comment: MySQL runs what is inside
            out.append(" " + _EXEC_COMMENT.sub(" ", "/*" + body) + " ")
        else:
            out.append(replacement)
        pos = end + 2
    out.append(text[pos:])
    return "".join(out)


def strip_line_comments(text: str) -> str:
    """Drop ``#`` and ``-- `` comments that a newline ends (``union#x\nselect``).

    The last line keeps its comment: a comment that runs to the end of the
    input is itself evidence (``admin'--``) the rules look for.
    """
    if "\n" not in text or ("#" not in text and "--" not in text):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        cut = min((p for p in (line.find("#"), line.find("--")) if p >= 0), default=-1)
        if cut >= 0:
            lines[i] = line[:cut]
    return " ".join(lines)


# curled quotes and primes, read as the quotes they stand for (a database would not, but
# a payload copied through a word processor is still meant as one)
_CURLED_QUOTES = re.compile("[\u2018\u2019\u2032\u201c\u201d\u2033]")
# (NFKC has made a double prime two single ones by now: they stand for one double quote)
_STRAIGHT_QUOTES = (("\u2032\u2032", '"'), ("\u2018", "'"), ("\u2019", "'"), ("\u2032", "'"),
                    ("\u201c", '"'), ("\u201d", '"'), ("\u2033", '"'))


def replace_each(text: str, pairs: Iterable[tuple[str, str]]) -> str:
    """``text`` with each pair's first string replaced by its second, in order (str.replace:
    no Python call per occurrence, unlike a regex with a function or a translate table)."""
    for old, new in pairs:
        text = text.replace(old, new)
    return text


_T = TypeVar("_T")


class _lazy(Generic[_T]):
    """``functools.cached_property`` without its lock (3.10 and 3.11 take one per first
    access, which costs more than the views themselves); a view computed twice by two
    threads is merely computed twice."""

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, instance: Any, owner: Any = None) -> _T:
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


class CallFinder:
    """Which of some names a text writes as calls: ``sleep (5)``, ``x.alert(1)``.

    The search runs on the reversed text, where each candidate starts with a literal "(":
    the regex engine jumps from one "(" to the next instead of trying every letter as the
    start of a name.
    """

    def __init__(self, names: Iterable[str]) -> None:
        alternatives = sorted({name[::-1] for name in names}, key=len, reverse=True)
        self._pattern = re.compile(
            r"\(\s*(" + "|".join(map(re.escape, alternatives)) + r")(?![\w$])"
        )

    def __call__(self, text: str) -> frozenset[str]:
        if "(" not in text:
            return _NO_NAMES
        found = self._pattern.findall(text[::-1])
        return frozenset(name[::-1] for name in found) if found else _NO_NAMES


_NO_NAMES: frozenset[str] = frozenset()


def _holds(text: str, controls: bytes) -> bool:
    """Whether ``text`` holds one of the ``controls`` (bytes below 0x80).

    ``bytes.translate`` runs at memory speed, a regex character class at about ten
    nanoseconds a character; in UTF-8 a byte below 0x80 is always a character of its own.
    """
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw.translate(None, controls)) != len(raw)


class Prepared:
    """One input, decoded once and viewed the ways the detectors need.

    ``decoded``, ``lower`` and ``sql_text`` are made at once (both detectors read them);
    the other views when first read. ``decode=False``: the value is already what a
    browser or database would see.
    """

    def __init__(self, raw: str, problems: list[str], *, decode: bool = True) -> None:
        self.raw = raw
        self.problems = problems
        # a database reads backslashes its own way (no CSS escapes); the two readings differ
        # only where a backslash is left in the database's, and only then is it decoded twice
        sql_reading = deep_decode(raw, css=False) if decode else raw
        read_apart = decode and "\\" in sql_reading
        self.decoded = decoded = deep_decode(raw) if read_apart else sql_reading
        low = decoded.lower()
        #: any control character (tabs and newlines too): the SQL and URL views replace them
        self.controls = controls = _holds(low, _ALL_CONTROL_BYTES)
        #: what the SQL tokenizer reads: lower-cased, control characters (nulls too) as spaces
        self.sql_text: str
        if read_apart:
            sql = _sql_backslashes(sql_reading).lower()
            self.sql_text = _CONTROLS.sub(" ", sql) if _holds(sql, _ALL_CONTROL_BYTES) else sql
        else:
            self.sql_text = _CONTROLS.sub(" ", low) if controls else low
        # quotes a word processor curled (‘ or 1=1 --); isascii reads a flag, and a search
        # costs less than str.translate with a table (tens of microseconds a kilobyte)
        if not low.isascii() and _CURLED_QUOTES.search(self.sql_text):
            self.sql_text = replace_each(self.sql_text, _STRAIGHT_QUOTES)
        if controls and "\x00" in low:
            low = low.replace("\x00", "")
        #: what a browser reads: lower-cased, null bytes dropped
        self.lower = low
        if not controls and "/*" not in low and "\\" not in low and "cdata" not in low:
            self.compact = low  # nothing for ``compact`` to take out: the same text
        #: ``+`` and no space anywhere: ``+`` probably stands for a space (``1+or+1=1``)
        self.form_encoded = "+" in raw and " " not in raw

    @_lazy
    def compact(self) -> str:
        """What a URL parser or CSS tokenizer sees: controls, backslashes and comments gone."""
        text = _URL_INVISIBLE.sub("", strip_block_comments(self.lower, ""))
        return _CDATA.sub("", text) if "cdata" in text else text

    @_lazy
    def form_text(self) -> str:
        """``sql_text`` of the input read as a form field: ``+`` is a space, ``%2B`` a plus."""
        low = sql_decode(self.raw.replace("+", " ")).lower()
        return _CONTROLS.sub(" ", low) if _holds(low, _CONTROL_BYTES) else low

    @_lazy
    def sql_variants(self) -> tuple[str, ...]:
        """The views SQL rules run on.

        Block comments as whitespace and (if any) as nothing, for ``UN/**/ION``;
        line comments that a newline ends removed; and for form-encoded input
        (``+`` and no space anywhere) a view with ``+`` read as a space.
        """
        low = strip_line_comments(self.sql_text)
        if "/*" not in low and not self.form_encoded:
            return (low,)
        bases = [low]
        if "+" in low and " " not in self.raw:
            bases.append(low.replace("+", " "))
        views: list[str] = []
        for base in bases:
            views.append(strip_block_comments(base, " "))
            if "/*" in base and _SPLIT_WORD.search(base):  # UN/**/ION needs the glued view
                views.append(strip_block_comments(base, ""))
        return tuple(dict.fromkeys(views))


# The last input prepared: ``detect_xss(x)`` then ``detect_sqli(x)`` decode ``x`` once.
# Only immutable inputs, matched by identity; swapping the tuple is atomic.
_last: tuple[object, Prepared] = (object(), Prepared("", []))


def prepare(value: Any) -> Prepared:
    global _last
    last_value, last_prepared = _last
    if value is last_value:
        return last_prepared
    if type(value) is str and value.isascii():  # to_text's common case, without the call
        prepared = Prepared(value, [])
    else:
        prepared = Prepared(*to_text(value))
    if isinstance(value, (str, bytes)):
        _last = (value, prepared)
    return prepared
