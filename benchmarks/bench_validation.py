"""Injection detectors and the HTML sanitizer against their anchors, in one run.

1. Detection rate per attack file of ``tests/data/corpora`` (PayloadsAllTheThings, fuzzdb
   and SecLists lists, libinjection's development data), on the development part and on
   the held-out part (``tests/corpora.py``), otelprod's detectors next to libinjection (``is_xss`` /
   ``is_sql_injection``). libinjection reads its own files URL-decoded, as its test
   harness does (``+`` as a space); otelprod reads every line as it is written.
2. False positives per benign file (prose, documentation, changelogs, markdown, pasted
   code; libinjection's search queries), both parts, as the share of lines let through
   (the note gives the flagged counts).
3. Median cost per input of both detectors together (``detect_xss`` then ``detect_sqli``
   on the same value, as a caller would), against libinjection doing the same two checks,
   input by input, interleaved: on the attack files, on benign prose, on 1 KB inputs, and
   over every one of those inputs together.
   Every call gets its own copy of the input, so nothing is remembered between calls.
   Target <= 3x.
4. Worst case on adversarial 64 KB inputs (runs of backslashes, ``' or '``, nested
   encodings, ``<``, ``%``, ``&#``, quotes, comment markers, ...): CPU milliseconds,
   target < 50 ms.
5. ``sanitize_html`` per call against bare ``nh3.clean`` with the same policy
   (target <= 1.1x) and against ``bleach.clean``.

Every miss and every flagged benign line of the held-out parts is printed afterwards.

    python -m benchmarks.bench_validation
"""

from __future__ import annotations

import statistics
import time

import bleach
import libinjection
import nh3

