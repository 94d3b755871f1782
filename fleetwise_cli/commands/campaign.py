"""`fleetwise campaign`: one `fleetwise measure` per node of a Ray cluster that has the device."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out
from fleetwise_cli.errors import fail
from measure.run import RunFileError, check_output_dir, parse_run, save_run


def campaign(
    ctx: typer.Context,
    device: str = typer.Option(..., help="cpu or cuda: the nodes that have it measure"),
    out_dir: Path = typer.Option(Path("data/runs"), "--out", help="folder the runs are collected into"),
) -> None:
    """Run the same measurement on every node of the Ray cluster (FLEETWISE_RAY_ADDRESS, else a local one)
    that has the device; the arguments after `--` are `fleetwise measure`'s (without --out)."""
    args = list(ctx.args)
    if device not in ("cpu", "cuda"):
        raise fail(f"--device must be cpu or cuda, got {device!r}")
    if "--out" in args:
        raise fail("give --out to campaign, not to the measure arguments: runs are collected there")
    if not args:
        raise fail(
            "give the measurement after `--`, e.g. fleetwise campaign --device cpu -- -w mlp --precision fp32"
        )
    try:
        check_output_dir(out_dir)
        from measure.cluster.campaign import run_campaign
        from planner.workers import ensure_ray

        results = run_campaign(
            ensure_ray(), device, [*args, "--device", device] if "--device" not in args else args
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    t = Table(title=f"campaign on {len(results)} node(s): fleetwise measure {escape(' '.join(args))}")
    for col in ("node", "host", "result"):
        t.add_column(col, overflow="fold")
    saved = 0
    for r in results:
        if r.run_text is None:
            what = f"skipped: {r.skipped}" if r.skipped else f"[red]failed[/]: {escape(r.error or '')}"
        else:
            try:
                path = save_run(
                    parse_run(r.run_text), out_dir
                )  # a node's answer is data, checked like an upload
                what, saved = f"[green]saved[/] {escape(path.name)}", saved + 1
            except (RunFileError, ValueError, OSError) as exc:
                what = f"[red]rejected[/]: {escape(str(exc)[:300])}"
        t.add_row(escape(f"{r.node_id[:12]} ({r.address})"), escape(r.hostname), what)
    out.print(t)
    if saved == 0:
        raise fail(f"no node produced a run for device {device}")
