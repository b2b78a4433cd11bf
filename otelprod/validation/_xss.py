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

from otelprod.validation._decode import CallFinder, Prepared, prepare, replace_each
from otelprod.validation._result import Finding, make_finding
from otelprod.validation._rules import GatedRules, combine, combined_index, excerpt

# Calls and properties that turn a string into running code or leak the session.
_SINK = (
    r"(?<![\w$.])(?:"
    r"(?:alert|confirm|prompt|eval|settimeout|setinterval|execscript|msgbox|fetch|atob"
    r"|import)\s*[(\x60]"
    # the Function constructor, not a function expression (``function() {}``)
    r"|function\s*(?:\(\s*[\"'\x60]|\x60)"
    r"|document\s*\.\s*(?:write|writeln|cookie|domain|location)"
    r"|(?:window|self|top|parent|this|frames|globalthis)\s*\[\s*['\"\x60\w]"
    r"|(?:window|document)\s*\.\s*location\s*="
    r"|string\s*\.\s*fromcharcode\s*\("
    r")"
)


def _scheme_url(scheme_end: str, schemes: list[str]) -> str:
    """A URL of one of ``schemes`` (each ending in ``scheme_end``): the pattern starts with that
    literal ending, which the regex engine jumps to, and looks behind it for the rest. Either
    not after a letter, with no space after the colon (``javascript:alert(1)``), or right
    after what opens an attribute value or an argument (``=" javascript: alert(1)``)."""
    alone = "|".join(f"(?<=(?<![a-z]){scheme})" for scheme in schemes)
    in_value = "|".join(f"(?<=[=(\"'\x60,]{scheme})|(?<=[=(\"'\x60,]\\s{scheme})"
                        for scheme in schemes)
    return rf"{scheme_end}(?:(?:{alone})\s*:(?!\s)|(?:{in_value})\s*:)"


_SCRIPT_SCHEMES = ["javascript", "vbscript", "livescript", "jscript", "ecmascript"]
_SCRIPT_URL_PATTERN = re.compile(
    _scheme_url("script", _SCRIPT_SCHEMES) + "|" + _scheme_url("mocha", ["mocha"]))
# the rarer spelling the lookbehinds above cannot see: two or more blanks after the "="
_SPACED_SCRIPT_URL_PATTERN = re.compile(
    r"[=(\"'\x60,]\s{2,}(?:" + "|".join([*_SCRIPT_SCHEMES, "mocha"]) + r")\s*:")
_ACTIVE_DATA = (
    r"data:\s*(?:text/(?:html|javascript|ecmascript|xml|vbscript|x-scriptlet)"
    r"|application/(?:x-)?(?:javascript|ecmascript|xhtml|xml)|image/svg)"
)
_DANGEROUS_TAGS = (
    r"iframe|frameset|style|svg|math|isindex|xsl:stylesheet|xsl:transform"
    # dangerous through their attributes only: with none, they are a placeholder in
    # documentation (``git cat-file <object>``, ``<base>..<rev>``, ``<object instance>``,
    # ``curl --data "<xml>"``)
    r"|(?:frame|object|embed|applet|meta|base|link|import|bgsound|layer|ilayer|portal|listener"
    r"|xml)(?![\w-])(?=[^<>=]{0,200}=)"
)

# Calls that reach a sink (found with a ``CallFinder``).
_SINK_CALLS = frozenset((
    "alert", "confirm", "prompt", "eval", "settimeout", "setinterval", "execscript", "msgbox",
    "fetch", "atob", "import", "function", "fromcharcode",
))
# Sinks that are no call: ``document.…`` and ``….location =`` (tested as words in
# ``_has_sink``), an index (``top["al"+"ert"]``), a tagged template (alert`1`).
_NOT_SINKS = frozenset(("expression",))
_SINK_NAMES = "(?:" + "|".join(sorted(_SINK_CALLS - {"function", "import"})) + ")"
_CALL_FINDER = CallFinder(_SINK_CALLS | _NOT_SINKS)
# the DOM events attacks hang handlers on (a list, so that "online=true" stays a word)
_DOM_EVENTS = (
    r"error|load|unload|beforeunload|click|dblclick|auxclick|contextmenu|mouse[a-z]{2,10}"
    r"|pointer[a-z]{2,10}|key(?:down|up|press)|focus(?:in|out)?|blur|change|input|submit|reset"
    r"|select|scroll|resize|toggle|begin|end|repeat|animation[a-z]{3,9}|transition[a-z]{3,9}"
    r"|drag[a-z]{0,5}|drop|copy|cut|paste|play(?:ing)?|pause|abort|hashchange|message|pageshow"
    r"|pagehide|popstate|readystatechange|touch[a-z]{3,6}|wheel|search|show|invalid|activate"
    r"|beforeactivate|afterprint|beforeprint|propertychange|filterchange|start|finish|bounce"
)
_SCRIPT_OBJECTS = ("window", "self", "top", "parent", "this", "frames", "globalthis", "document")
# (literal first, then what precedes it: the regex engine jumps from "[" to "[")
_INDEXED_SINK = re.compile(r"\[(?<=[a-z\s]\[)(?:" + "|".join(
    f"(?<={name}\\[)|(?<={name}\\s\\[)" for name in _SCRIPT_OBJECTS if name != "document") + ")")

