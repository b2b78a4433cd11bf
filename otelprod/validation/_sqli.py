"""SQL-injection detection: read the input as the database would, then match shapes.

An injection has to *leave* the literal it was put in and then *do*
something: bend a condition (``' OR 1=1``), join another query (``UNION
SELECT``), stack a statement, cut off the rest with a comment, or stall the
server. ``_sqltokens`` folds the input into a short fingerprint of token
classes from each place an application could have pasted it (as a number or
name, or inside ``'…'`` or ``"…"``); the shapes below are regular
expressions over those fingerprints, so ``1 and cos(3)=sin(4)`` and
``foo' and 1+2+3=6--`` are the same tautology. Shapes that prose can take
too (a quote then a comment, a quote then an operator) count only when what
precedes the quote looks like a single value, as an injected one does.

A few rules still run as regular expressions over the whole decoded text:
evidence that means SQL wherever it appears (``UNION SELECT``, ``SLEEP(5)``,
``xp_cmdshell``, a stacked ``; DROP TABLE``). Every repetition is bounded or
stops at a delimiter, so all of it runs in linear time.
"""

from __future__ import annotations

import re
from typing import Any

from otelprod.validation._decode import CallFinder, Prepared, prepare
from otelprod.validation._result import Finding, make_finding
from otelprod.validation._rules import GatedRules, combine, combined_index, excerpt
from otelprod.validation._selfcompare import self_comparison
from otelprod.validation._sqltokens import fingerprint, fold, tokens

# --- shapes over fingerprints (classes are listed in _sqltokens) ---------------------------

_V = "[1snvf]"  # a value
_VS = "[1svf]"  # a value that is not a bare name (prose is full of names)
_CHAIN = "(?:[o=&][1snvf])"  # operator and value, repeated: an expression
_SELECT_LIST = rf"(?:o|{_V}(?:k?n)?(?:,{_V}(?:k?n)?)*)"
_TABLES = r"n(?:k?n)?(?:,n(?:k?n)?)*"

_Shape = tuple[str, re.Pattern[str], str]

