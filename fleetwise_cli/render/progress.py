"""A rich progress bar with ETA for measurement sweeps (drawn on stderr so stdout stays parseable)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fleetwise_cli.errors import raise_if_interrupted
from measure.core.parsing import Progress as SweepProgress
from measure.run import Point


class _Bar:
    """A rich progress bar on a console, started and stopped as a context manager."""

    def __init__(self, console: Console, *columns: ProgressColumn | str, total: float | None = None) -> None:
        self._bar = Progress(
            *columns,
            BarColumn(),
            *self.count_columns(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._bar.add_task("", total=total)

    def count_columns(self) -> list[ProgressColumn]:
        return [MofNCompleteColumn()]

    def __enter__(self) -> Self:
        self._bar.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()


class RichProgress(_Bar, SweepProgress):
    """Sweep callbacks drawn as one bar: points done of total, elapsed, ETA, and the current point."""

    def __init__(self, console: Console) -> None:
        super().__init__(console, TextColumn("{task.description}"))

    def start(self, total: int) -> None:
        self._bar.update(self._task, total=total)

    def point_started(self, precision: str, batch: int, seq_len: int | None) -> None:
        raise_if_interrupted()  # a Ctrl-C swallowed during start-up stops the sweep here, before measuring
        seq = f" seq {seq_len}" if seq_len else ""
        self._bar.update(self._task, description=f"{precision} batch {batch}{seq}")

    def point_done(self, point: Point) -> None:
        self._bar.advance(self._task)


class SoakProgress(_Bar):
    """A time bar for a soak: seconds done of the total, elapsed and ETA."""

    def __init__(self, console: Console, total_s: float) -> None:
        super().__init__(console, TextColumn("soak"), total=total_s)

    def count_columns(self) -> list[ProgressColumn]:
        return [TextColumn("{task.completed:.0f}/{task.total:.0f} s")]

    def tick(self, elapsed_s: float) -> None:
        self._bar.update(self._task, completed=elapsed_s)
