"""Steady-state sampling of one point: warm-up exclusion, adaptive stopping, drift check.

Device-agnostic and torch-free: the caller passes a step to execute, a timer that returns per-iteration
latencies, and a monotonic clock, so tests drive it with fake ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from measure.core import stats

Step = Callable[[], object]


@dataclass(frozen=True)
class ClockReading:
    """A clock probe's answer: current clock (MHz) and active clock-event reasons (names)."""

    mhz: float
    reasons: tuple[str, ...]


ClockProbe = Callable[[], ClockReading]


class ChunkObserver(Protocol):
    """Told about every chunk edge (device synchronised there), and asked whether sampling must go on.

    Energy metering uses it: counters are read at the edges, and a window too short for the counter's
    update step extends the sampling beyond the latency stopping rule.
    """

    def mark(self, n: int) -> None: ...

    def needs_more(self, steady_from: int) -> str | None: ...


class IterationTimer(Protocol):
    """Times `n` back-to-back iterations of a step and returns each one's latency in milliseconds."""

    def __call__(self, step: Step, n: int) -> list[float]: ...


@dataclass(frozen=True)
class SamplingConfig:
    """Limits of the adaptive sampling loop for one point."""

    ci_target: float = 0.02
    min_iterations: int = 30
    max_iterations: int = 1_000_000
    min_seconds: float = 1.0  # must outlast the longest plateau-like warm-up (clock ramps, caches)
    max_seconds: float = 10.0
    min_warmup: int = 3
    check_interval_s: float = 0.1  # how much sampling happens between two stopping-rule checks
    extend_max_seconds: float = 30.0  # an observer (energy window) may keep sampling up to this long

    def __post_init__(self) -> None:
        if not 0 < self.ci_target < 1:
            raise ValueError(f"ci_target must be in (0, 1), got {self.ci_target}")
        if self.max_seconds <= 0 or self.min_seconds < 0 or self.min_seconds > self.max_seconds:
            raise ValueError("need 0 <= min_seconds <= max_seconds and max_seconds > 0")
        if self.min_iterations < 2 or self.max_iterations < self.min_iterations:
            raise ValueError("need 2 <= min_iterations <= max_iterations")
        if self.min_warmup < 1:
            raise ValueError("min_warmup must be >= 1: the first call is never timed as steady state")

    def chunk(self, per_iter_ms: float, room: int = 10_000) -> int:
        """Iterations to time before the next check: about check_interval_s worth, 1..min(10000, room)."""
        return max(1, min(int(self.check_interval_s * 1000.0 / max(per_iter_ms, 1e-6)), 10_000, room))


@dataclass
class Sampled:
    """Everything one point's sampling produced, before it becomes a run `Point`."""

    first_iteration_ms: float
    warmup_ms: list[float]
    steady_ms: list[float]
    converged: bool
    stop_reason: str
    elapsed_s: float
    rel_halfwidth: float
    drift: stats.DriftVerdict
    detected_warmup: int = field(default=0)
    # (number of samples taken when read, reading); read between chunks, never inside a timed iteration
    clock_readings: list[tuple[int, ClockReading]] = field(default_factory=list)
    clock_error: str | None = None
    fixed_warmup: int = 0
    extended_for: str | None = None  # why sampling went on after the latency stopping rule was met

    def after_fixed_warmup(self) -> list[float]:
        """Every sample after the fixed warm-up, in order: index n here is what observers were told."""
        return [*self.warmup_ms[self.fixed_warmup :], *self.steady_ms]


