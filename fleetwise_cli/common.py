"""Consoles, exit codes and the one-line error shared by every command."""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from measure.run.datafile import one_line

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


# Set by Ctrl-C and SIGTERM and checked before each measured point or level: an interrupt that lands while a
# library's import swallows exceptions with a bare `except:` (torch's start-up takes seconds) is not lost.
INTERRUPTED = threading.Event()


def on_interrupt_signal(signum: int, frame: object) -> None:
    """The handler for SIGINT and SIGTERM: remember, then raise KeyboardInterrupt as Ctrl-C does."""
    INTERRUPTED.set()
    raise KeyboardInterrupt(f"signal {signum}")


def remember_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt as always and is also remembered (see raise_if_interrupted)."""
    signal.signal(signal.SIGINT, on_interrupt_signal)


def raise_if_interrupted() -> None:
    """KeyboardInterrupt again if an interrupt came earlier and was swallowed on its way."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt("interrupted earlier")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (kill, a service stop) raises KeyboardInterrupt as Ctrl-C does, so the work
    finished so far is saved the same way."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, on_interrupt_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def save_or_fallback(save: Callable[[Path], Path], out_dir: Path, what: str) -> Path:
    """Save into out_dir; when that fails after the work (a full disk, a folder gone), save into the temp
    folder and say where (typer.Exit, code 2): minutes of measuring are never thrown away."""
    try:
        return save(out_dir)
    except (OSError, ValueError) as exc:  # ValueError: the loader refused what was written (never kept)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(str(exc), 300)
    try:
        kept = save(Path(tempfile.gettempdir()))
    except (OSError, ValueError):
        raise fail(f"cannot write the {what} to {out_dir} ({why}) nor to {tempfile.gettempdir()}") from None
    raise fail(f"cannot write the {what} to {out_dir} ({why}); saved it as {kept} instead")


def _finite(node: Any) -> Any:
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    return node


def write_json(data: Any, indent: int = 1) -> None:
    """`--json` output that every JSON parser reads: a figure that could not be computed (NaN, infinity) is
    null, never the `NaN` or `Infinity` that Python's json writes by default."""
    sys.stdout.write(json.dumps(_finite(data), indent=indent, allow_nan=False) + "\n")
