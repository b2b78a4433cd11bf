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
MAX_TOKENS = 32

# Alternatives in order of how often they occur; each match is one token.
_TOKEN = re.compile(
    r"\s*(?:"
    # 1 word (dotted, `quoted` or [bracketed]), 2 the parenthesis that makes it a call
    r"([^\W\d][\w$]*(?:\.(?:[^\W\d][\w$]*|\*))*|`[^`]*`?|\[[\w ]{1,60}\](?:\.\[[\w ]{1,60}\])*)"
    r"(\s*\()?"
    r"|(0x[0-9a-f]*|0b[01]+|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|\\n(?![a-z]))"  # 3 number
    r"|([(),;])"                                          # 4 punctuation
    r"|(<=>|<>|!=|>=|<=|==|=|<|>|!<|!>)"                  # 5 comparison
    r"|('[^'\\]*(?:\\.[^'\\]*)*'?|\"[^\"\\]*(?:\\.[^\"\\]*)*\"?)"  # 6 string
    r"|(--(?![\d.])[^\n]*|#[^\n]*)"                       # 7 line comment (--1 is minus minus one)
    r"|(/\*(?!!)[^*]*(?:\*+[^*/][^*]*)*(?:\*+/)?)"        # 8 block comment
    r"|(/\*!\d{0,6}|\*/)"                                 # 9 MySQL executable-comment markers
    r"|(\|\||&&)"                                         # 10 logical operator
    r"|(@@?[\w.$]*)"                                      # 11 variable
    r"|(!)"                                               # 12 not
    r"|([-+*/%^|&~]|:=)"                                  # 13 arithmetic
    r"|(\S)"                                              # 14 anything else
    r")",
    re.DOTALL,
)
# class of each group whose class does not depend on the text ("" = no token)
_GROUP_CLASS = ("", "", "", "1", "", "=", "s", "", "", "", "&", "v", "!", "o", "X")

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
_CALL_CLASS = {cls: cls + "(" for cls in set(_WORDS.values())}
_CALL_CLASS.update({"n": "f(", "1": "f("})
_VALUES = frozenset("1snvf")


def tokens(text: str, start: int = 0, *, after_quote: bool = False) -> str:
    """The unfolded fingerprint of ``text[start:]``: one class character per token.

    Reading stops early once no shape can match any more: two values side by side outside
    parentheses (``the quick``: prose), or, after a quote, a word or number right away
    (``it's``, ``5' 10"``).
    """
    out: list[str] = []
    depth = 0  # parentheses open: inside a call, ``cast(x as int)`` is no prose
    end = len(text)
    classes = _GROUP_CLASS
    words = _WORDS
    for match in _TOKEN.finditer(text, start):
        group = match.lastindex or 14
        cls = classes[group]
        if not cls:
            if group <= 2:  # a word; lastindex is 2 when the call parenthesis matched
                cls = words.get(match.group(1), "n")
                if group == 2:
                    cls = _CALL_CLASS[cls]
            elif group == 4:
                cls = match.group(4)
            elif group == 7:
                if match.end() < end:
                    continue  # a newline ends it: ``union#x\nselect``
                cls = "c"
            elif group == 8:
                if match.end() < end and match.group(8).endswith("*/"):
                    continue
                cls = "c"
            else:  # executable-comment markers: their content is code
                continue
        if out:
            # two values side by side end every shape but a SELECT's column and table
            # names (``select a b from users u``): read no further
            # (adjacent strings concatenate: ``'a' 'b'`` is one value)
            if (cls in _VALUES and out[-1] in _VALUES and out[0] != "E" and depth == 0
                    and not (cls == "s" and out[-1] == "s")):
                out.append("X")  # whatever follows: no shape may take this for the end
                break
        elif after_quote and cls in "n1X":
            return "X"  # ``it's``, ``5' 10"``: the quote was an apostrophe or a unit
        if cls[-1] == "(":
            depth += 1
        elif cls == ")" and depth:
            depth -= 1
        out.append(cls)
        if cls == "X":
            break  # SQL has no use for it: the statement ends in a syntax error here
        if len(out) >= MAX_TOKENS:
            out.append("X")
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
        for _ in range(8):  # one level of nesting per round, innermost first
            before = fp
            fp = _GROUP.sub(r"\1", _CALL.sub("f", fp))
            if fp == before or "(" not in fp:
                break
        fp = _LEFTOVER_CALL.sub("", fp.replace("(", "").replace(")", ""))
    elif ")" in fp:
        fp = fp.replace(")", "")
    if "o" in fp:
        fp = _DANGLING.sub("", _ARITH.sub("1", _UNARY.sub("", fp)))
    if "Gb" in fp:
        fp = fp.replace("Gb", "G")
    if "==" in fp or "ss" in fp:
        fp = _RUNS.sub(r"\1\2", fp)
    # a string right after the broken-out one continues it: ''-escaped quote
    return "B" + fp[2:] if fp.startswith("Bs") else fp


def fingerprint(text: str, after_quote: int | None = None) -> str:
    """The folded fingerprint of ``text`` read from the start, or from ``after_quote`` on.

    Read from after a quote, it starts with ``B``: the literal the input closed.
    """
    if after_quote is None:
        return fold(tokens(text))
    return fold("B" + tokens(text, after_quote, after_quote=True))