_TEMPLATE_CALL = re.compile(r"\x60(?<=[a-z\s]\x60)(?:" + "|".join(
    f"(?<={name}\\x60)|(?<={name}\\s\\x60)" for name in sorted(_SINK_CALLS - {"fromcharcode"}))
    + ")")

# what an attack calls a dialog or eval with: a number, a string, a regex, an array, the page's
# objects, a decoding, another call (not ``Prompt(GPT-4):``, ``Confirm(your email)``)
_SCRIPT_ARGUMENT = (
    r"\s*(?:[\d'\"\x60/\[]|(?:document|window|location|url|name|top|self|this|parent|atob"
    r"|unescape|decodeuri\w*|string\s*\.\s*fromcharcode|alert|prompt|confirm|eval)(?![\w$])"
    r"|[a-z_$][\w$]{0,20}\s*\()")
_SCRIPT_CALL = "script call where a value was expected"
_SINK_AS_VALUE = "script sink handed on as a value"

#: a rule's gate: the features (``_features``) of which the input must have at least one
_Gate = frozenset[str]


def _gate(*features: str) -> _Gate:
    return frozenset(features)


#: (rule id, gate, view of the input, pattern, message)
_Rule = tuple[str, _Gate, str, "re.Pattern[str]", str]

# in the order they are tried; the first three need nothing but a "<", the next two a scheme
_RULES: list[_Rule] = [
    ("xss.script_tag", _gate("<"), "compact",
     # (IE skipped a "%" there: <%script>)
     re.compile(r"<\s*%?/?\s*(?:[a-z][\w-]{0,20}:)?script(?![\w-])"),
     "script element"),
    ("xss.dangerous_tag", _gate("<"), "compact",
     # also XML processing instructions that load code (XSLT, IE behaviours)
     # (with a namespace prefix too: <svg:script>, <ev:listener>)
     re.compile(rf"<\s*(?:[a-z][\w-]{{0,20}}:)?(?:{_DANGEROUS_TAGS})(?![\w-])"
                r"|<\?\s*(?:xml-stylesheet|import|xml:namespace)(?![\w-])"),
     "element that loads or runs active content (iframe, object, svg, style, meta, …)"),
    ("xss.event_handler", _gate("<"), "lower",
     # inside a tag: any on* attribute; quoted values may hold '<' and '>'
     re.compile(
         r"<[a-z!/?%](?:[^<>\"']|\"[^\"]*\"|'[^']*')*?"
         r"(?<=[\s/\"'\x60+;,])on[a-z]{2,40}\s*="
     ),
     "event-handler attribute inside a tag"),
    ("xss.script_url", _gate("script:"), "compact", _SCRIPT_URL_PATTERN,
     "javascript:/vbscript: URL"),
    ("xss.script_url", _gate("script:"), "compact", _SPACED_SCRIPT_URL_PATTERN,
     "javascript:/vbscript: URL"),
    ("xss.attribute_breakout", _gate("="), "lower",
     # no tag needed: a value that closes its quote and adds a handler that calls code;
     # not a script variable (``var onload = init()``). The pattern starts with its literal
     # "on" and looks behind from there, so the regex engine jumps from one "on" to the next.
     # ("+" is a space in a form-encoded value)
     re.compile(
         r"on(?<![^\s\"'\x60/;+]on)(?<!var on)(?<!let on)(?<!const on)(?:[a-z]{2,40}\s*=\s*"
         r"[\"'\x60]?\s*(?:[\w$.\[\]'\"]{0,60}?(?:[(\x60]|\s*=)"
         # a sink as the handler itself: onerror=eval
         rf"|{_SINK_NAMES}(?![\w$.])"
         # a DOM event's handler, whatever it runs: onerror=KCF (not a keyword argument,
         # ``rmtree(path, onerror=handler)``)
         rf")|(?<!,\son)(?<!,on)(?<!\(on)(?:{_DOM_EVENTS})=[^\s>])"
     ),
     "event handler injected into an attribute"),
    ("xss.script_url", _gate("="), "compact",
     # an attribute value whose scheme is spread out by spaces: src=javasc ript:
     re.compile(r"=[\"'\x60]?(?:j\s*a\s*v\s*a|v\s*b)\s*s\s*c\s*r\s*i\s*p\s*t\s*:"),
     "javascript:/vbscript: URL"),
    ("xss.data_url", _gate("data:"), "compact",
     re.compile(
         rf"(?<![a-z]){_ACTIVE_DATA}"
         r"|(?:src|href|data|action|formaction|srcdoc|from|to|values|content|url)"
         r"\s*[=(]\s*[\"'\x60]?\s*(?:\d+\s*;\s*url\s*=\s*)?data:"
     ),
     "data: URL carrying HTML, script or SVG"),
    ("xss.css_expression", _gate("expression(", "binding"), "compact",
     re.compile(r"[:=]\s*[\"']?\s*expression\s*\(|(?:-moz-binding|behavior)\s*:\s*url\s*\("),
     "CSS that runs script (expression(), -moz-binding, behavior)"),
    ("xss.css_obfuscation", _gate("style="), "lower",
     # escapes, comments, or, in a quoted attribute value, brackets and braces no
     # declaration needs (not a URL's ``&style=flat)](…)`` in markdown, nor JSX's
     # ``style={{…}}``)
     re.compile(r"style(?<![\w-]style)\s*=\s*[\"'\x60]?[^\"'\x60<>=]{0,200}?(?:\\|/\*)"
                r"|style(?<![^\s\"'/]style)\s*=\s*(?:\"[^\"<>]{0,200}?[\[\]{}]"
                r"|'[^'<>]{0,200}?[\[\]{}])"),
     "style attribute hidden behind CSS escapes, comments or brackets"),
    ("xss.js_entity", _gate("&{"), "lower",
     re.compile(r"&\{"),
     "Netscape JavaScript entity &{…}"),
    ("xss.js_breakout", _gate("sink"), "lower",
     re.compile(
         r"[\"'\x60]\s*(?:[-+*/%^|&,;:?)}\]]|\)\s*;|\}\s*;?)\s*"
         r"(?:[\w$.]{1,40}\s*[=;,]\s*)?" + _SINK
     ),
     "break out of a JavaScript string into a script call"),
    # script where a value was expected (each pattern starts with \A or a literal, which
    # the regex engine jumps to: an alternation of them would be tried at every position)
    ("xss.script_call", _gate("sink"), "lower",
     # the input itself is script: it starts (after what closes a string, a statement or a
     # block: ``}alert(1);{//``) with a dialog or an eval called on what attacks pass
     re.compile(r"\A[\s'\"\x60;})\]>+-]{0,8}(?:alert|confirm|prompt|eval|settimeout|setinterval"
                r"|execscript|msgbox)\s*(?:\x60|\(" + _SCRIPT_ARGUMENT + ")"),
     _SCRIPT_CALL),
    ("xss.script_call", _gate("sink"), "lower",
     # a dialog opened as the next statement (48e71;alert(1)//)
     re.compile(r";\s*(?:alert|confirm|prompt)\s*\(" + _SCRIPT_ARGUMENT),
     _SCRIPT_CALL),
    ("xss.script_call", _gate("sink"), "lower",
     # or as a query parameter's value (?playerready=alert(document.cookie))
     re.compile(r"\((?:(?<==alert\()|(?<==confirm\()|(?<==prompt\()|(?<==eval\())"
                + _SCRIPT_ARGUMENT),
     _SCRIPT_CALL),
    # a sink handed on as a value, to be called under another name: a=eval;b=alert;a(b(1))
    # (and called: ``levels=alert,warning`` is a log level)
    ("xss.script_call", _gate("sink name"), "lower",
     re.compile(r"=\s?(?:alert|confirm|prompt|eval)\s*[;,](?=[^\n(]{0,80}\()"),
     _SINK_AS_VALUE),
    ("xss.script_call", _gate("sink name"), "lower",
     # (alert)(1), [1].find(alert), eval.call(this, …)
     re.compile(r"\(\s?(?:alert|confirm|prompt|eval)\s*\)(?:\x60|\(" + _SCRIPT_ARGUMENT + ")"),
     _SINK_AS_VALUE),
    ("xss.script_call", _gate("sink name"), "lower",
     re.compile(r"\.(?:(?:find|map|filter|foreach|some|every|then|call|apply)\(\s*(?:alert"
                r"|confirm|prompt|eval)\s*\)|(?<=(?<![\w$.])eval\.)(?:call|apply)\("
                r"|(?<=(?<![\w$.])alert\.)(?:call|apply)\()"),
     _SINK_AS_VALUE),
    ("xss.markup_breakout", _gate("sink>"), "lower",
     re.compile(r"(?:-->|\*/|[\"'\x60]\s*>|</[a-z]{1,20}\s*>)\s*" + _SINK),
     "script call right after closing markup"),
    ("xss.tag_script_call", _gate("sink"), "lower",
     re.compile(r"<[a-z][^<>]{0,400}?" + _SINK),
     "tag whose attributes call script"),
    ("xss.computed_call", _gate("["), "lower",
     # window["al"+"ert"](1), top[/al/.source+/ert/.source](1): the name is computed; the
     # pattern starts with its literal "[" and looks behind it for the object
     # (right after the object: "this [link](url)" is markdown)
     re.compile(r"\[(?<=[a-z]\[)(?:" + "|".join(f"(?<=[^\\w$.]{name}\\[)|(?<=^{name}\\[)"
                                     for name in _SCRIPT_OBJECTS)
                + r")[^\[\]]{1,200}\]\s*[(\x60]"),
     "script call through a computed property name"),
    ("xss.xml_entity", _gate("<!"), "lower",
     # declarations in a DOCTYPE's internal subset, or a DTD loaded from elsewhere
     re.compile(r"<!entity\s+%?\s*[\w.-]+\s+(?:system|public)\b"
                r"|<!doctype[^>\[]{0,200}\[\s*<!(?:entity|attlist|element)"
                r"|<!doctype\s+[\w:.-]+\s+system\s+(?![\"']about:legacy-compat)"),
     "XML external entity declared in a DOCTYPE"),
    ("xss.event_handler", _gate("<"), "lower",
     # XML Events: listeners declared through their namespace
     re.compile(r"xmlns(?::[\w-]+)?\s*=\s*[\"']?\s*https?://www\.w3\.org/2001/xml-events"),
     "event listener declared through XML Events"),
    ("xss.dangerous_tag", _gate("<"), "lower",
     # IE data binding renders a data source's field as HTML
     re.compile(r"data(?<![\w-]data)(?:src|formatas)\s*="),
     "data binding that renders fetched content as HTML (datasrc, dataformatas)"),
    ("xss.dangerous_tag", _gate("<"), "lower",
     # an SVG animation that rewrites a link's target
     re.compile(r"<(?:set|animate)(?![\w-])[^<>]{0,200}?attributename\s*=\s*[\"']?\s*"
                r"(?:xlink:)?href\b"),
     "SVG animation that rewrites a link"),
    ("xss.css_injection", _gate("style="), "lower",
     re.compile(r"style\s*=\s*[\"'\x60]?[^\"'\x60<>=]{0,200}?(?:url\s*\(|@import|expression\s*\()"),
     "style attribute that loads a resource or runs CSS"),
    ("xss.template_injection", _gate("{{"), "lower",
     re.compile(
         r"\{\{[^{}]{0,200}?(?:constructor|\$eval|\$on\b|__proto__|" + _SINK + ")"
         r"|\$\{[^{}]{0,100}?" + _SINK
     ),
     "client-side template expression that reaches script"),
]


