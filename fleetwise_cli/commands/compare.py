"""`fleetwise compare`: two runs side by side, and whether they may be compared at all."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out, write_json
from fleetwise_cli.errors import fail
from measure.run import RunFileError, load_run
from planner.evidence.compare import compare_runs, p_value_text


def compare(
    run_a: Path = typer.Argument(..., help="run file A"),
    run_b: Path = typer.Argument(..., help="run file B"),
    as_json: bool = typer.Option(False, "--json", help="the comparison as JSON on stdout"),
) -> None:
    """Compare two runs: comparability verdict first, then per shared point the difference and its test."""
    try:
        a, b = load_run(run_a), load_run(run_b)
    except RunFileError as exc:
        raise fail(str(exc)) from None
    c = compare_runs(a, b)
    if as_json:
        write_json(c.model_dump(mode="json"))
        return
    if c.comparable:
        out.print(
            f"[green]comparable[/]: A {a.short_id()} and B {b.short_id()} share workload and methodology"
        )
    else:
        out.print(f"[bold red]not comparable[/]: A {a.short_id()} vs B {b.short_id()}")
        for d in c.differences:
            out.print(f"  {escape(d.field)}: A {escape(d.a)} | B {escape(d.b)}", highlight=False)
    for d in c.context:
        out.print(f"[dim]  context {escape(d.field)}: A {escape(d.a)} | B {escape(d.b)}[/]", highlight=False)
    if not c.points:
        out.print("no point was measured ok in both runs")
        return
    t = Table(title=f"shared points ({escape(c.test)}, alpha {c.alpha:g})", title_justify="left")
    for col in (
        "precision",
        "batch",
        "seq",
        escape(f"A {c.unit}/s"),
        escape(f"B {c.unit}/s"),
        "diff",
        "p50 A",
        "p50 B",
        "p",
        "verdict",
    ):
        t.add_column(col)
    for p in c.points:
        t.add_row(
            p.precision,
            str(p.batch_size),
            str(p.seq_len or "-"),
            f"{p.throughput_a:,.0f}",
            f"{p.throughput_b:,.0f}",
            f"{p.throughput_diff_pct:+.1f}%",
            f"{p.p50_ms_a:.4g}",
            f"{p.p50_ms_b:.4g}",
            p_value_text(p.p_value),
            p.verdict if p.significant or not c.comparable else f"[dim]{p.verdict}[/]",
        )
    out.print(t)
