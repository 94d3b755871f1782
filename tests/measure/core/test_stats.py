"""Statistics on synthetic series whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from measure.core import stats


def warm_then_steady(n_warm: int, n_steady: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    warm = 3.0 + 2.0 * np.exp(-np.arange(n_warm) / (n_warm / 4)) + 0.05 * rng.standard_normal(n_warm)
    steady = 1.0 + 0.05 * rng.standard_normal(n_steady)
    return np.concatenate([warm, steady])


@pytest.mark.parametrize("n_warm", [50, 200, 600])
def test_mser_finds_a_known_warmup(n_warm: int) -> None:
    series = warm_then_steady(n_warm, 2000)
    cut = stats.mser_truncation(series)
    # all of the warm-up goes; MSER may overshoot a little into the steady part, never by much
    assert n_warm <= cut <= n_warm + 0.05 * series.size


def test_mser_keeps_almost_everything_when_there_is_no_warmup() -> None:
    rng = np.random.default_rng(3)
    series = 1.0 + 0.05 * rng.standard_normal(2000)
    assert stats.mser_truncation(series) < 0.05 * series.size
    assert stats.steady_state(series).settled


def test_a_series_still_ramping_is_not_settled() -> None:
    ramp = np.linspace(10, 1, 500) + 0.01 * np.random.default_rng(0).standard_normal(500)
    verdict = stats.steady_state(ramp)
    assert not verdict.settled
    assert "not yet settled" in verdict.reason


def test_percentile_uses_the_one_documented_method() -> None:
    data = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert stats.percentile(data, 90) == pytest.approx(np.percentile(data, 90, method="linear"))
    assert stats.percentile(data, 50) == 3.0
    with pytest.raises(ValueError, match="NaN"):
        stats.percentile([1.0, float("nan")], 50)
    with pytest.raises(ValueError, match="empty"):
        stats.percentile([], 50)


def test_mean_ci_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    reps = 400
    for _ in range(reps):
        x = rng.lognormal(0.0, 0.3, 300)
        hw = stats.mean_ci_halfwidth(x)
        hits += abs(x.mean() - np.exp(0.3**2 / 2)) <= hw
    # binomial sd at 95% with 400 reps is 1.1%; the conservative max() may over-cover a little
    assert 0.92 <= hits / reps <= 0.995


def test_batch_means_widen_the_ci_for_autocorrelated_samples() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    ar = np.empty(n)
    ar[0] = 0
    for i in range(1, n):
        ar[i] = 0.95 * ar[i - 1] + rng.standard_normal()
    x = 10 + ar
    iid = stats._t_halfwidth(float(x.std(ddof=1)), n, 0.95)
    assert stats.mean_ci_halfwidth(x) > 3 * iid


def test_p99_ci_covers_the_true_p99_and_is_unbounded_above_with_few_samples() -> None:
    rng = np.random.default_rng(2)
    true_p99 = -np.log(0.01)  # exponential(1)
    hits = 0
    reps = 300
    for _ in range(reps):
        lo, hi = stats.quantile_ci(rng.exponential(1.0, 1000), 0.99)
        assert lo is not None and hi is not None
        hits += lo <= true_p99 <= hi
    assert hits / reps >= 0.93
    lo, hi = stats.quantile_ci(rng.exponential(1.0, 40), 0.99)
    assert hi is None  # 40 samples cannot bound a p99 from above
    assert lo is not None
    assert stats.quantile_ci(rng.exponential(1.0, 367), 0.99)[1] is None
    assert stats.quantile_ci(rng.exponential(1.0, 368), 0.99)[1] is not None


def test_stopping_rule_stops_when_converged_after_the_minimums() -> None:
    kw = dict(ci_target=0.02, min_iterations=30, max_iterations=10_000, min_seconds=0.5, max_seconds=10)
    assert stats.stopping_rule(n=100, rel_halfwidth=0.01, elapsed_s=1, settled=True, **kw).converged
    assert not stats.stopping_rule(n=100, rel_halfwidth=0.01, elapsed_s=0.1, settled=True, **kw).stop
    assert not stats.stopping_rule(n=10, rel_halfwidth=0.01, elapsed_s=1, settled=True, **kw).stop
    assert not stats.stopping_rule(n=100, rel_halfwidth=0.05, elapsed_s=1, settled=True, **kw).stop
    assert not stats.stopping_rule(n=100, rel_halfwidth=0.01, elapsed_s=1, settled=False, **kw).stop


def test_stopping_rule_gives_up_at_a_limit_and_says_what_was_achieved() -> None:
    kw = dict(ci_target=0.02, min_iterations=30, max_iterations=10_000, min_seconds=0.5, max_seconds=10)
    v = stats.stopping_rule(n=500, rel_halfwidth=0.05, elapsed_s=10.5, settled=True, **kw)
    assert v.stop and not v.converged
    assert "5.00%" in v.reason and "10 s" in v.reason
    v = stats.stopping_rule(n=10_000, rel_halfwidth=0.05, elapsed_s=1, settled=False, **kw)
    assert v.stop and not v.converged and "not settled" in v.reason


def test_drift_flags_a_real_trend_but_not_noise_or_a_negligible_trend() -> None:
    rng = np.random.default_rng(9)
    n = 2000
    noise = 0.02 * rng.standard_normal(n)
    assert stats.drift(1 + np.linspace(0, 0.10, n) + noise).detected
    assert not stats.drift(1 + noise).detected
    tiny = stats.drift(1 + np.linspace(0, 0.01, n) + 0.001 * rng.standard_normal(n))
    assert tiny.p_value < 0.01 and not tiny.detected  # significant but practically negligible
    assert not stats.drift([1.0] * 10).detected


def test_thin_respects_the_cap_and_reports_the_stride() -> None:
    kept, stride = stats.thin(np.arange(1, 5001, dtype=float), 2000)
    assert len(kept) <= 2000 and stride == 3 and kept[:2] == [1.0, 4.0]
    kept, stride = stats.thin([1.0, 2.0], 2000)
    assert kept == [1.0, 2.0] and stride == 1


@given(
    st.lists(st.floats(min_value=0.001, max_value=1e4, allow_nan=False), min_size=100, max_size=600),
    st.sampled_from([0.5, 0.9, 0.99]),
)
def test_quantile_ci_brackets_the_sample_quantile_whenever_it_has_bounds(xs: list[float], q: float) -> None:
    # with very few samples the interpolated estimate can sit below X_(n), the only valid lower bound
    lo, hi = stats.quantile_ci(xs, q)
    assert lo is None or lo in xs
    assert hi is None or hi in xs
    est = stats.percentile(xs, 100 * q)
    if lo is not None:
        assert lo <= est + 1e-9
    if hi is not None:
        assert est <= hi + 1e-9
    if lo is not None and hi is not None:
        assert lo <= hi


@given(st.lists(st.floats(min_value=0.001, max_value=1e3, allow_nan=False), min_size=0, max_size=400))
def test_mser_truncation_is_a_multiple_of_five_within_the_first_half(xs: list[float]) -> None:
    cut = stats.mser_truncation(xs)
    assert cut % stats.MSER_BATCH == 0
    assert cut <= len(xs) // 2
