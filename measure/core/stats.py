"""Statistics for steady-state measurement, as pure functions from samples to verdicts.

Nothing here touches a clock, a device or a file: the engine feeds samples in and acts on the verdicts,
and tests drive the same functions with synthetic series whose answers are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from measure.run.quantiles import quantile_ci  # noqa: F401  (the run contract's rule; measure's callers use it here)

# One percentile definition everywhere: Hyndman & Fan type 7 (numpy "linear", also R's and Excel's default).
PERCENTILE_METHOD: Literal["linear"] = "linear"
PERCENTILE_METHOD_DOC = "Hyndman-Fan type 7 (linear interpolation between order statistics; numpy 'linear')"

CONFIDENCE = 0.95

# MSER-5 (White 1997): batch the series into means of 5, pick the truncation that minimises the
# standard error of the remaining mean; a truncation in the second half means "not yet steady".
MSER_BATCH = 5
MSER_MAX_TRUNCATION_FRACTION = 0.5

# The CI of the mean uses the larger of the i.i.d. t-interval and a batch-means t-interval, because
# per-iteration latencies are autocorrelated (clock ramps, allocator and cache effects).
BATCH_MEANS_BATCHES = 20
BATCH_MEANS_MIN_SAMPLES = 100

# Drift: Mann-Kendall trend test on the batch means of the steady window, flagged only when the trend is
# both significant and practically large (with thousands of samples any tiny trend is significant).
DRIFT_ALPHA = 0.01
DRIFT_MIN_RELATIVE_CHANGE = 0.05


def as_array(samples: ArrayLike) -> NDArray[np.float64]:
    """A 1-D float64 array of the samples, rejecting NaN and infinities."""
    arr = np.asarray(samples, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError("samples contain NaN or infinite values")
    return arr


def percentile(samples: ArrayLike, q: float) -> float:
    """The q-th percentile (0..100) with the project's single percentile method."""
    arr = as_array(samples)
    if arr.size == 0:
        raise ValueError("percentile of an empty sample")
    return float(np.percentile(arr, q, method=PERCENTILE_METHOD))


def mser_truncation(samples: ArrayLike, batch: int = MSER_BATCH) -> int:
    """Number of leading raw samples MSER-m says to discard as warm-up (a multiple of `batch`).

    Searches truncation points in the first half of the batched series only; a minimum at the edge of that
    range means the series has not settled, which `steady_state` reports.
    """
    arr = as_array(samples)
    n_batches = arr.size // batch
    if n_batches < 4:
        return 0
    means = arr[: n_batches * batch].reshape(n_batches, batch).mean(axis=1)
    # Suffix sums give every tail's mean and sum of squares in O(n).
    rev = means[::-1]
    tail_n = np.arange(n_batches, 0, -1, dtype=np.float64)  # len(means[d:]) for d = 0..n-1
    tail_sum = np.cumsum(rev)[::-1]
    tail_sq = np.cumsum(rev * rev)[::-1]
    sse = tail_sq - tail_sum * tail_sum / tail_n
    mser = sse / (tail_n * tail_n)
    limit = max(1, int(n_batches * MSER_MAX_TRUNCATION_FRACTION))
    d = int(np.argmin(mser[:limit]))
    return d * batch


@dataclass(frozen=True)
class SteadyState:
    """Where the warm-up ends in a series, and whether the rest looks settled."""

    warmup: int
    settled: bool
    reason: str


def steady_state(samples: ArrayLike, batch: int = MSER_BATCH) -> SteadyState:
    """MSER-based warm-up verdict: the truncation point and whether it is inside the allowed range."""
    arr = as_array(samples)
    d = mser_truncation(arr, batch)
    n_batches = arr.size // batch
    limit_batches = max(1, int(n_batches * MSER_MAX_TRUNCATION_FRACTION))
    if n_batches >= 4 and d // batch >= limit_batches - 1:
        return SteadyState(d, False, f"MSER-{batch} truncation at {d} of {arr.size} samples: not yet settled")
    return SteadyState(d, True, f"MSER-{batch} truncation at {d} of {arr.size} samples")


def _t_halfwidth(std: float, n: int, confidence: float) -> float:
    return float(sps.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n))


def mean_ci_halfwidth(samples: ArrayLike, confidence: float = CONFIDENCE) -> float:
    """Half-width of the CI of the mean: max of the i.i.d. t-interval and the batch-means t-interval."""
    arr = as_array(samples)
    n = arr.size
    if n < 2:
        return float("inf")
    iid = _t_halfwidth(float(arr.std(ddof=1)), n, confidence)
    if n < BATCH_MEANS_MIN_SAMPLES:
        return iid
    k = BATCH_MEANS_BATCHES
    size = n // k
    means = arr[: size * k].reshape(k, size).mean(axis=1)
    bm = _t_halfwidth(float(means.std(ddof=1)), k, confidence)
    return max(iid, bm)


@dataclass(frozen=True)
class StopVerdict:
    """Whether to stop sampling a point, and why."""

    stop: bool
    converged: bool
    reason: str