# after a quote: B is the literal the input closed
_QUOTED: list[_Shape] = [
    ("sqli.union_select", re.compile(r"Uk?o?E"), "UNION SELECT joins an attacker's query"),
    # (a literal among the operands: ``" in fetch and push`` has only names)
    ("sqli.tautology",
     re.compile(rf"^B(?={_CHAIN}*&)(?={_CHAIN}*=)(?={_CHAIN}*[o=&][1svf]){_CHAIN}+"),
     "quote closed, then a boolean operator and a comparison"),
    ("sqli.boolean_comment",
     re.compile(rf"^B{_CHAIN}*&(?:[1vf]{_CHAIN}*(?:c|;|$)|s{_CHAIN}*[c;])"),
     "quote closed, then a boolean operator and a value cut off by a comment"),
    ("sqli.subquery", re.compile(rf"^B{_CHAIN}*[o=&]E"), "quote closed, then a subquery"),
    ("sqli.stacked_query", re.compile(rf"^B{_CHAIN}*;k?[ET]"),
     "quote closed, then a second statement"),
    ("sqli.clause_breakout",
     re.compile(rf"^B{_CHAIN}*(?:G[1vf]|Gn(?:,n)*(?:g|c|;|$)|g[1vf])"),
     "quote closed, then ORDER BY / GROUP BY / HAVING / LIMIT"),
    ("sqli.conditional", re.compile(rf"C{_V}?w{_V}{_CHAIN}*w"), "CASE WHEN driving the query"),
]
# after a quote, only when the text before the quote is one value (``admin'--``)
_QUOTED_AFTER_VALUE: list[_Shape] = [
    ("sqli.comment_breakout", re.compile(rf"^B{_CHAIN}*c$"),
     "quote closed, then a comment cuts off the rest of the query"),
    ("sqli.concat_breakout", re.compile(rf"^B{_CHAIN}+c?$"),
     "quote closed, then an expression that reopens the literal"),
    ("sqli.statement", re.compile(r"^B(?:E|T[kvn])"),
     "quote closed, then a whole statement"),
]
_BLIND_CALL = "boolean operator followed by a function call (blind injection)"
# read from the start, as a number or a name
_BARE: list[_Shape] = [
    ("sqli.union_select", re.compile(r"Uk?o?E|^[1v]U[kc]*$|^[1v]U[1v](?:,[1v])+"),
     "UNION SELECT joins an attacker's query"),
    ("sqli.tautology",
     re.compile(rf"^{_V}?&(?={_V}{_CHAIN}*=)(?=[^cUgG;]*[1svf]){_V}{_CHAIN}*(?:c|;|$|U|g|G)"
                r"|^[1sv]=[1sv]&[1sv]"),
     "boolean operator followed by a comparison"),
    ("sqli.boolean_comment", re.compile(rf"^{_V}?{_CHAIN}*&{_VS}{_CHAIN}*c"),
     "boolean operator and a value, then a comment cutting off the query"),
    ("sqli.blind_function", re.compile(rf"^[1sv]?{_CHAIN}*&f{_CHAIN}*(?:c|;|$)|^[1v]{_CHAIN}*&f"),
     _BLIND_CALL),
    ("sqli.subquery", re.compile(rf"^{_VS}{_CHAIN}*[o=&]E"), "value, operator, then a subquery"),
    ("sqli.stacked_query", re.compile(rf"^{_V}?;k?(?:E|T(?:[kgFvsc;(]|$|n[skc;=1vF]|n$))"),
     "second statement stacked after a value"),
    ("sqli.clause_breakout",
     re.compile(rf"^{_V}?(?:G[1f]|g[1vf])(?:,{_V})*(?:c|$|U|&|;|g)"
                rf"|^[1svf]g(?:{_VS}{_CHAIN}+|n{_CHAIN}*={_VS}|{_VS}(?:,{_V})*[c;U])"
                # after a name, a comparison (``break into "x" and "y"`` is prose)
                rf"|^ng(?:[1svn]{_CHAIN}*={_VS}|{_VS}(?:,{_V})*[c;U])"
                rf"|^{_V}F{_TABLES}g|^[1v]&[1vf]{_CHAIN}*G"
                # nothing before it: `` HAVING 1=0--``
                rf"|^g[1sv]{_CHAIN}+(?:c|;|$)"),
     "ORDER BY / GROUP BY / HAVING / WHERE appended to a value"),
    ("sqli.conditional", re.compile(rf"C{_V}?w{_V}{_CHAIN}*w"), "CASE WHEN driving the query"),
    ("sqli.statement",
     re.compile(rf"^E{_SELECT_LIST}F{_TABLES}(?:$|c|;|g(?:[1svf]|n=)|G|U)"
                rf"|^E(?!n[Fk])(?:o|{_V}(?:k?n)?(?:,{_V}(?:k?n)?)*)F{_TABLES}g$"
                r"|^E[1vf](?:,[1svf])*[ns]?(?:$|c|;)"
                rf"|^E+[1vsf](?:{_CHAIN}|g[1v])*c|^{_V}?Tnkn="
                # two statement keywords in a row after a value, values, a comment: the
                # keywords of an injection typed out of order (``-747 select union 1,2/*``)
                r"|^[1v][EUG]{2}[1v](?:,[1v])*c$"),
     "a whole SQL statement where a value was expected"),
]
_BARE_COMMENT_FP = re.compile(r"[1vfs]c")
# a comparison of literals, then a short comment cuts off the rest: ``1!=0--``,
# ``(1) in (binary('b')) --`` (prose has words in its comments: ``2 + 2 = 4 -- as ever``)
_BARE_COMPARISON_COMMENT_FP = re.compile(r"(?=[^c]*=)[1sv](?:[o=][1svf])+c")
# ``1--``, ``(1)#``: no words before the comment and at most one after it
_BARE_COMMENT_TEXT = re.compile(
    r"(?:\s*\(.*|[^a-z]*|\s*@@?[\w.]+\s*)(?:--|#|/\*)\s*\S*\s*(?:\*/)?", re.DOTALL
)
_VALUE_PREFIX = re.compile(r"\s*[\w.@$:/-]{1,64}")
_SHORT_COMMENT = re.compile(r"(?:--|#|/\*)\s*\S*\s*$")
_REOPEN = re.compile(r"B(?:[o=&][1v])*[o=&]s")
_AT_MOST_ONE_VALUE = re.compile(r"\s*(?:[\w.@$-]{1,64}\s*)?")
# (``'or'1=1``: the reopened literal holds a comparison)
_ONE_VALUE_OR_COMPARISON = re.compile(
    r"\s*(?:[\w.@$-]{1,64}\s*(?:(?:=|<>|!=|<|>)\s*[\w.@$-]{1,64}\s*)?)?")
