"""The reactive autoscaler inside the engine simulation: the HPA's rule, a pool it never moves, scale-up with a
start-up time, scale-down after the stabilisation window with draining; and a day under it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from planner.llm.autoscale import AutoscalePolicy, Autoscaler, autoscale_policy
from planner.llm.day_autoscaled import autoscaled_day
from planner.llm.day_windows import DayError
from planner.llm.engine import EngineConfig, LlmRequests, simulate
from planner.traffic.scenario import parse_scenario
from tests.planner.llm.test_day import _day
from tests.planner.llm.test_llm_engine import synthetic_model

CFG = EngineConfig(max_num_seqs=64, kv_blocks=10_000)


def _replica(outstanding: int, waiting: int = 0, kv: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(outstanding=outstanding, waiting=[None] * waiting, kv_use=kv)


def test_the_hpa_rule_wants_ceil_of_ready_times_mean_over_target_and_holds_within_the_tolerance() -> None:
    p = AutoscalePolicy(metric="concurrency", target=4, max_replicas=10)
    a = Autoscaler(p, 2, 100.0)
    assert a.desired([_replica(9), _replica(9)]) == 5  # ceil(2 x 9 / 4)
    assert a.desired([_replica(4), _replica(4)]) == 2  # on target
    assert a.desired([_replica(4), _replica(5)]) == 3  # 4.5 / 4 = 1.125, outside 10%: ceil(2.25)
    assert a.desired([_replica(4), _replica(4), _replica(5)]) == 3  # 4.33 / 4 = 1.08, within 10%: held
    assert a.desired([_replica(40), _replica(40)]) == 10  # capped at max_replicas
    assert a.desired([_replica(0), _replica(0)]) == 1  # floored at min_replicas
    q = Autoscaler(AutoscalePolicy(metric="queue", target=2), 1, 100.0)
    assert q.desired([_replica(10, waiting=6)]) == 3  # waiting, not in flight
    k = Autoscaler(AutoscalePolicy(metric="kv", target=0.5), 2, 100.0)
    assert k.desired([_replica(1, kv=0.9), _replica(1, kv=0.7)]) == 4  # ceil(2 x 0.8 / 0.5)


def _ramp(seed: int = 3) -> LlmRequests:
    """Light, then five times the load for a minute, then nothing."""
    rng = np.random.default_rng(seed)
    t = np.sort(np.concatenate([rng.uniform(0, 60, 600), rng.uniform(60, 120, 3000)]))
    return LlmRequests(t, rng.integers(64, 256, t.size), rng.integers(8, 32, t.size))


def test_a_pool_the_autoscaler_may_not_move_is_the_plain_pool_bit_for_bit() -> None:
    reqs, model = _ramp(), synthetic_model()
    fixed = Autoscaler(
        AutoscalePolicy(metric="concurrency", target=1, min_replicas=2, max_replicas=2), 2, 200.0
    )
    a = simulate(reqs, model, CFG, 2, "least-outstanding", autoscaler=fixed)
    b = simulate(reqs, model, CFG, 2, "least-outstanding")
    assert np.array_equal(a.first_s, b.first_s) and np.array_equal(a.finish_s, b.finish_s)
    assert fixed.up_s == fixed.down_s == [] and fixed.device_s(0, 200) == pytest.approx(400)


def test_it_scales_up_with_the_start_up_time_and_down_only_after_the_stabilisation_window() -> None:
    reqs, model = _ramp(), synthetic_model()
    runs = {}
    for startup in (0.0, 30.0):
        p = AutoscalePolicy(metric="concurrency", target=2, startup_s=startup, cooldown_s=60, interval_s=5)
        scaler = Autoscaler(p, 1, 400.0)
        tr = simulate(reqs, model, CFG, 1, "least-outstanding", autoscaler=scaler)
        assert not np.isnan(tr.finish_s).any()  # drained replicas finish what they hold
        assert scaler.up_s and scaler.down_s and scaler.kept() == 1  # back to the floor after the burst
        for d in scaler.down_s:  # a scale-down waits out the window after the last scale-up before it
            assert d - max(u for u in scaler.up_s if u < d) >= p.cooldown_s
        # a new replica holds its device from the decision, start-up included
        assert {a for a, _ in scaler.spans[1:]} <= set(scaler.up_s)
        assert (
            sum(b == math.inf for _, b in scaler.spans) == 1
        )  # the others drained, and let go of their device
        runs[startup] = (tr, scaler)
    t = reqs.arrival_s
    burst = (t >= 60) & (t < 120)
    slow, fast = ((runs[s][0].first_s - t)[burst] for s in (30.0, 0.0))
    assert np.percentile(slow, 99) > np.percentile(fast, 99)  # waiting out the start-up costs TTFT
    assert runs[30.0][1].device_s(0, 400) > 0


def test_policies_and_windows_out_of_range_say_which_in_one_line() -> None:
    for text, why in (
        ("bogus:3", "METRIC:TARGET"),
        ("concurrency", "METRIC:TARGET"),
        ("kv:1.5", "share of the KV cache"),
        ("queue:-1", "above 0"),
        ("queue:x", "not a number"),
        ("kv:auto", "only a concurrency target"),
    ):
        with pytest.raises(ValueError, match=why) as exc:
            autoscale_policy(text)
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="interval_s") as exc:
        autoscale_policy("concurrency:4", interval_s=0)
    assert "\n" not in str(exc.value)
    assert autoscale_policy("queue:3")[0].target == 3 and autoscale_policy("concurrency:auto")[1]
    sc = parse_scenario(_day(2.0))
    p = AutoscalePolicy(metric="concurrency", target=1, cooldown_s=300)
    with pytest.raises(DayError, match="window"):
        autoscaled_day(sc, synthetic_model(), CFG, "least-outstanding", [1.0] * 24, p, 1, window_s=200)


def test_a_day_under_the_autoscaler_follows_demand_and_its_windows_agree_with_the_whole_day() -> None:
    """MULTS: eight night hours at 0.2, ten at the peak, six at 0.2. The pool grows for the peak and shrinks
    after it; where the pool settles within a window (a 60 s stabilisation window here), the 600 s windows'
    replica-hours come within 10% of the day simulated in one piece. (With a 300 s one and so noisy a metric the
    whole day's pool creeps up for hours and the windows fall 10% short: benchmarks/autoscale_window_check.py.)"""
    sc = parse_scenario(_day(2.0))
    rates = [2.0 * m for m in (sc.arrivals.hourly_multipliers)]  # type: ignore[union-attr]
    p = AutoscalePolicy(metric="concurrency", target=0.05, cooldown_s=60, startup_s=60)
    win = autoscaled_day(sc, synthetic_model(), CFG, "least-outstanding", rates, p, 1, 600)
    whole = autoscaled_day(sc, synthetic_model(), CFG, "least-outstanding", rates, p, 1, 3600)
    for d in (win, whole):
        night, peak = d.hours[3].mean_replicas, d.hours[12].mean_replicas
        assert peak > 1.5 * night
        assert d.hours[8].scale_ups >= 1  # the morning step
        assert d.requests_per_day == pytest.approx(sum(rates) * 3600)
    assert win.replica_hours_per_day == pytest.approx(whole.replica_hours_per_day, rel=0.1)
    priced = win.priced(spares=1, devices_per_replica=2, usd_per_device_hour=3.0)
    assert priced.device_hours_per_day == pytest.approx((win.replica_hours_per_day + 24) * 2)
    assert priced.usd_per_day == pytest.approx(priced.device_hours_per_day * 3.0)  # type: ignore[operator]