_TAG_RULES = _RULES[:3]
assert all(gate == {"<"} for _, gate, _, _, _ in _TAG_RULES)
_SCRIPT_URLS = _RULES[3:5]
assert all(gate == {"script:"} for _, gate, _, _, _ in _SCRIPT_URLS)
_TAG_ANY = combine([pattern for _, _, _, pattern, _ in _TAG_RULES])
_OTHER_RULES = GatedRules(_RULES[len(_TAG_RULES) + len(_SCRIPT_URLS) :], lambda rule: rule[1])


def _has_sink(low: str, calls: frozenset[str]) -> bool:
    if calls - _NOT_SINKS:
        return True
    if "document" in low or "location" in low:
        return True
    if "[" in low and _INDEXED_SINK.search(low):
        return True
    return "\x60" in low and _TEMPLATE_CALL.search(low) is not None


def _features(prepared: Prepared) -> frozenset[str]:
    """What the rules' gates ask about the input: one test each, mostly for one character.

    Plain text has none of them and is let through without any pattern being tried.
    """
    low = prepared.lower
    found: set[str] = set()
    if "<" in low:
        found.add("<")
        if "<!" in low:
            found.add("<!")
    if "{" in low:
        if "{{" in low or "${" in low:
            found.add("{{")
        if "&{" in low:
            found.add("&{")
    if "[" in low:
        found.add("[")
    if "=" in low:
        found.add("=")
        if "style" in low:
            found.add("style=")
    if ":" in low:
        if "data:" in low:
            found.add("data:")
        if "binding" in low or "behavior" in low:
            found.add("binding")
    if "alert" in low or "eval" in low or "prompt" in low or "confirm" in low:
        found.add("sink name")
    calls = _CALL_FINDER(low)
    if "expression" in calls:
        found.add("expression(")
    if _has_sink(low, calls):
        found.add("sink")
        if ">" in low or "*/" in low:
            found.add("sink>")
    return frozenset(found)


