"""A folder of run files as a catalogue: key facts per run, the files that failed to load (with why), curves
for plotting, and validated uploads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from measure.run import (
    MAX_RUN_FILE_BYTES,
    Energy,
    PointTelemetry,
    PowerStats,
    Run,
    RunFileError,
    atomic_write_text,
    load_run,
    parse_run,
    run_filename,
)


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


# ------------------------------------------------------------------------------------------------ views

CURVE_COLUMNS = (
    "precision",
    "batch",
    "seq_len",
    "phase",
    "context_tokens",
    "chunk_tokens",
    "cached_tokens",
    "source",
    "status",
    "reason",
    "items_per_s",
    "units_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p99_ci_high_ms",
    "power_w",
    "energy_j_per_item",
    "flags",
)


def run_curves(run: Run) -> pd.DataFrame:
    """One row per point: throughput, latency percentiles, power and energy (None where not measured)."""
    rows = []
    for p in run.points:
        lat = p.latency_ms
        tel = p.telemetry
        power = energy = None
        if isinstance(tel, PointTelemetry):
            power = tel.power_w.mean_w if isinstance(tel.power_w, PowerStats) else None
            energy = tel.energy.energy_per_item_j if isinstance(tel.energy, Energy) else None
        rows.append(
            {
                "precision": p.precision,
                "batch": p.batch_size,
                "seq_len": p.seq_len,
                "phase": p.phase,
                "context_tokens": p.context_tokens,
                "chunk_tokens": p.chunk_tokens,
                "cached_tokens": p.cached_tokens,
                "source": p.source or "in-process",
                "status": p.status,
                "reason": p.reason or "",
                "items_per_s": p.throughput_items_per_s,
                "units_per_s": p.throughput_units_per_s,
                "p50_ms": lat.median if lat else None,
                "p90_ms": lat.p90 if lat else None,
                "p99_ms": lat.p99 if lat else None,
                "p99_ci_high_ms": lat.p99_ci95_high if lat else None,
                "power_w": power,
                "energy_j_per_item": energy,
                "flags": ", ".join(p.flags),
            }
        )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def point_series(
    run: Run, precision: str, batch: int, seq_len: int | None
) -> tuple[list[float], list[float], int]:
    """Warm-up latencies, steady latencies and the steady stride of one point (for its time series)."""
    for p in run.points:
        if p.phase is None and p.key[:3] == (precision, batch, seq_len):
            return list(p.warmup_latencies_ms), list(p.raw_latencies_ms), p.raw_latencies_stride
    raise CatalogError(f"run {run.short_id()} has no point {precision} batch {batch} seq {seq_len}")


@dataclass(frozen=True)
class Accepted:
    """An uploaded run that passed validation: where it is stored and whether it was already there."""

    run: Run
    path: Path
    duplicate: bool


def accept_upload(data: bytes, folder: str | Path, existing: list[RunSummary]) -> Accepted:
    """Validate an uploaded run file (size, JSON, schema, content id) and store it atomically, verbatim.

    A run whose content id is already in the folder is recognised and not written again. Nothing is
    executed or unpickled: the upload is only ever parsed as JSON.
    """
    if len(data) > MAX_RUN_FILE_BYTES:
        raise RunFileError(f"the file is {len(data):,} bytes, over the {MAX_RUN_FILE_BYTES:,} byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RunFileError("not UTF-8 text: a run file is JSON") from None
    run = parse_run(text)
    for s in existing:
        if s.run.id == run.id:
            return Accepted(s.run, s.path, True)
    path = atomic_write_text(Path(folder) / run_filename(run), text)
    return Accepted(run, path, False)
