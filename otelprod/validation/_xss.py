"""Cross-site scripting detection: structural patterns on decoded input.

The rules describe *how* script gets executed — a script-capable tag, an
event-handler attribute, a script URL, CSS that runs code, a break out of a
JavaScript string into a call — rather than listing known payloads, so they
catch payload families nobody wrote down yet. Plain markup (``<a href>``,
``<img class>``, ``<table>``) is not a finding: pasted HTML is common in
real input and harmless once escaped or sanitized.

Every pattern is linear: repetitions are bounded, or cannot cross the
character that starts the next attempt (``[^<]`` after ``<``).
"""

from __future__ import annotations

import re
from typing import Any

from otelprod.validation._decode import Prepared, prepare
from otelprod.validation._result import Finding
from otelprod.validation._rules import Gate, excerpt, passes

# Calls and properties that turn a string into running code or leak the session.
_SINK = (
    r"(?<![\w$.])(?:"
    r"(?:alert|confirm|prompt|eval|settimeout|setinterval|execscript|msgbox|fetch|atob"
    r"|import|function)\s*[(\x60]"
    r"|document\s*\.\s*(?:write|writeln|cookie|domain|location)"
    r"|(?:window|self|top|parent|this|frames|globalthis)\s*\[\s*['\"\x60\w]"
    r"|(?:window|document)\s*\.\s*location\s*="
    r"|string\s*\.\s*fromcharcode\s*\("
    r")"
)
_URL_SCHEMES = r"(?:javascript|vbscript|livescript|jscript|ecmascript|mocha)"
_ACTIVE_DATA = (
    r"data:\s*(?:text/(?:html|javascript|ecmascript|xml|vbscript|x-scriptlet)"
    r"|application/(?:x-)?(?:javascript|ecmascript|xhtml|xml)|image/svg)"
)
_DANGEROUS_TAGS = (
    r"iframe|frame|frameset|object|embed|applet|meta|base|link|style|svg|math|xml"
    r"|import|bgsound|layer|ilayer|isindex|portal"
)

# Gates run on the lower-cased input.
# Words that name a script sink on their own, and words that only do when followed by a call,
# an index or a template (``this[...]``, ``import(``): prose is full of "this" and "top".
_SINK_WORDS = (
    "alert", "confirm", "prompt", "eval", "settimeout", "setinterval", "execscript", "msgbox",
    "fetch", "atob", "document", "location", "fromcharcode",
)
_WEAK_SINK_WORDS = ("import", "function", "window", "self", "top", "parent", "this", "frames")
_WEAK_SINK = re.compile(r"(?:import|function|window|self|top|parent|this|frames)\s*[(\[\x60]")


#: the gate of the rules that end in a sink: ``_has_sink`` decides it
_SINK_CALL: Gate = ("sink call",)


def _has_sink(low: str) -> bool:
    if passes(_SINK_WORDS, low):
        return True
    return passes(_WEAK_SINK_WORDS, low) and _WEAK_SINK.search(low) is not None


_HANDLER_GATE = re.compile(r"on[a-z]{2,40}\s*=")
_STYLE_GATE = re.compile(r"style\s*=")

