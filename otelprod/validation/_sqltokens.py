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

import operator
import re

#: tokens read per context; shapes look at the first few, so longer input costs no more
MAX_TOKENS = 24

# Alternatives in order of how often they occur; each match is one token.
_TOKEN = re.compile(
    r"\s*(?:"
    # 1 word (dotted, `quoted` or [bracketed]), 2 the parenthesis that makes it a call
    r"([^\W\d][\w$]*(?:\.(?:[^\W\d][\w$]*|\*))*|`[^`]*`?|\[[\w ]{1,60}\](?:\.\[[\w ]{1,60}\])*)"
    r"(\s*\()?"
    r"|(0x[0-9a-f]*|0b[01]+|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|\\n(?![a-z]))"  # 3 number
    r"|(\()|(\))|(,)|(;)"                                # 4-7 punctuation
    r"|(<=>|<>|!=|>=|<=|==|=|<|>|!<|!>)"                  # 8 comparison
    r"|('[^'\\]*(?:\\.[^'\\]*)*'?|\"[^\"\\]*(?:\\.[^\"\\]*)*\"?)"  # 9 string
    r"|(--(?![\d.])[^\n]*|#[^\n]*)"                       # 10 line comment (--1 is minus minus one)
    r"|(/\*(?!!)[^*]*(?:\*+[^*/][^*]*)*(?:\*+/)?)"        # 11 block comment
    r"|(/\*!\d{0,6}|\*/)"                                 # 12 MySQL executable-comment markers
    r"|(\|\||&&)"                                         # 13 logical operator
    r"|(@@?(?:[\w.$]+|\"[^\"]*\"|'[^']*'|\x60[^\x60]*\x60)?)"  # 14 variable (@"quoted" too)
    r"|(!)"                                               # 15 not
    r"|([-+*/%^|&~]|:=|::)"                               # 16 arithmetic (:: casts in PostgreSQL)
    r"|(\S)"                                              # 17 anything else
    r")",
    re.DOTALL,
)
# class of each group whose class does not depend on the text ("" = no token)
_GROUP_CLASS = ("", "", "", "1", "(", ")", ",", ";", "=", "s", "", "", "", "&", "v", "!", "o",
                "X")
_LINE_COMMENT, _BLOCK_COMMENT, _ANYTHING_ELSE = 10, 11, 17

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
    previous = ""  # the class of the token before
    select_list = False  # a SELECT's column and table names may stand side by side
    room = MAX_TOKENS
    # comments and executable-comment markers are read past without a class: they count
    # here, so that ``/*/*/*…`` is not read to its end
    steps = 4 * MAX_TOKENS
    end = len(text)
    classes = _GROUP_CLASS
    values = _VALUES
    for match in _TOKEN.finditer(text, start):
        steps -= 1
        if not steps:
            out.append("X")
            break
        group = match.lastindex or _ANYTHING_ELSE
        cls = classes[group]
        if not cls:
            if group <= 2:  # a word; lastindex is 2 when the call parenthesis matched
                cls = _WORDS.get(match.group(1), "n")
                if group == 2:
                    cls = _CALL_CLASS[cls]
            elif group == _LINE_COMMENT:
                if match.end() < end:
                    continue  # a newline ends it: ``union#x\nselect``
                cls = "c"
            elif group == _BLOCK_COMMENT:
                if match.end() < end and match.group(group).endswith("*/"):
                    continue
                cls = "c"
            else:  # executable-comment markers: their content is code
                continue
        if not previous:
            if after_quote and cls in "n1X":
                return "X"  # ``it's``, ``5' 10"``: the quote was an apostrophe or a unit
            select_list = cls == "E"
        # two values side by side end every shape but a SELECT's column and table names
        # (``select a b from users u``): read no further (adjacent strings concatenate:
        # ``'a' 'b'`` is one value)
        elif (cls in values and previous in values and depth == 0 and not select_list
                and not (cls == "s" and previous == "s")):
            out.append("X")  # whatever follows: no shape may take this for the end
            break
        if cls == "X":
            out.append(cls)
            break  # SQL has no use for it: the statement ends in a syntax error here
        if cls[-1] == "(":
            depth += 1
        elif cls == ")" and depth:
            depth -= 1
        out.append(cls)
        previous = cls
        room -= 1
        if not room:
            out.append("X")
            break
    else:
        # a literal that runs to the end unclosed is the last token read: ``between's by
        # vows`` has a word's apostrophe, which opens no literal
        if previous == "s" and match.lastindex == 9 and _is_apostrophe(text, match.start(9)):
            out[-1] = "X"
    return "".join(out)


def _is_apostrophe(text: str, at: int) -> bool:
    """Whether the quote at ``at`` (the last token: its literal runs to the end) is a word's
    apostrophe: between two letters, and what follows goes on as prose, with a blank in it
    (``'AND' B`` and ``x'or'x`` reopen a literal)."""
    if not at or not text[at - 1].isalpha() or not text[at + 1 : at + 2].isalpha():
        return False
    return text.count(text[at], at + 1) == 0 and " " in text[at + 1 :]


# a call whose arguments read as SQL (no two values side by side: "sleep (8 hours)" is prose)
_CALL = re.compile(r"f\((?![^()]*[1snvf][1snvf])[^()X]*\)")
_GROUP = re.compile(r"(?<!f)\(([^()]*)\)")
_UNARY = re.compile(r"(?:(?<=[&=,;(kEUTgGFCwo])|^)o+(?=[1snvf(E])")
_ARITH = re.compile(r"(?:[1snv]|f(?!\())(?:o+(?:[1snv]|f(?!\()))+")
_LEFTOVER_CALL = re.compile(r"f(?=[1snvf])")    # a call whose parentheses never closed
_DANGLING = re.compile(r"(?<=[1snvf])o+(?=[&=c;Ug]|$)|(?<=[&=])o+(?=[&=])")
_RUNS = re.compile(r"(?<==)=+|(?<=s)s+")
# replacements are literal strings or C callables: a template such as r"\1" costs a Python
# call per substitution on 3.10 and 3.11
_CONTENTS = operator.itemgetter(1)


def fold(fp: str) -> str:
    """Collapse calls, parentheses, unary and binary arithmetic into single values."""
    if "!" in fp:
        fp = fp.replace("!", "")
    if "(" in fp:
        for _ in range(8):  # one level of nesting per round, innermost first
            folded = _GROUP.sub(_CONTENTS, _CALL.sub("f", fp))
            if folded == fp:
                break
            fp = folded
            if "(" not in fp:
                break
        fp = _LEFTOVER_CALL.sub("", fp.replace("(", "").replace(")", ""))
    elif ")" in fp:
        fp = fp.replace(")", "")
    if "o" in fp:
        fp = _DANGLING.sub("", _ARITH.sub("1", _UNARY.sub("", fp)))
    if "Gb" in fp:
        fp = fp.replace("Gb", "G")
    if "==" in fp or "ss" in fp:
        fp = _RUNS.sub("", fp)
    # a string right after the broken-out one continues it: ''-escaped quote
    return "B" + fp[2:] if fp.startswith("Bs") else fp


def fingerprint(text: str, after_quote: int | None = None) -> str:
    """The folded fingerprint of ``text`` read from the start, or from ``after_quote`` on.

    Read from after a quote, it starts with ``B``: the literal the input closed.
    """
    if after_quote is None:
        return fold(tokens(text))
    return fold("B" + tokens(text, after_quote, after_quote=True))
