"""A rich progress bar with ETA for measurement sweeps (drawn on stderr so stdout stays parseable)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from measure.run import Point
from measure.sweep import Progress as SweepProgress


class RichProgress(SweepProgress):
    """Sweep callbacks drawn as one bar: points done of total, elapsed, ETA, and the current point."""

    def __init__(self, console: Console) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._bar.add_task("measuring", total=None)

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def start(self, total: int) -> None:
        self._bar.update(self._task, total=total)

    def point_started(self, precision: str, batch: int, seq_len: int | None) -> None:
        seq = f" seq {seq_len}" if seq_len else ""
        self._bar.update(self._task, description=f"{precision} batch {batch}{seq}")

    def point_done(self, point: Point) -> None:
        self._bar.advance(self._task)


class SoakProgress:
    """A time bar for a soak: seconds done of the total, elapsed and ETA."""

    def __init__(self, console: Console, total_s: float) -> None:
        self._bar = Progress(
            TextColumn("soak"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._bar.add_task("soak", total=total_s)

    def __enter__(self) -> SoakProgress:
        self._bar.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def tick(self, elapsed_s: float) -> None:
        self._bar.update(self._task, completed=elapsed_s)
