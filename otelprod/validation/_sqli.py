"""SQL-injection detection: the shapes an injected fragment must take to do anything.

An injection has to *leave* the literal it was put in and then *do*
something: join another query (``UNION SELECT``), stack a statement, bend a
condition (``OR 1=1``, ``' OR ''-'``), cut off the rest with a comment, or
stall the server (``SLEEP``, ``BENCHMARK``, ``WAITFOR DELAY``,
``pg_sleep``). Each rule describes one of those shapes over decoded,
lower-cased text in which ``/* … */`` counts as whitespace (and, in a second
view, as nothing, for ``UN/**/ION``). Words alone (``union``, ``select``,
``or``) never trigger: "O'connors UNION selected a few" and "10 OR LESS" are
search queries, not attacks.

Every repetition is bounded or stops at a delimiter, so the patterns run in
linear time on adversarial input.
"""

from __future__ import annotations

import re
from typing import Any

from otelprod.validation._decode import Prepared, prepare
from otelprod.validation._result import Finding
from otelprod.validation._rules import Gate, excerpt, passes

_W = r"(?![a-z0-9_$])"  # end of a word
_NUM = r"[-+]?(?:0x[0-9a-f]{1,64}|\d{1,40}(?:\.\d{0,20})?(?:e[-+]?\d{1,5})?|\.\d{1,20})"
_STR = r"(?:n?'[^']{0,100}'|\"[^\"]{0,100}\")"
_VAR = r"@@?[a-z_][a-z0-9_.$]{0,63}"
_LIT = rf"(?:{_NUM}|{_STR}|(?:true|false|null){_W}|{_VAR})"
_STR_OPEN = r"(?:'[^']{0,100}$|\"[^\"]{0,100}$)"
_IDENT = r"[a-z_][a-z0-9_.$]{0,63}"
_FUNC = r"[a-z_][a-z0-9_.]{0,63}\s*\("
_WORD_BOOL = rf"(?<![a-z0-9_$])(?:or|and|xor){_W}"
_BOOL = rf"(?:{_WORD_BOOL}|\|\||&&)"
_CMP = (
    r"(?:<=>|<>|!=|>=|<=|==?|>|<"
    r"|(?<![a-z])(?:not\s+)?(?:like|rlike|regexp|glob|sounds\s+like|is(?:\s+not)?|between)"
    + _W + r"|(?<![a-z])(?:not\s+)?in\s*\()"
)
_ARITH = r"[-+*/%&|^]"
_RHS = rf"(?:{_LIT}|{_STR_OPEN}|{_FUNC}|\(\s*select{_W})"
_TERM = r"(?:--(?![a-z0-9])|#\s*$|/\*)"
_GAP = r"[\s+(]*"  # spaces, URL-style '+', opening parentheses
_CLOSE = r"[\s+)]*"
_STRONG_FUNCS = (
    r"ascii|ord|substr|substring|char_length|exists|elt|extractvalue|updatexml|hex|unhex"
    r"|conv|current_user|sleep|benchmark|pg_sleep|md5|sha1|rand|floor|cast|convert|concat"
    r"|concat_ws|unicode|instr|locate|isnull|ifnull|coalesce|load_file|make_set|gtid_subset"
    r"|lpad|rpad|soundex|crc32|sha2|compress|uncompress|generate_series|current_database"
)
_PLAIN_WORD_FUNCS = r"if|iif|mid|length|len|user|version|database|schema|count|char|chr|left|right"

_BOOL_GATE = re.compile(rf"{_WORD_BOOL}|\|\||&&")

