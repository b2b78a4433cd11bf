"""Injection detectors and the HTML sanitizer against their anchors, in one run.

1. Detection rate per attack file of ``tests/data/corpora`` (lines of three
   characters or fewer reported apart as ambiguous), otelprod's detectors
   next to libinjection (``is_xss`` / ``is_sql_injection``). Target >= 95 %.
2. False positives on libinjection's own benign list. Target <= 1 %.
3. Throughput (inputs/s) of both detectors together at 10 B, 1 KB and 64 KB,
   against libinjection doing the same two checks (C code: expect a ratio
   below 1; the row is there to show the price of the extra coverage).
4. Worst case on adversarial 64 KB inputs (``<``/``'`` repeated, nested
   brackets, …): milliseconds, target well under 50 ms.
5. ``sanitize_html`` per call against bare ``nh3.clean`` with the same policy
   (target <= 1.1x) and against ``bleach.clean``.

Every miss is printed afterwards; a miss that is harmless on its own (a
fragment of a multi-line vector) is labelled as a justified miss.

    python -m benchmarks.bench_validation
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import bleach
import libinjection
import nh3

from benchmarks._harness import Result, compare, print_table
from otelprod.validation import detect_sqli, detect_xss, sanitize_html

CORPORA = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpora"

#: corpus lines that do nothing on their own, and why
JUSTIFIED_MISSES = {
    'a="get";': "a JavaScript assignment: one line of a multi-line vector, inert alone",
    "<HTML><BODY>": "plain document markup with no script, handler or URL",
    "<? echo('<SCR)';": "half of a PHP-split tag; the other half is on another line",
}

Detector = Callable[[str], bool]


def ours_xss(text: str) -> bool:
    return bool(detect_xss(text))


def ours_sqli(text: str) -> bool:
    return bool(detect_sqli(text))


def libinjection_xss(text: str) -> bool:
    return bool(libinjection.is_xss(text)["is_xss"])


def libinjection_sqli(text: str) -> bool:
    return bool(libinjection.is_sql_injection(text)["is_sqli"])


def _lines(path: Path, *, skip_comments: bool) -> list[str]:
    if not CORPORA.is_dir():
        raise SystemExit(f"corpus folder {CORPORA} is missing (it ships with the repository)")
    return [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not (skip_comments and line.startswith("#"))]


def detection(misses_out: dict[str, list[str]]) -> list[Result]:
    results = []
    for path in sorted((CORPORA / "attacks").glob("*.txt")):
        xss = path.name.startswith("xss")
        ours, anchor = (ours_xss, libinjection_xss) if xss else (ours_sqli, libinjection_sqli)
        lines = _lines(path, skip_comments=not xss)
        ambiguous = [line for line in lines if len(line.strip()) <= 3]
        scored = [line for line in lines if len(line.strip()) > 3]
        misses = [line for line in scored if not ours(line)]
        misses_out[path.name] = misses
        found = 100 * (len(scored) - len(misses)) / len(scored)
        anchor_found = 100 * sum(anchor(line) for line in scored) / len(scored)
        results.append(Result(
            f"detect {path.name} ({len(scored)} + {len(ambiguous)} ambiguous)", "% detected",
            found, "libinjection", anchor_found, ">= 95 %", lower_is_better=False,
        ))
    return results


def false_positives(flagged_out: list[str]) -> Result:
    lines = _lines(CORPORA / "benign" / "search-queries.txt", skip_comments=True)
    flagged = [line for line in lines if ours_xss(line) or ours_sqli(line)]
    flagged_out.extend(flagged)
    anchor = [line for line in lines if libinjection_xss(line) or libinjection_sqli(line)]
    return Result(f"false positives, benign list ({len(lines)} lines)", "% flagged",
                  100 * len(flagged) / len(lines), "libinjection",
                  100 * len(anchor) / len(lines), "<= 1 %")


def _sized(size: int) -> str:
    """Ordinary text of ``size`` bytes built from benign queries (no early exit for anyone)."""
    lines = _lines(CORPORA / "benign" / "search-queries.txt", skip_comments=True)
    text = " ".join(lines)
    while len(text) < size:
        text += " " + text
    return text[:size]


def throughput(quick: bool) -> list[Result]:
    results = []
    for label, size, number in (("10 B", 10, 2000), ("1 KB", 1024, 300), ("64 KB", 65536, 5)):
        text = _sized(size)
        n = max(1, number // 5) if quick else number

        def ours(text: str = text) -> None:
            detect_xss(text)
            detect_sqli(text)

        def anchor(text: str = text) -> None:
            libinjection.is_xss(text)
            libinjection.is_sql_injection(text)

        ours_us, anchor_us = compare(ours, anchor, number=n, rounds=3 if quick else 7)
        results.append(Result(f"detect xss+sqli throughput, {label} input", "inputs/s",
                              1e6 / ours_us, "libinjection", 1e6 / anchor_us,
                              lower_is_better=False, note="C anchor; informational"))
    return results


ADVERSARIAL = {
    "'<' x 64K": "<" * 65536,
    "quote x 64K": "'" * 65536,
    "nested brackets": "<" + "[(" * 32767,
    "'(' x 64K": "(" * 65536,
    "'<a ' x 21K": "<a " * 21845,
    "' or ' x 13K": " or '" * 13107,
    "'/*' x 32K": "/*" * 32768,
    "' style=' x 9K": " style=" * 9362,
}


def adversarial(quick: bool) -> tuple[Result, str]:
    worst, worst_name = 0.0, ""
    for name, text in ADVERSARIAL.items():
        best = min(_timed(text) for _ in range(1 if quick else 3))
        if best > worst:
            worst, worst_name = best, name
    anchor = min(_timed_libinjection(ADVERSARIAL[worst_name]) for _ in range(3))
    return Result(f"worst adversarial 64 KB input ({worst_name})", "ms", worst,
                  "libinjection, same input", anchor, "< 50 ms"), worst_name


def _timed(text: str) -> float:
    start = time.perf_counter()
    detect_xss(text)
    detect_sqli(text)
    return (time.perf_counter() - start) * 1000


def _timed_libinjection(text: str) -> float:
    start = time.perf_counter()
    libinjection.is_xss(text)
    libinjection.is_sql_injection(text)
    return (time.perf_counter() - start) * 1000


SAMPLE_HTML = (
    '<p>Hello <b>world</b>, see <a href="https://example.com" onclick="x()">this</a>.</p>'
    '<img src=x onerror=alert(1)><script>alert(1)</script><ul><li>one</li><li>two</li></ul>'
) * 4


def sanitizer(quick: bool) -> list[Result]:
    number = 200 if quick else 2000
    rounds = 3 if quick else 7
    strict = compare(lambda: sanitize_html(SAMPLE_HTML, strict=True),
                     lambda: nh3.clean(SAMPLE_HTML, tags=set(), attributes={}),
                     number=number, rounds=rounds)
    loose = compare(lambda: sanitize_html(SAMPLE_HTML, strict=False),
                    lambda: nh3.clean(SAMPLE_HTML), number=number, rounds=rounds)
    vs_bleach = compare(lambda: sanitize_html(SAMPLE_HTML, strict=False),
                        lambda: bleach.clean(SAMPLE_HTML), number=max(20, number // 10),
                        rounds=rounds)
    return [
        Result("sanitize_html strict (no tags)", "µs/call", strict[0],
               "nh3.clean, same policy", strict[1], "<= 1.1x"),
        Result("sanitize_html permissive (curated allowlist)", "µs/call", loose[0],
               "nh3.clean, defaults", loose[1], "<= 1.1x"),
        Result("sanitize_html permissive vs bleach", "µs/call", vs_bleach[0],
               "bleach.clean, defaults", vs_bleach[1], note="informational"),
    ]


def run(quick: bool = False) -> list[Result]:
    misses: dict[str, list[str]] = {}
    flagged: list[str] = []
    results = detection(misses)
    results.append(false_positives(flagged))
    results.extend(throughput(quick))
    worst, _ = adversarial(quick)
    results.append(worst)
    results.extend(sanitizer(quick))
    _print_misses(misses, flagged)
    return results


def _print_misses(misses: dict[str, list[str]], flagged: list[str]) -> None:
    for name, lines in misses.items():
        for line in lines:
            why = JUSTIFIED_MISSES.get(line)
            label = f"justified miss ({why})" if why else "MISS"
            print(f"{name}: {label}: {line[:120]}")
    for line in flagged:
        print(f"benign flagged: {line[:120]}")
    if not any(misses.values()) and not flagged:
        print("no misses, no false positives")


if __name__ == "__main__":
    print_table(run())
