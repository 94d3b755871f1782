"""`fleetwise runs` and `fleetwise show`: the runs in a folder and one run in detail."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import err, out, write_json
from fleetwise_cli.errors import fail
from fleetwise_cli.render.run import print_pacing, soak_table, summary_table
from measure.run import (
    RunFileError,
    load_run,
)
from planner.evidence.catalog import Catalog, CatalogError, scan_runs


def runs_cmd(
    folder: Path = typer.Argument(Path("data/runs"), help="folder holding run files"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout instead of a table"),
) -> None:
    """List the runs in a folder with their key facts; files that fail to load are named with the reason."""
    try:
        catalog = scan_runs(folder)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    if as_json:
        write_json(catalog_json(catalog))
        return
    table = Table(title=escape(f"runs in {folder}"))
    for col in (
        "id",
        "workload",
        "device",
        "created (UTC)",
        "precisions",
        "points ok/total",
        "complete",
        "file",
    ):
        table.add_column(col)
    for s in catalog.runs:
        r = s.run
        table.add_row(
            r.short_id(),
            escape(r.workload.name),
            escape(f"{r.stack.device_kind}: {r.stack.device_name}"),
            r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            ",".join(s.precisions),
            f"{s.ok_points}/{len(r.points)}",
            "yes" if r.sweep.complete else "NO (resume it)",
            escape(s.path.name),
        )
    out.print(table)
    for path, why in catalog.rejected:
        err.print(f"[yellow]skipped[/] {escape(path.name)}: {escape(why)}", highlight=False, soft_wrap=True)


def catalog_json(catalog: Catalog) -> dict[str, Any]:
    """The key facts of every run and the rejected files, for scripts."""
    runs = [
        {
            "id": s.run.id,
            "path": str(s.path),
            "workload": s.run.workload.name,
            "unit": s.run.workload.unit,
            "device_kind": s.run.stack.device_kind,
            "device_name": s.run.stack.device_name,
            "created_at": s.run.created_at.isoformat(),
            "precisions": s.precisions,
            "status_counts": s.status_counts,
            "complete": s.run.sweep.complete,
        }
        for s in catalog.runs
    ]
    return {"runs": runs, "rejected": [{"path": str(p), "reason": why} for p, why in catalog.rejected]}


def show_cmd(path: Path = typer.Argument(..., help="a run file")) -> None:
    """Print a run's context line and its summary table (the table `measure` prints at the end)."""
    try:
        run = load_run(path)
    except RunFileError as exc:
        raise fail(str(exc)) from None
    st = run.stack
    out.print(
        escape(
            f"run {run.short_id()}  created {run.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC  "
            f"{'complete' if run.sweep.complete else 'INCOMPLETE'}\n"
            f"stack: {st.device_kind} {st.device_name}; torch {st.torch_version} ({st.torch_build}), "
            f"{st.torch_num_threads} threads, {st.compile_mode}\n"
            f"method: {run.methodology.timer}, scope {run.methodology.iteration_scope}, "
            f"CI target {run.methodology.stopping.ci_target_relative:.0%}, "
            f"{run.methodology.stopping.min_seconds:g}-{run.methodology.stopping.max_seconds:g} s per point"
        ),
        highlight=False,
        soft_wrap=True,
    )
    if run.is_llm:
        from fleetwise_cli.render.run import print_counter_checks, print_llm

        print_llm(run)
        print_counter_checks(run)
        return
    out.print(summary_table(run))
    print_pacing(run)
    if run.soak is not None:
        out.print(soak_table(run))
