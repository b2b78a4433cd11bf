"""The README's code is true: fences balance, every Python block compiles, and runs.

Every ``python`` block is a complete program and runs in a fresh interpreter
(against a loopback OTLP receiver), unless the line just before its fence is
``<!-- excerpt -->``: then it must only compile.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, python_env, run_python
from tests.otlp_receiver import GRPC, OTLPReceiver

README = REPO / "README.md"
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")


def blocks() -> list[tuple[int, str, str, bool]]:
    """(line number, language, code, is an excerpt) of every fenced block."""
    lines = README.read_text(encoding="utf-8").splitlines()
    found = []
    opened: tuple[int, str, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if opened is None:
            if match:
                opened = (number, match["fence"], match["info"].strip())
                body = []
        elif match and match["fence"].startswith(opened[1]) and not match["info"].strip():
            start, _, language = opened
            excerpt = start >= 2 and lines[start - 2].strip() == "<!-- excerpt -->"
            found.append((start, language, "\n".join(body) + "\n", excerpt))
            opened = None
        else:
            body.append(line)
    assert opened is None, f"README.md:{opened[0]}: a ``` fence is never closed"
    return found


BLOCKS = blocks()
PYTHON = [(n, code, excerpt) for n, language, code, excerpt in BLOCKS if language == "python"]


def test_the_readme_has_its_blocks_and_the_fences_balance() -> None:
    assert len(PYTHON) >= 2, "the README's Python examples are missing"
    # blocks() asserted that every fence closes; the first block is the two commands
    assert BLOCKS[0][1] == "bash" and BLOCKS[0][0] <= 6


@pytest.mark.parametrize("line,code,excerpt", PYTHON, ids=[f"line{n}" for n, _, _ in PYTHON])
def test_every_python_block_compiles_and_the_complete_ones_run(
        line: int, code: str, excerpt: bool) -> None:
    compile(code, f"README.md:{line}", "exec")
    if excerpt:
        return
    with OTLPReceiver(GRPC) as receiver:
        env = python_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                         OTEL_EXPORTER_OTLP_PROTOCOL=GRPC)
        result = run_python(code, env=env, timeout=120)
    assert result.returncode == 0, f"README.md:{line}:\n{code}\n--- stderr:\n{result.stderr}"
