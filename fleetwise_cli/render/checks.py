"""SLO checks and warnings, batch and LLM results alike."""

from __future__ import annotations

from rich.markup import escape

from fleetwise_cli.common import out
from planner.serving.simulation import SloCheck


def print_checks(slos: list[SloCheck], warnings: list[str]) -> None:
    """Each SLO met or missed with the observed value, then the warnings."""
    for c in slos:
        mark = "[green]met[/]" if c.met else "[red]MISSED[/]"
        obs = "-" if c.observed_ms is None else f"{c.observed_ms:.4g} ms"
        out.print(f"SLO {escape(c.slo)}: {obs} {mark}", highlight=False)
    for w in warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
