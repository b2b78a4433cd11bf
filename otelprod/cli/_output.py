"""Everything the ``otelprod`` command prints goes through the scrubber.

The command loads the secret sources a service loads (``SECRET_*``, the
secrets directory, ``OTELPROD_HEALTH_TOKEN``), so a value the service hides is
hidden here too, and replaces ``sys.stdout`` and ``sys.stderr`` for the
duration of the command with streams that scrub each line before writing it:
check lines, JSON dumps, dead letters, the libraries' own log lines (logging's
last-resort handler writes to ``sys.stderr``) and tracebacks alike.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import TextIO

from otelprod._scrub import scrubber


class ScrubbingStream(io.TextIOBase):
    """A text stream that writes whole lines, scrubbed, to ``target``.

    A partial line waits for its end (a secret split across two writes is
    still seen whole), or for ``flush()``.
    """

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self._target.write(scrubber.scrub_text(lines + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self._target.write(scrubber.scrub_text(pending))
        self._target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:  # for faulthandler and the like, which write below Python
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", None) or "utf-8"


def load_secrets() -> None:
    """The secrets a service would load, and the filter on the libraries' log lines."""
    from otelprod._scrub._logfilter import scrub_library_logs
    from otelprod.config_manager import load_secret_sources

    load_secret_sources()
    scrub_library_logs()


@contextlib.contextmanager
def scrubbed_output() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` scrubbed until the block ends."""
    saved = sys.stdout, sys.stderr
    wrapped = [ScrubbingStream(s) if s is not None else None for s in saved]
    sys.stdout, sys.stderr = wrapped  # type: ignore[assignment]
    try:
        yield
    finally:
        for stream in wrapped:
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.flush()
        sys.stdout, sys.stderr = saved


__all__ = ["ScrubbingStream", "load_secrets", "scrubbed_output"]