# US-ASCII pages (old IE) read bytes with the high bit cleared: 0xBC "¼" is "<", 0xBE "¾"
# is ">", 0xA2 "¢" is '"'; NFKC has made the fractions "1⁄4" and "3⁄4" by now
_SEVEN_BIT_TAG = re.compile("1\u20444[a-z/!?]")  # ¼script, not a recipe's "¼ cup"
_SEVEN_BIT = (("1\u20444", "<"), ("3\u20444", ">"), ("\xa2", '"'))


def scan_xss(prepared: Prepared) -> list[Finding]:
    """The first reason ``prepared`` looks like cross-site scripting, or ``[]``."""
    low = prepared.lower
    # (isascii reads a flag, no scan; both fractions, or there is no tag to read)
    if not low.isascii() and "3\u20444" in low and _SEVEN_BIT_TAG.search(low):
        seven_bit = replace_each(low, _SEVEN_BIT)
        match = _TAG_ANY.search(seven_bit)
        if match:
            rule, _, _, _, message = _TAG_RULES[combined_index(match)]
            return [make_finding("xss", rule, message + " (US-ASCII, high bit cleared)",
                                 excerpt(seven_bit, match))]
    if "<" in low:  # the commonest vectors, tried before any other feature is looked for
        if prepared.compact is low:  # the views are one text: one search for the three
            match = _TAG_ANY.search(low)
            if match:
                rule, _, _, _, message = _TAG_RULES[combined_index(match)]
                return [make_finding("xss", rule, message, excerpt(low, match))]
        else:
            found = _first_match(prepared, _TAG_RULES)
            if found:
                return found
    if ":" in low and ("script" in low or "mocha" in low):  # the next commonest
        found = _first_match(prepared, _SCRIPT_URLS)
        if found:
            return found
    features = _features(prepared)
    return _first_match(prepared, _OTHER_RULES.select(features)) if features else []


def _first_match(prepared: Prepared, rules: list[_Rule]) -> list[Finding]:
    for rule, _, view, pattern, message in rules:
        text = prepared.lower if view == "lower" else prepared.compact
        match = pattern.search(text)
        if match:
            return [make_finding("xss", rule, message, excerpt(text, match))]
    return []


def detect_xss(value: Any) -> list[Finding]:
    """Findings (with rule ids) if ``value`` looks like cross-site scripting; ``[]`` if not.

    Accepts anything (``None``, bytes, invalid Unicode) and never raises.
    """
    try:
        return scan_xss(prepare(value))
    except Exception:  # pragma: no cover - a detector bug must not become the caller's
        return []