# (rule id, gate, view of the input, pattern, message)
_RULES: list[tuple[str, Gate, str, re.Pattern[str], str]] = [
    ("xss.script_tag", ("script",), "compact",
     re.compile(r"<\s*/?\s*script(?![\w-])"),
     "script element"),
    ("xss.dangerous_tag", ("<",), "compact",
     re.compile(rf"<\s*(?:{_DANGEROUS_TAGS})(?![\w-])"),
     "element that loads or runs active content (iframe, object, svg, style, meta, …)"),
    ("xss.event_handler", ("<",), "lower",
     # inside a tag: any on* attribute; quoted values may hold '<' and '>'
     re.compile(
         r"<[a-z!/?%](?:[^<>\"']|\"[^\"]*\"|'[^']*')*?"
         r"(?<=[\s/\"'\x60+;,])on[a-z]{2,40}\s*="
     ),
     "event-handler attribute inside a tag"),
    ("xss.attribute_breakout", _HANDLER_GATE, "lower",
     # no tag needed: a value that closes its quote and adds a handler that calls code
     re.compile(
         # not a script variable: ``var onload = init()``
         r"(?:^|[\s\"'\x60/;])(?<!var )(?<!let )(?<!const )on[a-z]{2,40}\s*=\s*[\"'\x60]?\s*"
         r"[\w$.\[\]'\"]{0,60}?(?:[(\x60]|\s*=)"
     ),
     "event handler injected into an attribute"),
    ("xss.script_url", ("script", "mocha"), "compact",
     re.compile(
         rf"(?<![a-z]){_URL_SCHEMES}\s*:(?!\s)"
         rf"|[=(\"'\x60,]\s*{_URL_SCHEMES}\s*:"
     ),
     "javascript:/vbscript: URL"),
    ("xss.data_url", ("data:",), "compact",
     re.compile(
         rf"(?<![a-z]){_ACTIVE_DATA}"
         r"|(?:src|href|data|action|formaction|srcdoc|from|to|values|content|url)"
         r"\s*[=(]\s*[\"'\x60]?\s*(?:\d+\s*;\s*url\s*=\s*)?data:"
     ),
     "data: URL carrying HTML, script or SVG"),
    ("xss.css_expression", ("expression", "binding", "behavior"), "compact",
     re.compile(r"[:=]\s*[\"']?\s*expression\s*\(|(?:-moz-binding|behavior)\s*:\s*url\s*\("),
     "CSS that runs script (expression(), -moz-binding, behavior)"),
    ("xss.css_obfuscation", _STYLE_GATE, "lower",
     re.compile(r"\bstyle\s*=\s*[\"'\x60]?[^\"'\x60<>=]{0,200}?(?:\\|/\*)"),
     "style attribute hidden behind CSS escapes or comments"),
    ("xss.js_entity", ("&{",), "lower",
     re.compile(r"&\{"),
     "Netscape JavaScript entity &{…}"),
    ("xss.js_breakout", _SINK_CALL, "lower",
     re.compile(
         r"[\"'\x60]\s*(?:[-+*/%^|&,;:?)}\]]|\)\s*;|\}\s*;?)\s*"
         r"(?:[\w$.]{1,40}\s*[=;,]\s*)?" + _SINK
     ),
     "break out of a JavaScript string into a script call"),
    ("xss.markup_breakout", _SINK_CALL, "lower",
     re.compile(r"(?:-->|\*/|[\"'\x60]\s*>|</[a-z]{1,20}\s*>)\s*" + _SINK),
     "script call right after closing markup"),
    ("xss.tag_script_call", _SINK_CALL, "lower",
     re.compile(r"<[a-z][^<>]{0,400}?" + _SINK),
     "tag whose attributes call script"),
    ("xss.computed_call", ("[",), "lower",
     # window["al"+"ert"](1), top[/al/.source+/ert/.source](1): the name is computed
     re.compile(r"(?:window|self|top|parent|this|frames|globalthis|document)\s*"
                r"\[[^\[\]]{1,200}\]\s*[(\x60]"),
     "script call through a computed property name"),
    ("xss.xml_entity", ("<!",), "lower",
     re.compile(r"<!entity\s+%?\s*[\w.-]+\s+(?:system|public)\b|<!doctype[^>\[]{0,200}\[\s*<!entity"),
     "XML external entity declared in a DOCTYPE"),
    ("xss.css_injection", _STYLE_GATE, "lower",
     re.compile(r"style\s*=\s*[\"'\x60]?[^\"'\x60<>=]{0,200}?(?:url\s*\(|@import|expression\s*\()"),
     "style attribute that loads a resource or runs CSS"),
    ("xss.template_injection", ("{{", "${"), "lower",
     re.compile(
         r"\{\{[^{}]{0,200}?(?:constructor|\$eval|\$on\b|__proto__|" + _SINK + ")"
         r"|\$\{[^{}]{0,100}?" + _SINK
     ),
     "client-side template expression that reaches script"),
]


# What every XSS rule needs one of, as plain substring tests (on long text the C substring
# search beats any regex alternation): text with none of them is left alone.
_NEEDED = ("<", "{", "script", "mocha", "data:", "expression", "binding", "behavior", "&{")
def _may_be_xss(low: str) -> bool:
    if passes(_NEEDED, low):
        return True
    if "=" in low and (_HANDLER_GATE.search(low) or _STYLE_GATE.search(low)):
        return True
    return _has_sink(low)


def scan_xss(prepared: Prepared) -> list[Finding]:
    """The first reason ``prepared`` looks like cross-site scripting, or ``[]``."""
    low = prepared.lower
    if not _may_be_xss(low):
        return []
    gates: dict[int, bool] = {}  # a gate shared by several rules is evaluated once
    for rule, gate, view, pattern, message in _RULES:
        passed = gates.get(id(gate))
        if passed is None:
            passed = gates[id(gate)] = _has_sink(low) if gate is _SINK_CALL else passes(gate, low)
        if not passed:
            continue
        text = low if view == "lower" else prepared.compact
        match = pattern.search(text)
        if match:
            return [Finding("xss", rule, message, excerpt(text, match))]
    return []


def detect_xss(value: Any) -> list[Finding]:
    """Findings (with rule ids) if ``value`` looks like cross-site scripting; ``[]`` if not.

    Accepts anything (``None``, bytes, invalid Unicode) and never raises.
    """
    try:
        return scan_xss(prepare(value))
    except Exception:  # pragma: no cover - a detector bug must not become the caller's
        return []