def stopping_rule(
    *,
    n: int,
    rel_halfwidth: float,
    elapsed_s: float,
    settled: bool,
    ci_target: float,
    min_iterations: int,
    max_iterations: int,
    min_seconds: float,
    max_seconds: float,
) -> StopVerdict:
    """Adaptive stopping: stop when settled and the CI target is met after the minimums, or at a limit."""
    if settled and n >= min_iterations and elapsed_s >= min_seconds and rel_halfwidth <= ci_target:
        return StopVerdict(True, True, f"95% CI half-width {rel_halfwidth:.2%} <= target {ci_target:.2%}")
    if elapsed_s >= max_seconds or n >= max_iterations:
        limit = f"{max_seconds:g} s" if elapsed_s >= max_seconds else f"{max_iterations} iterations"
        why = "not settled (warm-up not over)" if not settled else f"CI half-width {rel_halfwidth:.2%}"
        return StopVerdict(True, False, f"hit the limit of {limit}; {why} vs target {ci_target:.2%}")
    return StopVerdict(False, False, "continue")


@dataclass(frozen=True)
class DriftVerdict:
    """A trend test on the steady window: detected only if significant and practically large."""

    detected: bool
    p_value: float
    relative_change: float
    reason: str


def drift(samples: ArrayLike, batches: int = BATCH_MEANS_BATCHES) -> DriftVerdict:
    """Mann-Kendall test on batch means plus the OLS-fitted relative change across the window."""
    arr = as_array(samples)
    if arr.size < batches * 2:
        return DriftVerdict(False, 1.0, 0.0, f"too few samples ({arr.size}) for a trend test")
    size = arr.size // batches
    means = arr[: size * batches].reshape(batches, size).mean(axis=1)
    x = np.arange(batches, dtype=np.float64)
    tau = sps.kendalltau(x, means)
    p = float(tau.pvalue) if np.isfinite(tau.pvalue) else 1.0
    slope = float(np.polyfit(x, means, 1)[0])
    level = float(means.mean())
    rel = slope * (batches - 1) / level if level > 0 else 0.0
    detected = p < DRIFT_ALPHA and abs(rel) >= DRIFT_MIN_RELATIVE_CHANGE
    reason = f"Mann-Kendall p={p:.3g}, fitted change across window {rel:+.1%}"
    return DriftVerdict(detected, p, rel, reason)


# Clocks: a point is flagged when its clock moved by more than this across the steady window.
CLOCK_CHANGE_TOLERANCE = 0.05


@dataclass(frozen=True)
class ClockVerdict:
    """Clock behaviour across a steady window, from readings taken between sampling chunks."""

    readings: int
    min_mhz: float
    max_mhz: float
    reasons_seen: tuple[str, ...]
    changed: bool
    throttled: bool


def clock_stability(
    readings: list[tuple[int, float, tuple[str, ...]]], steady_start: int, slowdown_reasons: frozenset[str]
) -> ClockVerdict | None:
    """Verdict over the readings that describe the steady window (from the last one at or before its start).

    `readings` are (samples taken when read, MHz, active reasons) in time order; None when none apply.
    """
    if not readings:
        return None
    first = max((i for i, r in enumerate(readings) if r[0] <= steady_start), default=0)
    window = readings[first:]
    mhz = [r[1] for r in window]
    seen = tuple(sorted({reason for r in window for reason in r[2]}))
    lo, hi = min(mhz), max(mhz)
    changed = hi > 0 and (hi - lo) / hi > CLOCK_CHANGE_TOLERANCE
    return ClockVerdict(len(window), lo, hi, seen, changed, any(r in slowdown_reasons for r in seen))


def thin(samples: ArrayLike, cap: int) -> tuple[list[float], int]:
    """At most `cap` samples kept by a fixed stride (preserving time coverage), and the stride used."""
    arr = as_array(samples)
    if arr.size <= cap:
        return arr.tolist(), 1
    stride = int(np.ceil(arr.size / cap))
    return arr[::stride].tolist(), stride


# Soak: the first minutes (boost clocks, cold device) against the rest, per window. Flagged when a rank test
# says they differ and the difference is large enough to change a capacity plan.
SOAK_ALPHA = 0.01
SOAK_MIN_RELATIVE_CHANGE = 0.02


@dataclass(frozen=True)
class EarlyVsRest:
    """Medians of the early and later windows, their relative change, and the rank test's verdict."""

    early_median: float
    rest_median: float
    relative_change: float
    p_value: float | None
    significant: bool


def early_vs_rest(
    early: ArrayLike,
    rest: ArrayLike,
    alpha: float = SOAK_ALPHA,
    min_relative_change: float = SOAK_MIN_RELATIVE_CHANGE,
) -> EarlyVsRest:
    """Two-sided Mann-Whitney U on per-window values; significant only if also >= min_relative_change."""
    a, b = as_array(early), as_array(rest)
    if a.size == 0 or b.size == 0:
        raise ValueError("need at least one window on each side")
    ma, mb = float(np.median(a)), float(np.median(b))
    rel = (mb - ma) / ma if ma != 0 else 0.0
    if a.size < 2 or b.size < 2:
        return EarlyVsRest(ma, mb, rel, None, False)
    p = float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return EarlyVsRest(ma, mb, rel, p, p < alpha and abs(rel) >= min_relative_change)
