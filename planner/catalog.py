"""A folder of run files as a catalogue: key facts per run, and the files that failed to load, with why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from measure.run import Run, RunFileError, load_run


class CatalogError(ValueError):
    """A runs folder that does not exist or is not a folder."""


@dataclass(frozen=True)
class RunSummary:
    """What a planner needs to pick a run without opening it."""

    path: Path
    run: Run
    status_counts: dict[str, int]

    @property
    def precisions(self) -> list[str]:
        return list(dict.fromkeys(p.precision for p in self.run.points))

    @property
    def ok_points(self) -> int:
        return self.status_counts.get("ok", 0)


@dataclass(frozen=True)
class Catalog:
    """Loaded runs (newest first) and rejected files."""

    runs: list[RunSummary]
    rejected: list[tuple[Path, str]]


def scan_runs(folder: str | Path) -> Catalog:
    """Load every `*.json` run in folder; a bad file is reported, never fatal for the others."""
    root = Path(folder)
    if not root.is_dir():
        raise CatalogError(f"runs folder {root} does not exist or is not a folder")
    runs, rejected = [], []
    for path in sorted(root.glob("*.json")):
        try:
            run = load_run(path)
        except RunFileError as exc:
            rejected.append((path, str(exc)))
            continue
        counts: Counter[str] = Counter(p.status for p in run.points)
        runs.append(RunSummary(path, run, dict(counts)))
    runs.sort(key=lambda s: s.run.created_at, reverse=True)
    return Catalog(runs, rejected)