from benchmarks._harness import Result, compare, print_table
from otelprod.validation import detect_sqli, detect_xss, sanitize_html
from tests.corpora import (
    CORPORA,
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


def ours_xss(text: str) -> bool:
    return bool(detect_xss(text))


def ours_sqli(text: str) -> bool:
    return bool(detect_sqli(text))


def libinjection_xss(text: str) -> bool:
    return bool(libinjection.is_xss(text)["is_xss"])


def libinjection_sqli(text: str) -> bool:
    return bool(libinjection.is_sql_injection(text)["is_sqli"])


def detection(misses_out: dict[str, list[str]]) -> list[Result]:
    results = []
    for path in attack_files():
        ours = ours_xss if is_xss_file(path) else ours_sqli
        anchor = libinjection_verdict(path)
        for part, lines in zip(("dev", "held-out"), split(attack_lines(path)), strict=True):
            lines, ambiguous = scored(lines)
            misses = [line for line in lines if not ours(line)]
            if part == "held-out":
                misses_out[path.name] = misses
            found = 100 * (len(lines) - len(misses)) / len(lines)
            anchor_found = 100 * sum(anchor(line) for line in lines) / len(lines)
            results.append(Result(
                f"detect {path.name} {part} ({len(lines)}+{len(ambiguous)} amb.)",
                "% detected", found, "libinjection", anchor_found, ">= libinj.",
                lower_is_better=False,
            ))
    return results


def _flagged_by_us(line: str) -> bool:
    return ours_xss(line) or ours_sqli(line)


def _flagged_by_libinjection(line: str) -> bool:
    return libinjection_xss(line) or libinjection_sqli(line)


def _passed_row(name: str, count: int, ours: int, anchor: int, target: str) -> Result:
    """Benign lines let through (100 % - false positives), so the ratio is never 0/0."""
    return Result(name, "% passed", 100 * (count - ours) / count, "libinjection",
                  100 * (count - anchor) / count, target, lower_is_better=False,
                  note=f"flagged: {ours} vs {anchor}")


def false_positives(flagged_out: list[str]) -> list[Result]:
    results = []
    files = [*prose_files(), CORPORA / "benign" / SEARCH_QUERIES]
    totals = {"dev": [0, 0, 0], "held-out": [0, 0, 0]}
    for path in files:
        for part, lines in zip(("dev", "held-out"), split(corpus_lines(path)), strict=True):
            flagged = [line for line in lines if _flagged_by_us(line)]
            anchor = sum(_flagged_by_libinjection(line) for line in lines)
            if part == "held-out":
                flagged_out.extend(f"{path.name}: {line}" for line in flagged)
            if path.name != SEARCH_QUERIES:
                totals[part][0] += len(lines)
                totals[part][1] += len(flagged)
                totals[part][2] += anchor
            results.append(_passed_row(f"benign {path.name} {part} ({len(lines)})",
                                       len(lines), len(flagged), anchor,
                                       "flagged <= 1 %" if path.name == SEARCH_QUERIES
                                       else "flagged <= 0.2 %"))
    for part, (count, ours, anchor) in totals.items():
        results.append(_passed_row(f"benign, all prose {part} ({count})", count, ours, anchor,
                                   "flagged <= 0.2 %"))
    return results


def _costs(inputs: list[str], reps: int) -> tuple[list[float], list[float]]:
    """Per input, the best per-call µs of ours and of the anchor, interleaved."""
    ours_us, anchor_us = [], []
    clock = time.perf_counter
    for text in inputs:
        copies = [text.encode().decode() for _ in range(reps)]  # nothing remembered
        best_ours = best_anchor = float("inf")
        for copy in copies:
            start = clock()
            detect_xss(copy)
            detect_sqli(copy)
            middle = clock()
            libinjection.is_xss(copy)
            libinjection.is_sql_injection(copy)
            end = clock()
            best_ours = min(best_ours, middle - start)
            best_anchor = min(best_anchor, end - middle)
        ours_us.append(best_ours * 1e6)
        anchor_us.append(best_anchor * 1e6)
    return ours_us, anchor_us


def _sample(lines: list[str], count: int) -> list[str]:
    step = max(1, len(lines) // count)
    return lines[::step][:count]


def _kilobyte_inputs(count: int) -> list[str]:
    """1 KB slices of benign prose and of attack lines joined (no early exit for anyone)."""
    prose = " ".join(line for path in prose_files() for line in corpus_lines(path))
    attacks = " ".join(line for path in attack_files() for line in attack_lines(path))
    slices = []
    for text in (prose, attacks):
        slices += [text[i : i + 1024] for i in range(0, len(text) - 1024, len(text) // count)]
    return slices[: 2 * count]


def cost(quick: bool) -> list[Result]:
    count = 150 if quick else 1500
    reps = 3 if quick else 5
    groups = {
        "payload lists (PayloadsAllTheThings, fuzzdb, SecLists)": [
            line for path in attack_files() if path.parent.name == "attacks"
            for line in attack_lines(path)],
        "libinjection SQLi data + forums": [
            line for name in ("sqli-libinjection-data.txt", "sqli-libinjection-forums.txt")
            for line in attack_lines(CORPORA / "libinjection" / name)],
        "libinjection XSS data": attack_lines(
            CORPORA / "libinjection" / "xss-libinjection-data.txt"),
        "benign prose": [line for path in prose_files() for line in corpus_lines(path)],
        "1 KB inputs (prose, attacks)": _kilobyte_inputs(15 if quick else 60),
    }
    results = []
    every_ours: list[float] = []
    every_anchor: list[float] = []
    for label, lines in groups.items():
        ours_us, anchor_us = _costs(_sample(lines, count), reps)
        every_ours += ours_us
        every_anchor += anchor_us
        results.append(Result(f"median cost xss+sqli, {label}", "µs/input",
                              statistics.median(ours_us), "libinjection xss+sqli",
                              statistics.median(anchor_us), "<= 3x"))
    results.append(Result("median cost xss+sqli, every input above", "µs/input",
                          statistics.median(every_ours), "libinjection xss+sqli",
                          statistics.median(every_anchor), "<= 3x"))
    return results


ADVERSARIAL = {
    "backslashes": "\\" * 65536,
    "escaped quotes": "\\'" * 32768,
    "' or ' repeated": " or '" * 13107,
    "1 or repeated": "1 or " * 13107,
    "nested encodings %2525": "%2525" * 13107,
    "'%' x 64K": "%" * 65536,
    "'&#' x 32K": "&#" * 32768,
    "'<' x 64K": "<" * 65536,
    "quote x 64K": "'" * 65536,
    "nested brackets": "<" + "[(" * 32767,
    "'(' x 64K": "(" * 65536,
    "'<a ' x 21K": "<a " * 21845,
    "'/*' x 32K": "/*" * 32768,
    "'--' x 32K": "--" * 32768,
    "' style=' x 9K": " style=" * 9362,
    "+ADw- x 13K": "+ADw-" * 13107,
    "'{{' x 32K": "{{" * 32768,
    "'=' x 64K": "=" * 65536,
    "'or x = x ' x 7K": "or x = x " * 7282,
    "'=alert;' x 9K": "=alert;" * 9363,
    "'\\1A' x 21K": "\\1A" * 21846,
    "'%5c1' x 16K": "%5c1" * 16384,
    "curled quotes": "\u2018 or \u2019" * 10923,
    "'\xbc' x 64K": "\xbc" * 65536,
    "'(select[' x 8K": "(select[" * 8192,
    "'iif(' x 16K": "iif(" * 16384,
}


def adversarial(quick: bool) -> tuple[Result, str]:
    worst, worst_name = 0.0, ""
    for name, text in ADVERSARIAL.items():
        best = min(_cpu_ms(text, ours=True) for _ in range(1 if quick else 3))
        if best > worst:
            worst, worst_name = best, name
    anchor = min(_cpu_ms(ADVERSARIAL[worst_name], ours=False) for _ in range(3))
    return Result(f"worst adversarial 64 KB input ({worst_name})", "ms CPU", worst,
                  "libinjection, same input", anchor, "< 50 ms"), worst_name


def _cpu_ms(text: str, *, ours: bool) -> float:
    text = text.encode().decode()
    start = time.process_time()
    if ours:
        detect_xss(text)
        detect_sqli(text)
    else:
        libinjection.is_xss(text)
        libinjection.is_sql_injection(text)
    return (time.process_time() - start) * 1000


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
    results.extend(false_positives(flagged))
    results.extend(cost(quick))
    worst, _ = adversarial(quick)
    results.append(worst)
    results.extend(sanitizer(quick))
    _print_misses(misses, flagged)
    return results


def _print_misses(misses: dict[str, list[str]], flagged: list[str]) -> None:
    for name, lines in misses.items():
        for line in lines:
            print(f"held-out miss, {name}: {line[:120]}")
    for line in flagged:
        print(f"held-out benign flagged, {line[:120]}")
    if not any(misses.values()) and not flagged:
        print("no held-out misses, no held-out false positives")


if __name__ == "__main__":
    print_table(run())