_LONE_VALUES = ("", "1", "n", "v")  # fingerprints of nothing or one value, no keyword
# with nothing before the quote, an injection goes on with a space or an operator
_OPERATOR_NEXT = re.compile(r"[\s)]|[-+*/%^|&=<>!~]")


# Cheap tests that say whether a reading can take any shape at all; prose fails them
# within a few characters, so most text is never tokenized.
_KEYWORD_AFTER_VALUE = (
    r"(?:and|or|xor|eqv|imp|not|union|intersect|except|where|order|group|having|limit|from|procedure"
    r"|into|like|rlike|regexp|is|in|between|div|mod|sounds)\b"
)
_AFTER_QUOTE_SOURCE = (
    # (not the markup of ``"><script>``: a tag after the quote)
    r"[\s)]*(?:[-+*/%^|&=!~;#('\"]|<(?![a-z/!?])|>(?!\s*<)"
    r"|(?:select|insert|update|delete|drop|exec|execute|declare|waitfor|shutdown|create|begin"
    r"|binary|collate|case)\b|" + _KEYWORD_AFTER_VALUE + ")"
)
_AFTER_QUOTE = re.compile(_AFTER_QUOTE_SOURCE)
_BARE_START = re.compile(
    # (operators with nothing on their left: ``%0=-1AND*1=/1``; the parenthesis that closes
    # the application's: ``) or ('a'='a``)
    # (each run matched as a whole, by a lookahead and a back-reference: a long run of "%"
    # or of letters is not given back one character at a time)
    r"(?=((?:[\s()+~!%*]|-(?!-)|/(?!\*))*))\1(?:[\d.@;]|&&|\|\||--|#|/\*"
    # a string the input closes and goes on after as SQL (``'a'='a``); not a quoted
    # attribute (``"><meta http-equiv="refresh"``), nor one that runs to the end (one token)
    r"|(?:'[^'\\]*(?:\\.[^'\\]*)*'|\"[^\"\\]*(?:\\.[^\"\\]*)*\")(?=" + _AFTER_QUOTE_SOURCE + ")"
    r"|(?:select|union|case|order|group|and|or|xor|not|insert|update|delete|drop|exec|execute"
    r"|declare|waitfor|shutdown|create|truncate|alter|having|limit|where|procedure|into|from"
    r"|binary)\b"
    # a name, then an operator (not the hyphen of ``e-mail``, ``bpo-1234``) or a keyword
    r"|(?=([\w$.\x60\[\]]+))\2(?:\s*(?:[()=<>!;|&^%*/+]|-(?![a-z0-9])|#)|\s+"
    + _KEYWORD_AFTER_VALUE + "))"
)


# what no bare reading starts with (markup's "<" first of all): the regex is not tried
_NO_BARE_START = frozenset("<>={}?^,:\\")
_QUOTED_ANY = combine([pattern for _, pattern, _ in _QUOTED])
_BARE_ANY = combine([pattern for _, pattern, _ in _BARE])


# a value, AND/OR, then a call, read before folding: the call's arguments need not be well
# formed (``116 AND SUBSTRING((y=1..3()),1,1)=x``), the boolean-blind shape is already there
_BOOLEAN_CALL = re.compile(r"o*[1v]&f\(")
# a number that became arithmetic on a call of literals: ``1 - ORD('A')`` (a function that
# reads a character or the server, not ``100 * sqrt(2)``)
_ARITHMETIC_CALL = re.compile(r"[1v]o+f\([1sv](?:,[1sv])*\)c?")
_EXTRACTING_CALL = re.compile(
    r"(?:ascii|ord|char|chr|unicode|hex|unhex|bin|conv|length|len|substr\w*|mid|left|right"
    r"|version|user|database|schema|sleep|benchmark)\s*\(")


def _bare_shape(text: str, raw: str) -> Finding | None:
    if _ARITHMETIC_CALL.fullmatch(raw) and _EXTRACTING_CALL.search(text):  # (one value, folded)
        return make_finding("sqli", "sqli.blind_function",
                            "a value computed with a function call (blind injection)",
                            text[:80])
    fp = fold(raw)
    if len(fp) <= 1:
        return None  # one token (a value, a string that runs to the end) takes no shape
    match = _BARE_ANY.search(fp)
    if match:
        rule, _, message = _BARE[combined_index(match)]
        return make_finding("sqli", rule, message, text[:80])
    if _BOOLEAN_CALL.match(raw):
        return make_finding("sqli", "sqli.blind_function", _BLIND_CALL, text[:80])
    if _BARE_COMMENT_FP.fullmatch(fp) and _BARE_COMMENT_TEXT.fullmatch(text):
        return make_finding("sqli", "sqli.comment_breakout",
                            "value followed by a comment that cuts off the query", text[:80])
    if _BARE_COMPARISON_COMMENT_FP.fullmatch(fp) and _SHORT_COMMENT.search(text):
        return make_finding("sqli", "sqli.tautology",
                            "comparison followed by a comment that cuts off the query",
                            text[:80])
    return None


