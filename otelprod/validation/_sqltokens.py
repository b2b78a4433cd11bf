"""A small SQL tokenizer that folds an input into a short fingerprint of token classes.

An injected value is read the way the database would read it once the
application has pasted it into a query: from the start (a number or
identifier context), or from just after its first ``'`` or ``"`` (the value
closed the literal it was put in). Each token becomes one character; values
built from arithmetic, function calls and parentheses fold into a single
value, so ``1 and 1+2+3=6``, ``1 and cos(3)=sin(4)`` and ``1 or 1=1`` all
become ``1&1=1``. The shapes in ``_sqli`` are regular expressions over that
string, which is a few dozen characters whatever the input.

Classes: ``B`` the broken-out literal (quote contexts only), ``s`` string,
``1`` number or constant, ``v`` variable, ``n`` name, ``f`` function name,
``&`` AND/OR/XOR/``&&``/``||``, ``=`` comparison (also LIKE, IS, IN,
BETWEEN), ``o`` arithmetic, ``U`` UNION, ``E`` a statement keyword (SELECT,
DROP, EXEC…), ``k`` other SQL keywords, ``(``, ``)``, ``,``, ``;``, ``c`` a
comment that runs to the end, ``X`` anything SQL has no use for.
"""

from __future__ import annotations

import re

#: tokens read per context; shapes look at the first few, so longer input costs no more
MAX_TOKENS = 40

_TOKEN = re.compile(
    r"\s*(?:"
    r"(--(?![\d.])[^\n]*|#[^\n]*)"                         # 1 line comment (--1 is minus minus one)
    r"|(/\*(?!!)[^*]*(?:\*+[^*/][^*]*)*(?:\*+/)?)"        # 2 block comment
    r"|(/\*!\d{0,6}|\*/)"                                 # 3 MySQL executable-comment markers
    r"|('[^'\\]*(?:\\.[^'\\]*)*'?)"                       # 4 '…'
    r"|(\"[^\"\\]*(?:\\.[^\"\\]*)*\"?)"                   # 5 "…"
    r"|(0x[0-9a-f]*|0b[01]+|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|\\n(?![a-z]))"  # 6 number
    r"|(@@?[\w.$]*)"                                      # 7 variable
    # 8 word (dotted, `quoted` or [bracketed]), 9 the parenthesis that makes it a call
    r"|([^\W\d][\w$]*(?:\.(?:[^\W\d][\w$]*|\*))*|`[^`]*`?|\[[\w ]{1,60}\](?:\.\[[\w ]{1,60}\])*)"
    r"(\s*\()?"
    r"|(\|\||&&)"                                         # 10 logical operator
    r"|(<=>|<>|!=|>=|<=|==|=|<|>|!<|!>)"                  # 11 comparison
    r"|(!)"                                               # 12 not
    r"|([-+*/%^|&~]|:=)"                                 # 13 arithmetic
    r"|([(),;])"                                          # 14 punctuation
    r"|(\S)"                                              # 15 anything else
    r")",
    re.DOTALL,
)

_FIXED = {10: "&", 11: "=", 12: "!", 13: "o", 15: "X"}

_WORDS: dict[str, str] = {}
for _cls, _words in (
    ("&", "and or xor eqv imp"),
    ("!", "not"),
    ("=", "like rlike regexp glob is in between sounds ilike similar"),
    ("o", "div mod binary collate escape"),
    ("1", "null true false unknown current_date current_time current_timestamp current_user "
          "session_user system_user localtime localtimestamp utc_date utc_time utc_timestamp "
          "sysdate"),
    ("U", "union intersect except minus"),
    ("E", "select"),
    ("T", "insert update delete drop create alter truncate exec execute declare shutdown "
          "grant revoke waitfor merge handler rename kill dbcc load copy"),
    ("F", "from"),
    ("g", "where having limit offset procedure into"),
    ("G", "order group"),
    ("b", "by"),
    ("C", "case"),
    ("w", "when then else"),
    ("k", "outfile dumpfile values table as on join top end all distinct distinctrow asc desc "
          "using with for set lock mode share begin goto print delay time"),
):
    for _word in _words.split():
        _WORDS[_word] = _cls


def tokens(text: str, start: int = 0) -> str:
    """The unfolded fingerprint of ``text[start:]``: one class character per token."""
    out: list[str] = []
    end = len(text)
    for match in _TOKEN.finditer(text, start):
        group = match.lastindex
        if group == 8 or group == 9:
            word = match.group(8)
            cls = _WORDS.get(word, "n")
            if match.group(9):
                out.append("f(" if cls in "n1" else cls + "(")
            else:
                out.append(cls)
        elif group == 4 or group == 5:
            out.append("s")
        elif group == 6:
            out.append("1")
        elif group == 14:
            out.append(match.group(14))
        elif group == 1:
            if match.end() >= end:
                out.append("c")
        elif group == 2:
            if match.end() >= end or not match.group(2).endswith("*/"):
                out.append("c")
        elif group == 7:
            out.append("v")
        elif group == 3:
            continue
        else:
            out.append(_FIXED[group])  # type: ignore[index]
        if len(out) >= MAX_TOKENS:
            break
    return "".join(out)


_VALUE = "1snvf"
# a call whose arguments read as SQL (no two values side by side: "sleep (8 hours)" is prose)
_CALL = re.compile(r"f\((?![^()]*[1snvf][1snvf])[^()X]*\)")
_GROUP = re.compile(r"(?<!f)\(([^()]*)\)")
_UNARY = re.compile(r"(?:(?<=[&=,;(kEUTgGFCwo])|^)o+(?=[1snvf(E])")
_ARITH = re.compile(r"(?:[1snv]|f(?!\())(?:o+(?:[1snv]|f(?!\()))+")
_LEFTOVER_CALL = re.compile(r"f(?=[1snvf])")    # a call whose parentheses never closed
_DANGLING = re.compile(r"(?<=[1snvf])o+(?=[&=c;Ug]|$)|(?<=[&=])o+(?=[&=])")
_RUNS = re.compile(r"(=)=+|(s)s+")


def fold(fp: str) -> str:
    """Collapse calls, parentheses, unary and binary arithmetic into single values."""
    if "!" in fp:
        fp = fp.replace("!", "")
    if "(" in fp:
        for _ in range(8):
            before = fp
            fp = _CALL.sub("f", fp)
            fp = _GROUP.sub(r"\1", fp)
            if "o" in fp:
                fp = _UNARY.sub("", fp)
                fp = _ARITH.sub("1", fp)
            if fp == before or "(" not in fp:
                break
        fp = fp.replace("(", "").replace(")", "")
        fp = _LEFTOVER_CALL.sub("", fp)
    elif ")" in fp:
        fp = fp.replace(")", "")
    if "o" in fp:
        fp = _UNARY.sub("", fp)
        fp = _ARITH.sub("1", fp)
        fp = _DANGLING.sub("", fp)
    if "Gb" in fp:
        fp = fp.replace("Gb", "G")
    fp = _RUNS.sub(r"\1\2", fp)
    # a string right after the broken-out one continues it: ''-escaped quote
    return "B" + fp[2:] if fp.startswith("Bs") else fp


def fingerprint(text: str, after_quote: int | None = None) -> str:
    """The folded fingerprint of ``text`` read from the start, or from ``after_quote`` on.

    Read from after a quote, it starts with ``B``: the literal the input closed.
    """
    if after_quote is None:
        return fold(tokens(text))
    return fold("B" + tokens(text, after_quote))
