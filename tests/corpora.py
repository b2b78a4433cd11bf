"""The detector corpora under ``tests/data/corpora`` (origins and licences in its SOURCES.md).

Shared by ``tests/test_detect.py`` and ``benchmarks/bench_validation.py``. Every file is split
the same way into a development part (what the rules were tuned against) and a held-out part
(reported, never tuned against): every fifth block of lines, about a hundred blocks per file,
so runs of near-identical generated lines mostly land on one side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote_plus

CORPORA = Path(__file__).resolve().parent / "data" / "corpora"

#: lines this short (``'``, ``'-'``, ``,``) are ambiguous on their own: reported apart
AMBIGUOUS_MAX_LEN = 3

#: libinjection's unit-test inputs it calls *not* SQL injection (``1 UNION``): reported apart
LIBINJECTION_AMBIGUOUS = "benign-libinjection-unittests.txt"

#: benign files that are not prose: libinjection's hand-picked hard cases, asserted on their own
SEARCH_QUERIES = "search-queries.txt"


def corpus_lines(path: Path, *, skip_comments: bool = True) -> list[str]:
    """Non-empty lines of ``path``; ``#`` lines are comments unless ``skip_comments=False``.

    XSS files keep ``#`` lines (``#`` starts no XSS comment, and some vectors begin with it).
    """
    assert CORPORA.is_dir(), f"corpus folder {CORPORA} is missing: it ships with the repository"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines
            if line.strip() and not (skip_comments and line.startswith("#"))]


def split(lines: list[str]) -> tuple[list[str], list[str]]:
    """``(development, held_out)``: every fifth block of about 1 % of the file is held out."""
    block = max(1, len(lines) // 100)
    dev = [line for i, line in enumerate(lines) if (i // block) % 5 != 4]
    held = [line for i, line in enumerate(lines) if (i // block) % 5 == 4]
    return dev, held


def scored(lines: list[str]) -> tuple[list[str], list[str]]:
    """``(scored, ambiguous)``: lines of three characters or fewer are reported apart."""
    return ([line for line in lines if len(line.strip()) > AMBIGUOUS_MAX_LEN],
            [line for line in lines if len(line.strip()) <= AMBIGUOUS_MAX_LEN])


def attack_files() -> list[Path]:
    """Every attack file: PayloadsAllTheThings lists and libinjection's development data."""
    files = sorted((CORPORA / "attacks").glob("*.txt"))
    files += [p for p in sorted((CORPORA / "libinjection").glob("*.txt"))
              if p.name != LIBINJECTION_AMBIGUOUS]
    assert files, f"no attack files under {CORPORA}"
    return files


def prose_files() -> list[Path]:
    """Benign prose, documentation, changelogs, markdown and pasted code."""
    files = [p for p in sorted((CORPORA / "benign").glob("*.txt")) if p.name != SEARCH_QUERIES]
    assert files, f"no benign prose under {CORPORA / 'benign'}"
    return files


def is_xss_file(path: Path) -> bool:
    return path.name.startswith("xss")


def attack_lines(path: Path) -> list[str]:
    return corpus_lines(path, skip_comments=not is_xss_file(path))


def libinjection_verdict(path: Path) -> Callable[[str], bool]:
    """libinjection's verdict on a line of the attack file ``path`` (XSS or SQLi by the file),
    reading its own files URL-decoded (``+`` as a space), as its test harness does.

    The anchor of ``tests/test_detect.py`` and ``benchmarks/bench_validation.py``.
    """
    import libinjection  # the test and bench extras: imported only by whoever compares

    read = unquote_plus if path.parent.name == "libinjection" else str
    if is_xss_file(path):
        return lambda line: bool(libinjection.is_xss(read(line))["is_xss"])
    return lambda line: bool(libinjection.is_sql_injection(read(line))["is_sqli"])
