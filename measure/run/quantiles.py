"""The distribution-free confidence interval of a quantile, the rule behind every recorded percentile CI (a
run's `p99_ci95_low/high`, a validation's measured-percentile CIs): part of the run contract, so that the
planner reads and computes them by the same rule measure/ writes them with."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

CONFIDENCE = 0.95


def quantile_ci(
    samples: ArrayLike, q: float, confidence: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """Distribution-free CI of the q-quantile (0 < q < 1) from order statistics.

    The number of samples at or below the true quantile is Binomial(n, q); the bounds are the order
    statistics whose ranks cover it with at least `confidence`. A bound that needs a rank outside 1..n is
    None: with too few samples the data cannot bound the tail (e.g. a p99 upper bound needs n >= 368).
    """
    arr = np.sort(np.asarray(samples, dtype=np.float64).reshape(-1))
    if not np.all(np.isfinite(arr)):
        raise ValueError("samples contain NaN or infinite values")
    n = arr.size
    if n == 0:
        return None, None
    alpha = 1 - confidence
    k = np.arange(0, n + 1)
    cdf = sps.binom.cdf(k, n, q)
    # lower rank l (1-based): largest l with P(B <= l-1) <= alpha/2
    ok_low = np.nonzero(cdf <= alpha / 2)[0]
    low = float(arr[int(ok_low[-1])]) if ok_low.size else None  # rank l = index+1 -> arr[l-1] = arr[index]
    # upper rank u (1-based): smallest u with P(B >= u) <= alpha/2, i.e. cdf(u-1) >= 1-alpha/2
    ok_high = np.nonzero(cdf >= 1 - alpha / 2)[0]
    high = None
    if ok_high.size:
        u = int(ok_high[0]) + 1
        if u <= n:
            high = float(arr[u - 1])
    return low, high