# (rule id, gate, pattern, message)
_RULES: list[tuple[str, Gate, re.Pattern[str], str]] = [
    ("sqli.union_select", ("union",),
     re.compile(
         # digits may touch it (``1e0UNION``): MySQL's tokenizer splits them off
         r"(?:(?<![a-z_$])|(?<=\d[dfe]))union(?:[\s+]+(?:all|distinct|distinctrow))?[\s+(*/]+"
         r"select(?:(?![a-z0-9_$])|[a-z_]{2,20}\s*\()"
     ),
     "UNION SELECT joins an attacker's query"),
    ("sqli.time_delay", ("sleep", "benchmark", "waitfor", "randomblob", "dbms_"),
     re.compile(
         r"(?<![a-z0-9.])(?:pg_)?sleep\s*\(\s*(?:[\d.]+\s*[),*/+-]|\(|@|select\b|if\s*\(|[a-z_]+\s*\()"
         r"|(?<![a-z0-9_])benchmark\s*\(\s*\d+\s*,"
         r"|(?<![a-z0-9_])waitfor\s+(?:delay|time)\s*['\"]"
         r"|(?<![a-z0-9_])randomblob\s*\(\s*\d"
         r"|(?<![a-z0-9_])pg_sleep_for\s*\("
         r"|dbms_(?:lock\.sleep|pipe\.receive_message)\s*\("
     ),
     "time-delay function (blind injection)"),
    ("sqli.tautology", _BOOL_GATE,
     re.compile(
         rf"{_BOOL}{_GAP}{_LIT}{_CLOSE}{_CMP}{_GAP}{_RHS}"
         rf"|{_WORD_BOOL}{_GAP}{_IDENT}{_CLOSE}{_CMP}{_GAP}(?:{_LIT}|{_STR_OPEN}|{_FUNC})"
         # x=x, or x=y cut off by a comment
         rf"|{_WORD_BOOL}{_GAP}([a-z_][a-z0-9_]{{0,30}})[\s)]*=[\s(]*\1(?![a-z0-9_])"
         rf"|{_WORD_BOOL}{_GAP}{_IDENT}{_CLOSE}{_CMP}{_GAP}{_IDENT}{_CLOSE}{_TERM}"
     ),
     "boolean operator followed by a comparison of literals"),
    ("sqli.boolean_expression", _BOOL_GATE,
     re.compile(
         rf"{_BOOL}{_GAP}{_STR}{_CLOSE}{_ARITH}{_GAP}{_RHS}"
         rf"|{_BOOL}{_GAP}{_STR}\s*{_STR_OPEN}"
     ),
     "boolean operator joining string arithmetic onto a broken-out literal"),
    ("sqli.concat_breakout", ("'", '"'),
     re.compile(
         r"\w'\s*(?:\+|\|\|)\s*'[^']{0,100}$|\w\"\s*(?:\+|\|\|)\s*\"[^\"]{0,100}$"
         rf"|\w['\"]\s*{_CMP}\s*{_LIT}\s*{_CMP}\s*(?:{_LIT}|{_STR_OPEN})"
     ),
     "quote closed, then string concatenation or a chain of comparisons reopens it"),
    ("sqli.boolean_comment", _BOOL_GATE,
     re.compile(rf"{_BOOL}{_GAP}{_LIT}{_CLOSE}{_TERM}"),
     "boolean operator and literal, then a comment cutting off the query"),
    ("sqli.blind_function", _BOOL_GATE,
     re.compile(
         rf"{_BOOL}{_GAP}(?:(?:{_STRONG_FUNCS})\s*\(|(?:{_PLAIN_WORD_FUNCS})\()"
         rf"|{_WORD_BOOL}{_GAP}select\s+[\w@*'\"(),.\s+/%-]{{1,200}}?\s+from\s+\w"
     ),
     "boolean operator followed by a probing function (blind injection)"),
    ("sqli.subquery", ("select", "case"),
     re.compile(
         rf"{_BOOL}{_GAP}\(\s*select{_W}"
         r"|\(\s*select\s+[\w@*'\"(),.\s+/%-]{1,200}?\s+from\s+[\w.$\[\]\"\x60(]"
         r"|\(\s*select\s*\(|\(\s*select\s+(?:@@|top\s+\d|case\s+when|if\s*\(|(?:char|chr|concat"
         r"|version|database|user|ascii|substr\w*|count|sleep|benchmark)\s*\()"
         r"|\(\s*case\s+when\b[^;]{0,200}?\bthen\b"
     ),
     "parenthesised SELECT in an expression"),
    ("sqli.conditional", ("if",),
     re.compile(
         rf"(?<![a-z0-9_])i?if\s*\(\s*{_LIT}\s*{_CMP}\s*{_LIT}\s*[),]\s*"
         r"(?:select|waitfor|drop|begin|exec|\d|'|\")"
     ),
     "IF(condition) driving a query or a delay"),
    ("sqli.comment_breakout", ("--", "#", "/*"),
     re.compile(r"(?:^|[\w)])['\"\x60]\s*\)*\s*(?:--(?![a-z0-9])|#\s*$|/\*)"),
     "quote closed, then a comment cuts off the rest of the query"),
    ("sqli.stacked_query", (";",),
     re.compile(
         r";\s*(?:begin\s+)?(?:drop\s+(?:table|database|schema|user|view|procedure|function)"
         r"|execute\s+immediate|select\s+\*"
         r"|insert\s+into|delete\s+from|update\s+[\w.\[\]\x60\"]+\s+set"
         r"|truncate\s+(?:table\s+)?\w|exec(?:ute)?\s*(?:\(|xp_|sp_|master\.|@)"
         r"|xp_\w+|shutdown\b|waitfor\s+(?:delay|time)|declare\s+@"
         r"|select\s+(?:@@|\w+\s*\(|\d)|select\s+[^;]{1,120}?\s+from\s+\w"
         r"|create\s+(?:table|user|procedure|function|trigger|database|login)"
         r"|alter\s+(?:table|user|login|database)|grant\s+\w|rename\s+table"
         r"|load\s+data|copy\s+\w+\s+(?:from|to)|set\s+@)"
     ),
     "second statement stacked after a semicolon"),
    ("sqli.statement",
     ("declare", "exec", "create", "insert", "delete", "update", "drop", "copy", "select"),
     re.compile(
         r"(?<![a-z0-9_])declare\s+@\w+\s+(?:n?(?:var)?char|int|bigint|table|sysname|cursor)"
         r"|(?<![a-z0-9_])exec(?:ute)?\s*\(\s*@"
         r"|^\s*(?:create\s+table\s+[\w.\x60\"\[\]]+\s*\("
         r"|insert\s+into\s+[\w.\x60\"\[\]]+\s*(?:\(|values\b|select\b)"
         r"|delete\s+from\s+[\w.\x60\"\[\]]+\s+where\b"
         r"|update\s+[\w.\x60\"\[\]]+\s+set\s+[\w.]+\s*="
         r"|drop\s+(?:table|database)\s+[\w.\x60\"\[\]]+\s*(?:;|--|#)"
         r"|copy\s+\w+\s+(?:from|to)\s+(?:'|program\b)"
         r"|select\s+(?:current_user|session_user|system_user)\s*(?:;|$|from\b))"
     ),
     "a whole SQL statement where a value was expected"),
    ("sqli.clause_breakout", ("order", "group", "having", "limit", "procedure"),
     re.compile(
         r"['\"\x60)]\s*(?:order|group)\s+by\s+[\w(@'\"]"
         r"|['\"\x60)]\s*(?:having|limit)\s+\d"
         r"|procedure\s+analyse\s*\("
         rf"|(?<![a-z])having\s+{_LIT}\s*{_CMP}\s*{_LIT}"
         r"|(?<![a-z])order\s+by\s+\d+(?:\s*,\s*\d+){0,50}\s*(?:--|#|/\*|$)"
     ),
     "ORDER BY / GROUP BY / HAVING appended after a broken-out value"),
    ("sqli.dangerous_function", (
         "@@", "information_schema", "sqlite_master", "sysobjects", "syscolumns", "mysql.", "pg_",
         "all_", "user_tab", "dba_", "sysibm", "syscat", "xp_", "sp_", "load_file", "extractvalue",
         "updatexml", "name_const", "lo_import", "outfile", "dumpfile", "utl_", "dbms_", "char",
         "chr", "concat", "convert", "version", "database", "current_", "_user", "connection_id",
         "last_insert_id",
     ),
     re.compile(
         r"@@(?:version|datadir|hostname|basedir|servername|language|spid|identity|tmpdir)"
         r"|(?<![a-z0-9_])(?:information_schema|sqlite_master|sysobjects|syscolumns"
         r"|mysql\.user|pg_shadow|pg_catalog|all_tables|user_tables|all_tab_columns"
         r"|user_tab_columns|all_users|dba_users|pg_group|pg_roles|pg_authid|pg_user"
         r"|pg_database|pg_stat_activity)(?![a-z0-9_])|(?<![a-z0-9_])sys(?:ibm|cat)\.\w"
         r"|(?<![a-z0-9_.])(?:version|database|current_user|session_user|system_user"
         r"|connection_id|last_insert_id|current_database)\s*\(\s*\)"
         r"|(?<![a-z0-9_])current_setting\s*\("
         r"|(?<![a-z0-9_])xp_(?:cmdshell|dirtree|regread|fileexist|servicecontrol)"
         r"|(?<![a-z0-9_])sp_(?:executesql|oacreate|makewebtask|configure|password)"
         r"|(?<![a-z0-9_])(?:load_file|extractvalue|updatexml|name_const|pg_read_file"
         r"|pg_ls_dir|lo_import)\s*\("
         r"|into\s+(?:out|dump)file\b|utl_(?:http|inaddr|file)\.|dbms_\w+\."
         r"|(?:char|chr)\s*\(\s*\d+\s*\)\s*(?:\+|\|\||,)\s*(?:char|chr)\s*\("
         r"|concat(?:_ws)?\s*\(\s*0x[0-9a-f]|convert\s*\(\s*int\s*,"
     ),
     "database function or catalogue an application has no reason to receive"),
]


def scan_sqli(prepared: Prepared) -> list[Finding]:
    findings: list[Finding] = []
    variants = prepared.sql_variants
    gates: dict[tuple[int, int], bool] = {}  # each gate is evaluated once per view
    for rule, gate, pattern, message in _RULES:
        for index, text in enumerate(variants):
            passed = gates.get((id(gate), index))
            if passed is None:
                passed = gates[(id(gate), index)] = passes(gate, text)
            if not passed:
                continue
            match = pattern.search(text)
            if match:
                findings.append(Finding("sqli", rule, message, excerpt(text, match)))
                break
    return findings


def detect_sqli(value: Any) -> list[Finding]:
    """Findings (with rule ids) if ``value`` looks like SQL injection; ``[]`` if not.

    Accepts anything (``None``, bytes, invalid Unicode) and never raises.
    """
    try:
        return scan_sqli(prepare(value))
    except Exception:  # pragma: no cover - a detector bug must not become the caller's
        return []
