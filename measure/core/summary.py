"""The latency summary every measured point and bin carries (torch-free: engine measurements use it too)."""

from __future__ import annotations

import numpy as np

from measure.core import stats
from measure.run import LatencySummary


def latency_summary(steady: np.ndarray) -> LatencySummary:
    """Mean with its CI, percentiles with the p99 order-statistic CI, of steady-state latencies in ms."""
    mean = float(steady.mean())
    hw = stats.mean_ci_halfwidth(steady)
    lo, hi = stats.quantile_ci(steady, 0.99)
    return LatencySummary(
        n=int(steady.size),
        mean=mean,
        median=stats.percentile(steady, 50),
        p90=stats.percentile(steady, 90),
        p95=stats.percentile(steady, 95),
        p99=stats.percentile(steady, 99),
        min=float(steady.min()),
        max=float(steady.max()),
        std=float(steady.std(ddof=1)) if steady.size > 1 else 0.0,
        mean_ci95_halfwidth=hw if np.isfinite(hw) else None,
        mean_ci95_halfwidth_rel=hw / mean if np.isfinite(hw) else None,
        p99_ci95_low=lo,
        p99_ci95_high=hi,
    )
