"""`fleetwise compare-plans`: saved plans side by side (replicas, devices, $ a month and over years, $/1M
tokens, tokens/J, SLO margins), and whether they answer the same question."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out, write_json
from fleetwise_cli.errors import fail
from planner.fleet.report import money
from planner.question.saved import SavedPlanError, compare_plans, load_plan


def _years(text: str) -> tuple[int, ...]:
    try:
        got = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise fail(f"--years {text!r}: give whole years, e.g. 1,3") from None
    return got or (1,)


def compare_plans_cmd(
    plans: list[Path] = typer.Argument(..., help="saved plan files (fleetwise size --save-plan DIR)"),
    years: str = typer.Option("1,3", "--years", help="total cost over these years (comma-separated)"),
    all_options: bool = typer.Option(False, "--all", help="every option of each plan, not only its answer"),
    as_json: bool = typer.Option(False, "--json", help="the comparison as JSON on stdout"),
) -> None:
    """Compare saved plans: each plan's answer in the same figures; says when their questions differ."""
    try:
        loaded = [load_plan(p) for p in plans]
        c = compare_plans(loaded, _years(years))
    except SavedPlanError as exc:
        raise fail(str(exc)) from None
    if as_json:
        write_json(c.model_dump(mode="json"))
        return
    t = Table(title="Plans side by side (each plan's answer)")
    cols = ["plan", "scenario", "pricing", "evidence", "device x replica", "replicas", "devices", "$/month"]
    cols += [f"{y} year{'s' if y > 1 else ''}" for y in c.plans[0].totals_usd]
    cols += ["$/1M tokens", "tokens/J", "worst SLO (obs/threshold)"]
    for col in cols:
        t.add_column(col, overflow="fold")
    for p in c.plans:
        r = p.row
        evidence = "-" if r is None else ("ASSUMED" if r.source == "assumed" else r.source)
        t.add_row(
            escape(p.name),
            escape(p.scenario),
            p.pricing,
            evidence,
            "-" if r is None else escape(f"{r.device} x {r.replica}"),
            str(r.replicas) if r and r.replicas else "-",
            str(r.devices) if r and r.devices else "-",
            money(r.monthly_usd if r else None),
            *(money(v) for v in p.totals_usd.values()),
            money(r.usd_per_1m_tokens if r else None),
            "-" if r is None or r.tokens_per_joule is None else f"{r.tokens_per_joule:.3g}",
            "-" if p.worst_margin is None else f"{p.worst_margin:.2f}",
        )
    out.print(t)
    if all_options:
        for p, saved in zip(c.plans, loaded, strict=True):
            o = Table(title=f"{escape(p.name)}: every option")
            for col in ("option", "evidence", "replicas", "devices", "meets SLO", "$/month", "$/1M tokens"):
                o.add_column(col, overflow="fold")
            for r in saved.rows:
                o.add_row(
                    escape(r.option),
                    "ASSUMED" if r.source == "assumed" else r.source,
                    str(r.replicas or "-"),
                    str(r.devices or "-"),
                    "yes" if r.meets_slo else "no",
                    money(r.monthly_usd),
                    money(r.usd_per_1m_tokens),
                )
            out.print(o)
    for n in c.notes:
        out.print(f"[yellow]note:[/] {escape(n)}", highlight=False, soft_wrap=True)
