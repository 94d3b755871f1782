"""Run files on disk: the bounded read, atomic writes checked by reading back, output paths checked first."""

from __future__ import annotations

from pathlib import Path

from measure.run.format import RUN_FILE
from measure.run.models import Run


def load_run(path: str | Path) -> Run:
    """Read and validate a run file (a regular file, at most MAX_RUN_FILE_BYTES)."""
    return RUN_FILE.read(path)


def save_run(run: Run, folder: str | Path) -> Path:
    """Set the content id and write the run atomically into folder, read back first; returns the path."""
    return RUN_FILE.save(run, folder)
