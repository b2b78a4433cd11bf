"""Real file-system faults for the spool tests, made with whatever this machine permits.

Root ignores permission bits, so "read-only" is made, in order of preference,
by a read-only bind mount of the directory onto itself (needs ``mount``),
by the immutable attribute (``chattr +i``, ext4/xfs/btrfs), or, for a user
that is not root, by taking the write permission away. A full disk is a
small tmpfs where ``mount`` is permitted; elsewhere the child process gets an
``RLIMIT_FSIZE`` smaller than a segment, so every segment write fails with
EFBIG (the same "no room" to the spool). Nothing is skipped: where none of
the means works, the test fails and says why. Each helper returns the means
it used, so a test's output tells how it made the fault. ``FS_FAULTS_NO_MOUNT=1``
takes ``mount`` away, to try the other means on a machine that has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _run(*argv: str) -> bool:
    if shutil.which(argv[0]) is None:
        return False
    if argv[0] in ("mount", "umount") and os.environ.get("FS_FAULTS_NO_MOUNT"):
        return False
    return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0


def _probe_write(path: Path) -> bool:
    """Whether a file can be created in ``path`` right now."""
    probe = path / ".fault-probe"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return False
    probe.unlink()
    return True


def make_read_only(path: Path) -> str:
    """Make the directory ``path`` unwritable (for root too); returns the means used."""
    path = Path(path)
    if _run("mount", "--bind", str(path), str(path)):
        if _run("mount", "-o", "remount,ro,bind", str(path)) and not _probe_write(path):
            return "mount-ro"
        _run("umount", str(path))
    if _run("chattr", "+i", str(path)) and not _probe_write(path):
        return "chattr+i"
    _run("chattr", "-i", str(path))
    if os.geteuid() != 0:
        path.chmod(0o555)
        if not _probe_write(path):
            return "chmod"
        path.chmod(0o755)
    pytest.fail(f"cannot make {path} read-only here: no read-only bind mount, no chattr +i, "
                "and root ignores permission bits")


def make_writable(path: Path, means: str) -> None:
    """Undo :func:`make_read_only`."""
    if means == "mount-ro":
        _run("umount", str(path))
    elif means == "chattr+i":
        _run("chattr", "-i", str(path))
    elif means == "chmod":
        Path(path).chmod(0o755)
    assert _probe_write(Path(path)), f"{path} is still read-only after undoing {means}"


@contextmanager
def read_only(path: Path) -> Iterator[str]:
    means = make_read_only(path)
    try:
        yield means
    finally:
        make_writable(path, means)


@contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[str | None]:
    """A tmpfs of ``size`` mounted on ``path`` (yields "tmpfs"), or None where ``mount``
    is not permitted: the caller then limits the child's file size (RLIMIT_FSIZE)."""
    path.mkdir(parents=True, exist_ok=True)
    if not _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        yield None
        return
    try:
        yield "tmpfs"
    finally:
        _run("umount", "-l", str(path))
