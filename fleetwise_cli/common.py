"""Consoles, exit codes and the one-line error shared by every command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import typer
from rich.console import Console
from rich.markup import escape

from measure.datafile import one_line

out = Console()
if not out.is_terminal:  # pipes and CI default to 80 columns, too narrow for the summary table
    out = Console(width=200)
err = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise (code 2: invalid input)."""
    err.print(f"[bold red]error:[/] {escape(one_line(message, 2000))}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


class _Judged(Protocol):
    @property
    def load(self) -> float: ...
    @property
    def diagnosis(self) -> list[str]: ...


def print_findings(levels: Sequence[_Judged], verdict: str) -> None:
    """A validation's reasons per load level, then its verdict (batch and LLM validations alike)."""
    for lv in levels:
        for d in lv.diagnosis:
            out.print(f"[yellow]load {lv.load:g}:[/] {escape(d)}", highlight=False, soft_wrap=True)
    out.print(f"[bold]verdict[/]: {escape(verdict)}", highlight=False, soft_wrap=True)
