"""Consoles, exit codes and the one-line error shared by every command."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from measure.datafile import one_line

# C0 controls but tab and newline, DEL, C1 controls (CSI 0x9b among them) and the bidi overrides that reorder
# what a terminal shows: from a file's model or device name they could clear the screen, forge a line or
# hide a link. rich's markup escaping does not touch them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Text with every control character shown as its escape (`\\x1b`), never sent to the terminal."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


class SafeConsole(Console):
    """A rich console whose every string (print arguments, table cells, titles) is made terminal-safe before
    rich parses it; rich's own styling is added after, so colours still work."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(terminal_safe(text), **kwargs)


out = SafeConsole()
if not out.is_terminal:  # pipes and CI default to 80 columns, too narrow for the summary table
    out = SafeConsole(width=200)
err = SafeConsole(stderr=True)

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
