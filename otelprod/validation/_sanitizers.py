"""Make untrusted content safe to store and show.

HTML goes through nh3 (Rust's ammonia): an HTML sanitizer has to parse the
way browsers parse, and a hand-written one never does. Text, file names and
JSON are simpler and are cleaned here, each by one linear pass.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any, Literal

import nh3

from otelprod.validation._decode import to_text

#: tags the permissive HTML policy keeps: text structure and links, nothing that loads or runs
ALLOWED_TAGS: frozenset[str] = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul", "img",
})
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "abbr": frozenset({"title"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
    "ol": frozenset({"start"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan", "scope"}),
    "q": frozenset({"cite"}),
    "blockquote": frozenset({"cite"}),
}
ALLOWED_URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})

# Built once: nh3 converts the policy to Rust structures per Cleaner, not per call.
_STRICT = nh3.Cleaner(tags=set(), attributes={})
_PERMISSIVE = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(ALLOWED_URL_SCHEMES),
    link_rel="noopener noreferrer",
)

# Characters that are invisible or reorder text (Trojan Source, CVE-2021-42574),
# C0/C1 controls, and lone surrogates. Tab and newline are kept separately.
_INVISIBLE = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f"
)
_UNSAFE_TEXT = re.compile(f"[{_INVISIBLE}]")
_UNSAFE_TEXT_NO_NEWLINES = re.compile(f"[{_INVISIBLE}\t\n\r\u2028\u2029]")

# File names: separators, Windows-invalid characters, and everything invisible.
_FILENAME_BAD = re.compile(f"[/\\\\<>:\"|?*{_INVISIBLE}\t\n\r\u2028\u2029]")
_WINDOWS_RESERVED = re.compile(
    r"^(?:con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(?:\.|$)", re.IGNORECASE
)
DEFAULT_FILENAME = "file"


def _text(value: Any) -> str:
    """``value`` as text that nh3 and ``str.encode`` accept (never raises)."""
    return to_text(value)[0]


def sanitize_html(html: Any, strict: bool = True) -> str:
    """HTML safe to insert into a page.

    ``strict=True`` (the default, and the seed's advice for user content)
    keeps no tags at all, only escaped text. ``strict=False`` keeps a curated
    set of text-structure tags and links (http, https, mailto only, with
    ``rel="noopener noreferrer"``); scripts, styles, event handlers, frames
    and forms never survive either way.
    """
    cleaner = _STRICT if strict else _PERMISSIVE
    if type(html) is str:  # the hot path: no copies, no extra checks
        try:
            return cleaner.clean(html)
        except UnicodeEncodeError:  # lone surrogates
            pass
    return cleaner.clean(_text(html))


def sanitize_text(
    text: Any,
    *,
    max_length: int | None = None,
    normalization: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFC",
    allow_newlines: bool = True,
) -> str:
    """Plain text without control, invisible or bidi-override characters.

    Normalises (NFC by default, so equal-looking strings compare equal) and
    cuts to ``max_length`` characters. Tabs and newlines stay unless
    ``allow_newlines=False``; ``\\r\\n`` becomes ``\\n``.
    """
    if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
        raise ValueError(
            f"max_length must be a non-negative int or None, got {max_length!r} "
            f"({type(max_length).__name__})"
        )
    if normalization not in (None, "NFC", "NFKC", "NFD", "NFKD"):
        raise ValueError(
            f"normalization must be one of NFC, NFKC, NFD, NFKD or None, got {normalization!r}"
        )
    value = text if isinstance(text, str) else _text(text)  # lone surrogates go below
    if allow_newlines:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        value = _UNSAFE_TEXT.sub("", value)
    else:
        value = _UNSAFE_TEXT_NO_NEWLINES.sub(" ", value)
    if normalization:
        value = unicodedata.normalize(normalization, value)
    if max_length is not None and len(value) > max_length:
        value = value[:max_length]
    return value


def _clean_filename(name: Any, max_bytes: int, replacement: str) -> tuple[str, list[str]]:
    """The safe name, and what had to change (empty when the input was already safe)."""
    raw = _text(name)
    problems: list[str] = []
    value = unicodedata.normalize("NFC", raw)
    if _FILENAME_BAD.search(value):
        if "/" in value or "\\" in value:
            problems.append("contains a path separator")
        else:
            problems.append("contains characters not allowed in file names")
        value = _FILENAME_BAD.sub(replacement, value)
    stripped = value.strip(" .")
    if stripped != value:
        problems.append("starts or ends with dots or spaces (., .., hidden or Windows-trimmed)")
        value = stripped
    if value and _WINDOWS_RESERVED.match(value):
        problems.append("is a reserved device name on Windows")
        value = "_" + value
    if len(value.encode("utf-8")) > max_bytes:
        problems.append(f"is longer than {max_bytes} bytes")
        value = _fit_bytes(value, max_bytes)
    if not value:
        problems.append("is empty once cleaned")
        value = _fit_bytes(DEFAULT_FILENAME, max_bytes)
    if raw != value and not problems:
        problems.append("is not in NFC normal form")
    return value, problems


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _fit_bytes(name: str, max_bytes: int) -> str:
    """Cut ``name`` to ``max_bytes`` of UTF-8, keeping the extension when it fits."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem and 0 < len(ext.encode("utf-8")) + 1 < max_bytes // 2:
        room = max_bytes - len(ext.encode("utf-8")) - 1
        stem = _truncate_utf8(stem, room).rstrip(" .")
        name = f"{stem}.{ext}" if stem else _truncate_utf8(ext, max_bytes)
    else:
        name = _truncate_utf8(name, max_bytes)
    name = name.strip(" .")
    if name and _WINDOWS_RESERVED.match(name):
        name = _truncate_utf8("_" + name, max_bytes).rstrip(" .")
        if _WINDOWS_RESERVED.match(name):  # "_" cut off again at a tiny limit
            name = ""
    if not name:
        name = _truncate_utf8(DEFAULT_FILENAME, max_bytes)
    return name


def _check_filename_args(max_bytes: Any, replacement: Any) -> None:
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
        raise ValueError(
            f"max_bytes must be an int >= 1, got {max_bytes!r} ({type(max_bytes).__name__})"
        )
    if not isinstance(replacement, str) or _FILENAME_BAD.search(replacement) or (
        replacement.strip(" .") != replacement
    ):
        raise ValueError(
            f"replacement must be a str without separators, controls, dots or spaces at "
            f"its ends, got {replacement!r}"
        )


def sanitize_filename(filename: Any, *, max_bytes: int = 255, replacement: str = "_") -> str:
    """A file name that is safe to join onto a directory on Linux, macOS and Windows.

    No path separators or Windows-invalid characters (replaced by
    ``replacement``), never ``.`` or ``..``, no leading or trailing dots and
    spaces, no Windows device names (``CON``, ``lpt1.txt``), at most
    ``max_bytes`` of UTF-8 with the extension kept, and never empty.
    """
    _check_filename_args(max_bytes, replacement)
    return _clean_filename(filename, max_bytes, replacement)[0]


#: limits sanitize_json applies while copying, so hostile documents stay bounded
JSON_MAX_DEPTH = 64


def sanitize_json(
    data: Any,
    *,
    max_depth: int = JSON_MAX_DEPTH,
    max_string_length: int | None = None,
) -> Any:
    """A JSON-compatible copy of ``data`` with every string cleaned like ``sanitize_text``.

    ``data`` may be JSON text (``str``/``bytes``, parsed first; invalid JSON
    gives ``None``) or already-parsed data. Keys become strings, non-finite
    numbers become ``None``, types JSON has no word for become their ``str()``,
    and anything nested deeper than ``max_depth`` is dropped (``None``).
    """
    if not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < 1:
        raise ValueError(
            f"max_depth must be an int >= 1, got {max_depth!r} ({type(max_depth).__name__})"
        )
    if isinstance(data, (str, bytes, bytearray)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return None

    def clean(value: Any, depth: int) -> Any:
        if depth > max_depth:
            return None
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, str):
            return sanitize_text(value, max_length=max_string_length)
        if isinstance(value, dict):
            return {
                sanitize_text(str(k), max_length=max_string_length): clean(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [clean(v, depth + 1) for v in value]
        try:
            return sanitize_text(str(value), max_length=max_string_length)
        except Exception:
            return None

    try:
        return clean(data, 1)
    except RecursionError:  # pragma: no cover - max_depth keeps recursion shallow
        return None


class ContentSanitizer:
    """The seed's sanitizer namespace: every method is static and never raises on odd input."""

    sanitize_html = staticmethod(sanitize_html)
    sanitize_text = staticmethod(sanitize_text)
    sanitize_filename = staticmethod(sanitize_filename)
    sanitize_json = staticmethod(sanitize_json)