def _shape(text: str) -> Finding | None:
    """The first shape any reading of ``text`` (lower-cased) takes, or None."""
    if text[:1] not in _NO_BARE_START and _BARE_START.match(text):
        found = _bare_shape(text, tokens(text))
        if found:
            return found
    for quote in "'\"":
        at = text.find(quote)
        if at < 0 or not _AFTER_QUOTE.match(text, at + 1):
            continue
        fp = fingerprint(text, at + 1)
        match = _QUOTED_ANY.search(fp)
        if match:
            rule, _, message = _QUOTED[combined_index(match)]
            return make_finding("sqli", rule, message, text[at : at + 80])
        blank_prefix = text[:at].isspace() or not at
        after_value = (_OPERATOR_NEXT.match(text, at + 1) if blank_prefix
                       else _VALUE_PREFIX.fullmatch(text, 0, at))
        # the application's closing quote must end a literal the input reopened
        reopened = text.count(quote, at + 1) % 2 == 1
        if after_value:
            for rule, pattern, message in _QUOTED_AFTER_VALUE:
                if not pattern.search(fp):
                    continue
                if rule == "sqli.comment_breakout" and (blank_prefix
                                                        or not _SHORT_COMMENT.search(text)):
                    continue
                if rule == "sqli.concat_breakout" and fp[-1] != "c" and (
                        not reopened
                        # a quoted symbol at the start of a sentence: "^" matches the start
                        or (blank_prefix and not _AT_MOST_ONE_VALUE.fullmatch(
                            text, text.rindex(quote) + 1))):
                    continue
                return make_finding("sqli", rule, message, text[at : at + 80])
        if reopened and _REOPEN.fullmatch(fp) and (
                # ``A' * 'B``: an operator between the closed literal and a reopened one
                (not blank_prefix and text[at + 1 : at + 2].isspace())
                # ``A 'AND' B``, ``'OR'``: the whole input is an operator in SQL's string
                # quotes between two values at most (a quoted word in a sentence, ``the
                # 'like' keyword matches``, has more around it; people quote a word they
                # search for with double quotes: ``"LIKE" STAMP``)
                or (quote == "'" and _AT_MOST_ONE_VALUE.fullmatch(text, 0, at)
                    and fingerprint(text[:at]) in _LONE_VALUES
                    and _ONE_VALUE_OR_COMPARISON.fullmatch(text, text.rindex(quote) + 1))):
            return make_finding("sqli", "sqli.concat_breakout",
                                "quote closed, then an operator and a reopened literal",
                                text[at : at + 80])
    return None


# --- regular expressions over the whole decoded text ---------------------------------------

_DANGEROUS = "database function or catalogue an application has no reason to receive"
# a literal an injection compares with another to steer a query: a number, a short string,
# a variable
# (a [bracketed] name too: a T-SQL column, or a tool's placeholder such as [RANDNUM])
_LITERAL = r"(?:\d+|'[^'\n]{0,40}'|\"[^\"\n]{0,40}\"|@\w+|\[\w{1,40}\])"
_COMPARISON = r"(?:=|<>|!=|<=|>=|<|>)"
_NILADIC = (r"(?:version|database|current_user|session_user|system_user|connection_id"
            r"|last_insert_id|current_database|user|schema)")
_CATALOGUES = (
    r"(?:information_schema|sqlite_master|sysobjects|syscolumns|sysusers|syslogins|sysdatabases"
    r"|mysql\.user|pg_shadow|pg_catalog|all_tables|user_tables|all_tab_columns|user_tab_columns"
    r"|all_users|dba_users|pg_group|pg_roles|pg_authid|pg_user|pg_database|pg_stat_activity"
    r"|sys\.\w|master\.)"
)
# lookbehinds for "{word} right after a closing quote or parenthesis (and up to two spaces)"
_AFTER_CLOSE = "|".join(f"(?<=[\'\"\x60)]{space}{{0}})" for space in ("", r"\s", r"\s\s"))