def sample_point(
    step: Step,
    timer: IterationTimer,
    config: SamplingConfig,
    clock: Callable[[], float] = time.perf_counter,
    probe: ClockProbe | None = None,
    observer: ChunkObserver | None = None,
) -> Sampled:
    """Run `step` until the steady-state mean latency is known to `config.ci_target`, or a limit is hit."""
    readings: list[tuple[int, ClockReading]] = []
    probe_error: list[str] = []

    def read_clock(n: int) -> None:
        if probe is None or probe_error:
            return
        try:
            readings.append((n, probe()))
        except Exception as exc:  # a sensor failing mid-point loses the clock check, not the point
            probe_error.append(f"clock probe failed after {len(readings)} readings: {exc}")

    first = timer(step, 1)[0]
    # The time budget starts after the first call: compilation and graph capture are excluded from it too.
    t0 = clock()
    fixed_warmup = timer(step, config.min_warmup - 1) if config.min_warmup > 1 else []
    per_iter_ms = float(np.median([first, *fixed_warmup])) if fixed_warmup else first
    samples: list[float] = []
    extended_for: str | None = None
    read_clock(0)
    if observer is not None:
        observer.mark(0)
    while True:
        got = timer(step, config.chunk(per_iter_ms, config.max_iterations - len(samples)))
        samples.extend(got)
        read_clock(len(samples))
        if observer is not None:
            observer.mark(len(samples))
        per_iter_ms = float(np.median(got))
        ss = stats.steady_state(samples)
        steady = np.asarray(samples[ss.warmup :])
        mean = float(steady.mean())
        rel = stats.mean_ci_halfwidth(steady) / mean if mean > 0 else float("inf")
        elapsed = clock() - t0
        verdict = stats.stopping_rule(
            n=steady.size,
            rel_halfwidth=rel,
            elapsed_s=elapsed,
            settled=ss.settled,
            ci_target=config.ci_target,
            min_iterations=config.min_iterations,
            max_iterations=config.max_iterations,
            min_seconds=config.min_seconds,
            max_seconds=config.max_seconds,
        )
        if verdict.stop:
            can_extend = len(samples) < config.max_iterations and elapsed < config.extend_max_seconds
            more = observer.needs_more(ss.warmup) if observer is not None and can_extend else None
            if more is None:
                break
            extended_for = extended_for or more
    steady_list = samples[ss.warmup :]
    return Sampled(
        first_iteration_ms=first,
        warmup_ms=[*fixed_warmup, *samples[: ss.warmup]],
        steady_ms=steady_list,
        converged=verdict.converged,
        stop_reason=verdict.reason,
        elapsed_s=clock() - t0,
        rel_halfwidth=rel,
        drift=stats.drift(steady_list),
        detected_warmup=ss.warmup,
        clock_readings=readings,
        clock_error=probe_error[0] if probe_error else None,
        fixed_warmup=len(fixed_warmup),
        extended_for=extended_for,
    )


def perf_counter_timer(
    synchronize: Callable[[], None] = lambda: None,
    before_each: Callable[[], None] | None = None,
    clock_ns: Callable[[], int] = time.perf_counter_ns,
) -> IterationTimer:
    """Host-clock timer: synchronize, read the monotonic clock, run, synchronize, read again."""

    def time_n(step: Step, n: int) -> list[float]:
        out = []
        for _ in range(n):
            if before_each is not None:
                before_each()
            synchronize()
            start = clock_ns()
            step()
            synchronize()
            out.append((clock_ns() - start) / 1e6)
        return out

    return time_n


class TimingEvent(Protocol):
    """The subset of `torch.cuda.Event` used for timing."""

    def record(self) -> None: ...

    def elapsed_time(self, end: TimingEvent) -> float: ...


def event_timer(
    make_event: Callable[[], TimingEvent],
    synchronize: Callable[[], None],
    before_each: Callable[[], None] | None = None,
) -> IterationTimer:
    """Device-event timer: record start/end events per iteration, resolve them after the window.

    Synchronising only at the window edges keeps the host from stalling the device between iterations;
    work in `before_each` (an L2 flush) is enqueued before the start event, so it is not timed.
    """

    def time_n(step: Step, n: int) -> list[float]:
        starts = [make_event() for _ in range(n)]
        ends = [make_event() for _ in range(n)]
        synchronize()
        for i in range(n):
            if before_each is not None:
                before_each()
            starts[i].record()
            step()
            ends[i].record()
        synchronize()
        return [float(s.elapsed_time(e)) for s, e in zip(starts, ends, strict=True)]

    return time_n
