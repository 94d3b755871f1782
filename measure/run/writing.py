"""Writing files that must never be half-written or written where they cannot go: atomic writes that an
evidence file's own reader checks before the rename, and output paths checked before any work starts."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write_text(path: str | Path, text: str, check: Callable[[Path], object] | None = None) -> Path:
    """Write text to path via a temp file in the same folder and a rename: never a half-written file.

    `check` (an evidence file's own loader) reads the temp file before the rename and may refuse it: what
    fleetwise writes it can always read back. The file gets the permissions the umask gives a new file (as
    any editor would), not mkstemp's 0600.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name[:200]}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


class OutputPathError(ValueError):
    """An output folder or file that cannot be written; checked before any work starts."""


def check_output_dir(folder: str | Path) -> Path:
    """Create folder if needed and prove a file can be created in it (a probe file, removed at once)."""
    p = Path(folder)
    if p.exists() and not p.is_dir():  # mkdir would say only "File exists"
        raise OutputPathError(f"output folder {p} is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        if not p.is_dir():
            raise OutputPathError(f"output folder {p} is not a folder")
        probe = p / f".fleetwise-write-probe-{secrets.token_hex(6)}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(f"output folder {p} is not writable: {exc.strerror or exc}") from None
    return p


def check_output_file(path: str | Path) -> Path:
    """An output file path whose folder is writable and which is not itself a folder."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"output {p} is a folder, not a file")
    check_output_dir(p.parent if str(p.parent) else Path("."))
    return p
