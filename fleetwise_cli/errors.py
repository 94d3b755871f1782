"""Exit codes, the one-line error, and Ctrl-C/SIGTERM remembered until work can stop cleanly."""

from __future__ import annotations

import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.markup import escape

from fleetwise_cli.common import err
from measure.run.datafile import one_line

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise (code 2: invalid input)."""
    err.print(f"[bold red]error:[/] {escape(one_line(message, 2000))}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


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