# A rule runs only when the text has one of its gate's features: a substring of
# ``_GATE_WORDS`` found in the text, or a name written as a call (``"sleep("``: the text
# calls ``sleep``). An empty gate: the rule always runs (it is anchored at the start).
_Rule = tuple[str, frozenset[str], re.Pattern[str], str]


def _gate(*features: str) -> frozenset[str]:
    return frozenset(features)


# (rule id, gate, pattern, message), in the order they are tried
_RULES: list[_Rule] = [
    ("sqli.union_select", _gate("union"),
     re.compile(
         # digits may touch it (``1e0UNION``): MySQL's tokenizer splits them off
         # (each alternative here starts with a literal, which the regex engine skips to)
         r"union(?:(?<![a-z_$]union)|(?<=\d[dfe]union))(?:[\s+]+(?:all|distinct|distinctrow))?"
         r"[\s+(*/]+"
         r"select(?:(?![a-z0-9_$])|[a-z_]{2,20}\s*\()"
     ),
     "UNION SELECT joins an attacker's query"),
    ("sqli.time_delay",
     _gate("sleep(", "pg_sleep(", "benchmark(", "randomblob(", "pg_sleep_for(",
           "receive_message("),
     re.compile(
         r"sleep(?<![a-z0-9.]sleep)\s*\(\s*(?:[\d.]+\s*(?:[),*/+%-]|div\b|mod\b)|\(|@|select\b"
         # a tool's placeholder for the seconds: SLEEP([SLEEPTIME]), sleep(__TIME__)
         r"|\[\w{1,20}\]\s*\)|__\w{1,20}__\s*\)"
         r"|if\s*\(|[a-z_]+\s*\()"
         r"|benchmark(?<![a-z0-9_]benchmark)\s*\(\s*\d+\s*,"
         r"|randomblob(?<![a-z0-9_]randomblob)\s*\(\s*\d"
         r"|pg_sleep_for\s*\("
         r"|dbms_(?:lock\.sleep|pipe\.receive_message)\s*\("
     ),
     "time-delay function (blind injection)"),
    ("sqli.time_delay", _gate("waitfor"),
     re.compile(r"waitfor(?<![a-z0-9_]waitfor)\s+(?:delay|time)\s*['\"]"),
     "time-delay function (blind injection)"),
    ("sqli.subquery", _gate("select"),
     re.compile(
         # (words may touch quotes, backquotes and parentheses: select`pass`from(users))
         r"\(\s*select(?:\s+|(?=[\x60(@'\"\[]))[\w@*'\"(),.\s+/%\x60\[\]-]{1,120}?"
         r"(?<![a-z0-9_])from"
         r"(?:\s+|(?=[\x60(\[\"]))[\w.$\[\]\"\x60(]"
         # (select(sleep(5))): a call or a value inside, not a name (``execute(select(User))``)
         r"|\(\s*select\s*\(\s*(?:[\d@'\"(]|[a-z_]\w*\s*\()"
         r"|\(\s*select\s+(?:@@|top\s+\d|\(?\s*case\s+when|if\s*\(|(?:char|chr"
         r"|concat|version|database|user|ascii|substr\w*|count|sleep|benchmark)\s*\()"
         # SELECT a literal WHERE literals compare, no table: (SELECT 9350 WHERE 8850=8850
         rf"|\(\s*select\s+{_LITERAL}\s+where\s+{_LITERAL}\s*{_COMPARISON}\s*{_LITERAL}"
     ),
     "parenthesised SELECT in an expression"),
    ("sqli.subquery", _gate("any(", "some(", "all("),
     # a quantified comparison with a subquery of literals: 1 - ANY(SELECT 1,2)
     re.compile(rf"(?:any|some|all)\s*\(\s*select\s+{_LITERAL}(?:\s*,\s*{_LITERAL})*\s*\)"),
     "parenthesised SELECT in an expression"),
    ("sqli.conditional", _gate("if(", "iif("),
     re.compile(
         r"i?if\s*\(\s*[\w@'\"]{1,40}\s*(?:=|<>|!=|<|>|like)\s*[\w@'\"]{1,40}"
         r"\s*[),]\s*(?:select|waitfor|drop|begin|exec|\d|'|\")"
         # a comparison of two literals as the condition: IIF(2510=9436,…)
         rf"|i?if\s*\(\s*\(?\s*{_LITERAL}\s*{_COMPARISON}\s*{_LITERAL}\s*\)?\s*,"
     ),
     "IF(condition) driving a query or a delay"),
    ("sqli.conditional", _gate("when"),
     # CASE WHEN a comparison of two literals THEN: CASE WHEN (9255=9830) THEN 1 ELSE 0 END
     re.compile(rf"when\s*\(?\s*{_LITERAL}\s*{_COMPARISON}\s*{_LITERAL}\s*\)?\s*then\b"),
     "CASE WHEN driving the query"),
    ("sqli.stacked_query", _gate(";"),
     re.compile(
         r";\s*(?:begin\s+)?(?:drop\s+(?:table|database|schema|user|view|procedure|function)"
         r"|execute\s+immediate|select\s+\*"
         r"|insert\s+into|delete\s+from|update\s+[\w.\[\]\x60\"]+\s+set"
         r"|truncate\s+(?:table\s+)?\w|exec(?:ute)?\s*(?:\(|xp_|sp_|master\.|@)"
         r"|xp_\w+|shutdown\b|waitfor\s+(?:delay|time)|declare\s+@"
         r"|select\s+(?:@@|\w+\s*\(|\d)|select\s+[^;]{1,120}?\s+from\s+\w"
         r"|create\s+(?:table|user|procedure|function|trigger|database|login)"
         r"|alter\s+(?:table|user|login|database)|grant\s+\w|rename\s+table"
         r"|load\s+(?:data|xml)\b|copy\s+\w+\s+(?:from|to)|set\s+@"
         r"|call\s+[\w.]+\s*\(|do\s*\(\s*\d|use\s+\w+\s+exec\b"
         # T-SQL control flow: IF EXISTS (…), IF/WHILE a comparison of literals then a
         # statement, MySQL's IF((1=2),…)
         r"|(?:if|while)\s+(?:not\s+)?exists\s*\("
         r"|(?:if|while)\s*\(?\s*[\w@'\"]{1,40}\s*(?:=|<>|!=|<|>)\s*[\w@'\"]{1,40}\s*\)?\s*"
         r"(?:drop|shutdown|exec|execute|select|insert|update|delete|waitfor|begin|declare"
         r"|create|truncate|alter)\b"
         rf"|if\s*\(\s*\(?\s*{_LITERAL}\s*{_COMPARISON}\s*{_LITERAL})"
     ),
     "second statement stacked after a semicolon"),
    ("sqli.statement", _gate("@"),
     re.compile(
         r"declare(?<![a-z0-9_]declare)\s+@\w+\s+(?:n?(?:var)?char|int|bigint|table|sysname|cursor)"
         r"|exec(?<![a-z0-9_]exec)(?:ute)?\s*\(\s*@"
         # a stored procedure with named parameters: EXEC sp_add_job @job_name = 'x'
         r"|exec(?<![a-z0-9_]exec)(?:ute)?\s+[\w.\[\]]+\s+@\w+\s*="
     ),
     "a whole SQL statement where a value was expected"),
    ("sqli.statement", _gate("statement"),
     re.compile(  # \A: tried at the start only
         r"\A\s*(?:create\s+table\s+[\w.\x60\"\[\]]+\s*\("
         r"|insert\s+into\s+[\w.\x60\"\[\]]+\s*(?:\(|values\b|select\b)"
         r"|delete\s+from\s+[\w.\x60\"\[\]]+\s+where\b"
         r"|update\s+[\w.\x60\"\[\]]+\s+set\s+[\w.]+\s*="
         r"|drop\s+(?:table|database)\s+[\w.\x60\"\[\]]+\s*(?:;|--|#)"
         r"|copy\s+\w+\s+(?:from|to)\s+(?:'|program\b)"
         r"|select\s+(?:current_user|session_user|system_user)\s*(?:;|$|from\b))"
     ),
     "a whole SQL statement where a value was expected"),
    # ORDER BY / GROUP BY: each pattern starts with its literal word, which the regex engine
    # jumps to; what must precede the word is looked for behind it
    ("sqli.clause_breakout", _gate("order"),
     re.compile(
         rf"order(?:{_AFTER_CLOSE.format('order')})\s+by\s+[\d(@]"
         r"|order(?<![a-z]order)\s+by\s+\d+(?:\s*,\s*\d+){0,50}\s*(?:--|#|/\*|$)"
     ),
     "ORDER BY / GROUP BY / HAVING appended after a broken-out value"),
    ("sqli.clause_breakout", _gate("group"),
     re.compile(
         rf"group(?:{_AFTER_CLOSE.format('group')})\s+by\s+[\d(@]"
         r"|group(?<![a-z]group)\s+by\s+[\w.,\s]{1,120}?\s+having\s+[\w'\"]{1,40}\s*="
     ),
     "ORDER BY / GROUP BY / HAVING appended after a broken-out value"),
    ("sqli.clause_breakout", _gate("analyse("),
     re.compile(r"procedure\s+analyse\s*\("),
     "ORDER BY / GROUP BY / HAVING appended after a broken-out value"),
    # database functions and catalogues an application has no reason to receive, one
    # entry per kind so that each runs only when its own words are in the text
    ("sqli.dangerous_function", _gate("@"),
     re.compile(r"@@(?:version|datadir|hostname|basedir|servername|language|spid|identity|tmpdir)"),
     _DANGEROUS),
    # catalogues count as the target of a query, not as words in a sentence about them
    ("sqli.dangerous_function", _gate("from"),
     re.compile(rf"from\s+[\[\x60\"]?{_CATALOGUES}(?![a-z0-9_])"),
     _DANGEROUS),
    ("sqli.dangerous_function", _gate("join"),
     re.compile(rf"join\s+[\[\x60\"]?{_CATALOGUES}(?![a-z0-9_])"),
     _DANGEROUS),
    ("sqli.dangerous_function", _gate("information_schema"),
     re.compile(r"information_schema(?<![a-z0-9_]information_schema)\.(?:tables|columns|schemata)\b"),
     _DANGEROUS),
    ("sqli.dangerous_function", _gate("sys"),
     re.compile(r"sys(?<![a-z0-9_]sys)(?:ibm|cat)\.\w"),
     _DANGEROUS),
    ("sqli.dangerous_function",
     _gate("version(", "database(", "current_user(", "session_user(", "system_user(",
           "connection_id(", "last_insert_id(", "current_database(", "user(", "schema("),
     # a niladic function as an operand or the whole input, not a name in a sentence
     re.compile(
         rf"(?:[(,=<>+|&]\s*|(?:select|and|or|where|like)\s+){_NILADIC}\s*\(\s*\)"
         # at the start, going on as an expression: DATABASE() LIKE SCHEMA()
         rf"|^\s*{_NILADIC}\s*\(\s*\)\s*(?:[=<>!+|&,);#-]|/\*|$|(?:like|rlike|regexp|in|is"
         r"|and|or|xor|between)\b)"
     ),
     _DANGEROUS),
    ("sqli.dangerous_function", _gate("ascii(", "ord(", "unicode("),
     # one character of a value at a time: blind extraction, ASCII(SUBSTRING(passwd,1,1))
     re.compile(r"(?:ascii|ord|unicode)\s*\(\s*(?:substr(?:ing)?|mid|left|right)\s*\("),
     _DANGEROUS),
    ("sqli.dangerous_function",
     _gate("current_setting(", "load_file(", "extractvalue(", "updatexml(", "name_const(",
           "pg_read_file(", "pg_ls_dir(", "lo_import("),
     re.compile(r"(?:current_setting|load_file|extractvalue|updatexml|name_const|pg_read_file"
                r"|pg_ls_dir|lo_import)\s*\("),
     _DANGEROUS),
    ("sqli.dangerous_function", _gate("_"),
     # the literal "_" first, then what precedes it: the regex engine skips from "_" to "_"
     re.compile(
         r"_(?:(?<=xp_)(?<![a-z0-9_]xp_)(?:cmdshell|dirtree|regread|fileexist|servicecontrol)"
         r"|(?<=sp_)(?<![a-z0-9_]sp_)(?:executesql|oacreate|makewebtask|configure|password)"
         r"|(?<=utl_)(?:http|inaddr|file)\.|(?<=dbms_)\w+\.)"
     ),
     _DANGEROUS),
    ("sqli.dangerous_function", _gate("into"),
     re.compile(r"into\s+(?:out|dump)file\b"),
     _DANGEROUS),
    ("sqli.dangerous_function", _gate("char(", "chr(", "concat(", "concat_ws(", "convert("),
     re.compile(
         r"(?:char|chr)\s*\(\s*\d+\s*\)\s*(?:\+|\|\||,)\s*(?:char|chr)\s*\("
         r"|concat(?:_ws)?\s*\(\s*0x[0-9a-f]|convert\s*\(\s*int\s*,"
     ),
     _DANGEROUS),
]

