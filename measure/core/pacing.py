"""Paced measurement: each iteration starts after an idle gap, as a replica's batches do at part load.

A batch served after an idle gap takes longer than the same batch back to back (caches go cold, a CPU's
frequency drops, a GPU's clocks ramp down in its power states): back-to-back iterations are a peak figure.
For every gap bin, the service time is sampled with the same stopping discipline as the back-to-back point
(relative CI of the mean, minimum count, time limit); the idle gap that really happened is recorded next to
the one asked for (a sleep overshoots). Torch-free: the step, timer, clocks and sleep are parameters.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from measure.core import stats
from measure.core.steady_state import ClockProbe, IterationTimer, SamplingConfig, Step

MAX_GAP_MS = 10_000.0
MAX_BINS = 16
SPIN_S = 0.0005  # the last half millisecond of a gap is spun, not slept: sleeps overshoot by about that much
BIN_MAX_SECONDS = 8.0  # a long gap bin stops here (its CI is reported with the verdict)
BIN_MIN_SECONDS = 0.5


def wait_until(
    target: float, clock: Callable[[], float], sleep: Callable[[float], None] = time.sleep
) -> None:
    """Return at `target` on `clock`: sleep to SPIN_S before it, then spin (a sleep alone overshoots)."""
    remaining = target - clock()
    if remaining > SPIN_S:
        sleep(remaining - SPIN_S)
    while clock() < target:
        pass


class PacingError(ValueError):
    """A --pacing value that cannot be used; the message says which part and why."""


@dataclass(frozen=True)
class PacingSpec:
    """Gaps to measure at: explicit (ms), or derived from loads (the mean idle period at each load)."""

    mode: Literal["gaps", "load"]
    values: tuple[float, ...]
    text: str

    def gaps_ms(self, service_ms: float) -> list[float]:
        """The non-zero gaps, increasing. Load rho: an M/G/1 server's idle periods are exponential with mean
        1/lambda = service / rho, so that mean is the gap a batch at that load most typically follows."""
        if self.mode == "gaps":
            gaps = [g for g in self.values if g > 0]
        else:
            gaps = [min(MAX_GAP_MS, service_ms / rho) for rho in self.values]
        return sorted({round(g, 6) for g in gaps})


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "": 1.0}


def parse_pacing(text: str) -> PacingSpec:
    """`gaps=0,1ms,5ms,30ms` (bare numbers are ms) or `load=0.3,0.5,0.7,0.85`."""
    kind, sep, rest = text.strip().partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in ("gaps", "load"):
        raise PacingError(f"--pacing {text!r}: use gaps=0,1ms,5ms or load=0.3,0.5,0.7")
    parts = [p.strip() for p in rest.split(",") if p.strip()]
    if not parts or len(parts) > MAX_BINS:
        raise PacingError(f"--pacing needs 1..{MAX_BINS} values, got {len(parts)}")
    values: list[float] = []
    for p in parts:
        if kind == "gaps":
            m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(us|ms|s)?", p)
            if m is None:
                raise PacingError(f"--pacing gap {p!r}: a number with us, ms or s")
            g = float(m.group(1)) * _UNITS[m.group(2) or ""]
            if not 0 <= g <= MAX_GAP_MS:
                raise PacingError(f"--pacing gap {p!r}: must be in 0..{MAX_GAP_MS:g} ms")
        else:
            try:
                g = float(p)
            except ValueError:
                raise PacingError(f"--pacing load {p!r}: not a number") from None
            if not (math.isfinite(g) and 0 < g < 1):
                raise PacingError(f"--pacing load {p!r}: a load must be in (0, 1)")
        values.append(g)
    if kind == "gaps" and not any(v > 0 for v in values):
        raise PacingError("--pacing gaps: give at least one gap above 0 (0 is the back-to-back point)")
    return PacingSpec(kind, tuple(values), f"{kind}={','.join(parts)}")  # type: ignore[arg-type]


@dataclass(frozen=True)
class PacedSamples:
    """One gap bin's samples and verdict."""

    gap_ms: float
    gaps_ms: list[float]
    latencies_ms: list[float]
    converged: bool
    stop_reason: str
    elapsed_s: float
    sm_clock_mhz: list[float]
    clock_error: str | None


def sample_paced(
    step: Step,
    timer: IterationTimer,
    gap_ms: float,
    config: SamplingConfig,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    probe: ClockProbe | None = None,
) -> PacedSamples:
    """Time single iterations, each after `gap_ms` of idle, until the mean is known to config.ci_target."""
    gap_s = gap_ms / 1000.0
    max_s = min(config.max_seconds, BIN_MAX_SECONDS)
    lat: list[float] = []
    gaps: list[float] = []
    mhz: list[float] = []
    clock_error: str | None = None
    t0 = clock()
    end_prev = clock()
    while True:
        wait_until(end_prev + gap_s, clock, sleep)
        if probe is not None and clock_error is None:
            try:
                mhz.append(probe().mhz)  # before the timed iteration: the clock the batch starts at
            except Exception as exc:  # a failing sensor loses the clock record, not the bin
                clock_error = f"clock probe failed: {exc}"
        gaps.append((clock() - end_prev) * 1000.0)
        lat.extend(timer(step, 1))
        end_prev = clock()
        x = np.asarray(lat)
        mean = float(x.mean())
        rel = stats.mean_ci_halfwidth(x) / mean if x.size > 1 and mean > 0 else math.inf
        verdict = stats.stopping_rule(
            n=x.size,
            rel_halfwidth=rel,
            elapsed_s=end_prev - t0,
            settled=True,  # warm-up was spent on the back-to-back point just before
            ci_target=config.ci_target,
            min_iterations=config.min_iterations,
            max_iterations=config.max_iterations,
            min_seconds=min(config.min_seconds, BIN_MIN_SECONDS),
            max_seconds=max_s,
        )
        if verdict.stop:
            return PacedSamples(
                gap_ms, gaps, lat, verdict.converged, verdict.reason, end_prev - t0, mhz, clock_error
            )
