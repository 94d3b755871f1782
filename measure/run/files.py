"""Run files on disk: the bounded read, atomic writes checked by reading back, output paths checked first."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from measure.run.datafile import DataFileError, read_regular_file
from measure.run.format import dump_run, parse_run
from measure.run.models import Run
from measure.run.types import MAX_RUN_FILE_BYTES, RunFileError


def load_run(path: str | Path) -> Run:
    """Read and validate a run file (a regular file, at most MAX_RUN_FILE_BYTES)."""
    p = Path(path)
    try:
        raw = read_regular_file(p, MAX_RUN_FILE_BYTES, "run file")
    except DataFileError as exc:
        raise RunFileError(str(exc)) from None
    try:
        return parse_run(raw)
    except RunFileError as exc:
        raise RunFileError(f"{p}: {exc}") from None


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


def run_filename(run: Run) -> str:
    """A readable, unique file name: workload, device kind, UTC date and the short content id."""
    stamp = run.created_at.strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in run.workload.name)[:64]
    return f"{safe}-{run.stack.device_kind}-{stamp}-{run.short_id()}.json"


def save_run(run: Run, folder: str | Path) -> Path:
    """Set the content id and write the run atomically into folder; returns the path."""
    run = run.with_id()
    text = dump_run(run)
    return atomic_write_text(Path(folder) / run_filename(run), text, check=load_run)