#: the first words of the statements the rule above looks for at the start
_STATEMENT_WORDS = ("create", "insert", "delete", "update", "drop", "copy", "select")
_NO_FEATURES: frozenset[str] = frozenset()  # most text: one shared empty set, not a new one
#: the substrings gates ask about (call features: ``_GATE_CALL_FINDER``)
_GATE_WORDS = tuple(sorted({feature for _, gate, _, _ in _RULES for feature in gate
                            if not feature.endswith("(") and feature != "statement"}))
#: the names whose calls gates ask about
_CALL_FEATURE = {feature[:-1]: feature for _, gate, _, _ in _RULES for feature in gate
                 if feature.endswith("(")}
_GATE_CALL_FINDER = CallFinder(_CALL_FEATURE)
_UNION_SELECT = _RULES[0]
_GATED = GatedRules(_RULES, lambda rule: rule[1])
assert all(gate for _, gate, _, _ in _RULES)

# (rule id, pattern, message) tried on the text itself when it has a block comment
_COMMENT_RULES: list[_Shape] = [
    ("sqli.statement",
     # MySQL runs what a version-gated comment holds: 395 /*!32359 AND 0 */
     re.compile(r"/\*!(?:\d{5,6}|\d{0,6}\s*(?:and|or|xor|not|union|select|insert|update"
                r"|delete|drop|order|group|having|limit|sleep|benchmark|if|case)\b)"),
     "SQL inside a MySQL executable comment"),
    ("sqli.comment_breakout",
     # the whole input is one value and a comment that cuts off the rest: 1/* … */
     re.compile(r"\A\s*[\w.@$-]{1,64}\s*/\*(?:[^*]|\*(?!/))*\*/\s*\Z"),
     "value followed by a comment that cuts off the query"),
    ("sqli.comment_breakout",
     # a comment opened inside a comment: PostgreSQL nests them, MySQL does not, so each
     # reads a different query (libinjection's evasion class): 1 /* /* */ */ 2
     # (not a glob's ``/**/*.js``: an opener followed by ``*`` or ``.``)
     re.compile(r"/\*(?![.*])(?:[^*]|\*(?!/)){0,200}?/\*(?![.*])"),
     "a comment nested in a comment, read differently by each database"),
]


