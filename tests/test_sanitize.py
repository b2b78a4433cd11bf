"""Sanitizers: nh3-backed HTML, text, file names, JSON; with property tests."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelprod.validation import ContentSanitizer, sanitize_filename, sanitize_html, sanitize_json

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Building blocks hypothesis mixes with arbitrary text, so the generator reaches markup.
HTML_PIECES = st.sampled_from([
    "<script>", "</script>", "<img src=x onerror=alert(1)>", "<a href=\"javascript:alert(1)\">",
    "<svg onload=alert(1)>", "<iframe src=javascript:alert(1)>", "<p onclick='x()'>", "\"",
    "'", "<", ">", "=", "&#106;avascript:", "<a href=\"https://ok.example\">", "</a>", "<b>",
    "<style>", "java\tscript:", "<div style=\"background:url(javascript:x)\">", "<!--", "-->",
    "<math><mi xlink:href=javascript:alert(1)>", "<form action=javascript:x>", " onmouseover=",
])
HTML = st.lists(st.one_of(HTML_PIECES, st.text(max_size=20)), max_size=15).map("".join)

class _Tags(HTMLParser):
    """What a browser would build from the output: every start tag and its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def parsed(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert(html: str) -> None:
    for tag, attrs in parsed(html):
        assert tag not in ("script", "iframe", "object", "embed", "style", "svg", "math"), html
        for name, value in attrs:
            assert not name.startswith("on"), html
            compact = re.sub(r"[\x00-\x20]", "", (value or "").lower())
            assert not compact.startswith(("javascript:", "vbscript:", "data:")), html


@PROPERTY
@given(HTML, st.booleans())
def test_sanitize_html_output_never_executes(html: str, strict: bool) -> None:
    out = sanitize_html(html, strict=strict)
    assert_inert(out)
    if strict:
        assert parsed(out) == []  # no tags at all, only escaped text


@PROPERTY
@given(HTML)
def test_permissive_links_keep_only_safe_schemes(html: str) -> None:
    for tag, attrs in parsed(sanitize_html(html, strict=False)):
        for name, value in attrs:
            if name in ("href", "src") and value and re.match(r"[a-z][a-z0-9+.-]*:", value, re.I):
                assert value.lower().startswith(("http:", "https:", "mailto:")), (tag, value)


def test_strict_removes_every_tag_and_script_content() -> None:
    out = ContentSanitizer.sanitize_html(
        '<p onclick="steal()">hi <script>alert(1)</script><b>there</b></p>', strict=True)
    assert out == "hi there"


def test_permissive_keeps_structure_and_adds_rel() -> None:
    out = sanitize_html('<p>see <a href="https://example.com" onclick="x()">this</a>'
                        '<a href="javascript:alert(1)">bad</a><iframe src=x></iframe></p>',
                        strict=False)
    assert out == ('<p>see <a href="https://example.com" rel="noopener noreferrer">this</a>'
                   '<a rel="noopener noreferrer">bad</a></p>')


@pytest.mark.parametrize("odd", [None, b"<b>x</b>", 42, "a\ud800<script>x</script>", ""])
def test_sanitize_html_never_raises(odd: object) -> None:
    out = sanitize_html(odd)
    assert isinstance(out, str) and "<script" not in out


def test_sanitize_text_removes_controls_and_bidi_and_normalises() -> None:
    text = "plain\x00 text\u200b with\u202e controls\r\ncafe\u0301"
    assert ContentSanitizer.sanitize_text(text) == "plain text with controls\ncafé"
    assert ContentSanitizer.sanitize_text("a\nb\tc", allow_newlines=False) == "a b c"
    assert ContentSanitizer.sanitize_text("abcdef", max_length=3) == "abc"
    assert ContentSanitizer.sanitize_text(None) == ""
    assert ContentSanitizer.sanitize_text("x\ud800y") == "xy"


def test_sanitize_text_rejects_bad_arguments_by_name() -> None:
    with pytest.raises(ValueError, match="max_length"):
        ContentSanitizer.sanitize_text("x", max_length=-1)
    with pytest.raises(ValueError, match="normalization"):
        ContentSanitizer.sanitize_text("x", normalization="NFX")  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc/passwd", "_.._etc_passwd"),
    ("..", "file"),
    (".", "file"),
    ("", "file"),
    ("   ", "file"),
    ("con.txt", "_con.txt"),
    ("LPT1", "_LPT1"),
    ("report. . ", "report"),
    ("a\\b/c:d*e?f\"g<h>i|j", "a_b_c_d_e_f_g_h_i_j"),
    ("résumé.pdf", "résumé.pdf"),
    (".bashrc", "bashrc"),
    ("x\x00y\u202e.txt", "x_y_.txt"),
])
def test_sanitize_filename_examples(name: str, expected: str) -> None:
    assert ContentSanitizer.sanitize_filename(name) == expected


def test_sanitize_filename_keeps_the_extension_within_the_byte_limit() -> None:
    out = sanitize_filename("é" * 300 + ".tar.gz", max_bytes=100)
    assert out.endswith(".gz") and len(out.encode()) <= 100
    assert sanitize_filename("x" * 50, max_bytes=10) == "x" * 10
    assert sanitize_filename("con", max_bytes=3) not in ("con", "CON")


def test_sanitize_filename_rejects_bad_arguments_by_name() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        sanitize_filename("x", max_bytes=0)
    with pytest.raises(ValueError, match="replacement"):
        sanitize_filename("x", replacement="/")


FILENAME_PIECES = st.sampled_from(["/", "\\", ".", "..", " ", "con", "NUL", "aux.txt", ".txt",
                                   "\x00", "é", "\u202e", ":", "COM1", "lpt¹", "-"])
FILENAMES = st.lists(st.one_of(FILENAME_PIECES, st.text(max_size=12)), max_size=12).map("".join)
RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)", re.IGNORECASE)


@PROPERTY
@given(FILENAMES, st.integers(min_value=1, max_value=300))
def test_sanitize_filename_properties(name: str, max_bytes: int) -> None:
    out = sanitize_filename(name, max_bytes=max_bytes)
    assert out and out not in (".", "..")
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert len(out.encode("utf-8")) <= max_bytes
    assert out == out.strip(" .") and not RESERVED.match(out)
    assert sanitize_filename(out, max_bytes=max_bytes) == out  # idempotent


def test_sanitize_json_cleans_strings_keys_and_odd_values() -> None:
    data = {"a\u0000b": [1, 2.5, float("nan"), "x\u202ey", {"deep": object()}], 3: True}
    out = sanitize_json(data)
    assert out["ab"][:4] == [1, 2.5, None, "xy"]
    assert isinstance(out["ab"][4]["deep"], str)
    assert out["3"] is True
    assert sanitize_json('{"k": "v\\u200b"}') == {"k": "v"}
    assert sanitize_json("{not json") is None
    nested: list[object] = []
    for _ in range(100):
        nested = [nested]
    assert "None" in repr(sanitize_json(nested, max_depth=5))