def _features(view: str) -> frozenset[str]:
    """The gate features ``view`` has: gate words it holds, ``name(`` for gate calls, and
    ``statement`` when it starts with a statement's first word."""
    found = {word for word in _GATE_WORDS if word in view}
    if "(" in view:
        calls = _GATE_CALL_FINDER(view)
        if calls:
            found.update(_CALL_FEATURE[name] for name in calls)
    if (view.lstrip() if view[:1].isspace() else view).startswith(_STATEMENT_WORDS):
        found.add("statement")
    return frozenset(found) if found else _NO_FEATURES


def scan_sqli(prepared: Prepared) -> list[Finding]:
    """The first reason ``prepared`` looks like SQL injection, or ``[]``."""
    text = prepared.sql_text
    rule, _, pattern, message = _UNION_SELECT  # the commonest attack, found without reading
    if "union" in text:
        match = pattern.search(text)
        if match:
            return [make_finding("sqli", rule, message, excerpt(text, match))]
    if "/*" in text:  # comments are gone from the views below
        for rule, pattern, message in _COMMENT_RULES:
            match = pattern.search(text)
            if match:
                return [make_finding("sqli", rule, message, excerpt(text, match))]
    found = _shape(text)
    if found is None and prepared.form_encoded:
        found = _shape(prepared.form_text)
    if found is None and "=" in text:
        compared = self_comparison(text)
        if compared is not None:
            found = make_finding("sqli", "sqli.tautology",
                                 "a value compared with itself: a condition always true", compared)
    if found is not None:
        return [found]
    # the views differ from the text only with comments or a form encoding
    views = (prepared.sql_variants
             if prepared.form_encoded or "/*" in text or (prepared.controls and "\n" in text)
             else (text,))
    for view in views:
        features = _features(view)
        if not features:
            continue  # every rule has a gate
        for rule, _, pattern, message in _GATED.select(features):
            match = pattern.search(view)
            if match:
                return [make_finding("sqli", rule, message, excerpt(view, match))]
    return []


def detect_sqli(value: Any) -> list[Finding]:
    """Findings (with rule ids) if ``value`` looks like SQL injection; ``[]`` if not.

    Accepts anything (``None``, bytes, invalid Unicode) and never raises.
    """
    try:
        return scan_sqli(prepare(value))
    except Exception:  # pragma: no cover - a detector bug must not become the caller's
        return []
