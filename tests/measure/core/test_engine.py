"""The sampling loop with fake timers and clocks: warm-up exclusion, stopping, timer mechanics."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from measure.core.steady_state import SamplingConfig, event_timer, perf_counter_timer, sample_point


class ScriptedDevice:
    """A fake device: each iteration 'takes' the next latency of a script and advances a fake clock."""

    def __init__(self, latencies_ms: np.ndarray) -> None:
        self.latencies = latencies_ms
        self.i = 0
        self.now_s = 0.0

    def timer(self, step, n: int) -> list[float]:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(n):
            step()
            lat = float(self.latencies[min(self.i, len(self.latencies) - 1)])
            self.i += 1
            self.now_s += lat / 1000
            out.append(lat)
        return out

    def clock(self) -> float:
        return self.now_s


def test_sampling_excludes_a_known_warmup_and_converges() -> None:
    rng = np.random.default_rng(0)
    warm = 5.0 + 0.1 * rng.standard_normal(300)
    steady = 1.0 + 0.02 * rng.standard_normal(100_000)
    dev = ScriptedDevice(np.concatenate([warm, steady]))
    calls = []
    # a plateau longer than min_seconds would look steady: min_seconds must outlast the warm-up
    res = sample_point(lambda: calls.append(1), dev.timer, SamplingConfig(min_seconds=2.0), clock=dev.clock)
    assert res.converged
    assert res.first_iteration_ms == pytest.approx(warm[0])
    assert 300 <= 1 + len(res.warmup_ms) <= 300 + 0.05 * (len(res.warmup_ms) + len(res.steady_ms))
    assert np.mean(res.steady_ms) == pytest.approx(1.0, rel=0.01)
    assert len(calls) == 1 + len(res.warmup_ms) + len(res.steady_ms)
    assert not res.drift.detected


def test_sampling_that_cannot_reach_the_target_stops_at_max_seconds_unconverged() -> None:
    rng = np.random.default_rng(1)
    dev = ScriptedDevice(rng.lognormal(0, 1.5, 1_000_000))
    cfg = SamplingConfig(ci_target=0.001, min_seconds=0.1, max_seconds=2.0)
    res = sample_point(lambda: None, dev.timer, cfg, clock=dev.clock)
    assert not res.converged
    assert "2 s" in res.stop_reason
    assert 2.0 <= res.elapsed_s < 2.5
    assert res.rel_halfwidth > 0.001


def test_a_steady_ramp_is_flagged_as_drift() -> None:
    # about 2,500 iterations fit in 3 s: the ramp spans the whole sampled window
    dev = ScriptedDevice(np.linspace(1.0, 1.3, 2500))
    cfg = SamplingConfig(ci_target=0.5, min_seconds=2.0, max_seconds=3.0)
    res = sample_point(lambda: None, dev.timer, cfg, clock=dev.clock)
    assert res.drift.detected


def test_sampling_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="ci_target"):
        SamplingConfig(ci_target=0)
    with pytest.raises(ValueError, match="min_seconds"):
        SamplingConfig(min_seconds=5, max_seconds=1)
    with pytest.raises(ValueError, match="min_warmup"):
        SamplingConfig(min_warmup=0)


class FakeEvent:
    log: ClassVar[list[str]] = []
    t = 0.0

    def __init__(self) -> None:
        self.at: float | None = None

    def record(self) -> None:
        FakeEvent.t += 1.0
        self.at = FakeEvent.t
        FakeEvent.log.append("record")

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.at is not None and end.at is not None
        return end.at - self.at


def test_event_timer_synchronises_only_at_window_edges_and_flushes_outside_the_timed_region() -> None:
    FakeEvent.log = []
    timer = event_timer(
        FakeEvent, lambda: FakeEvent.log.append("sync"), lambda: FakeEvent.log.append("flush")
    )
    out = timer(lambda: FakeEvent.log.append("step"), 3)
    assert FakeEvent.log[0] == "sync" and FakeEvent.log[-1] == "sync"
    assert FakeEvent.log.count("sync") == 2
    assert FakeEvent.log[1:5] == ["flush", "record", "step", "record"]
    assert out == [1.0, 1.0, 1.0]


def test_perf_counter_timer_synchronises_around_every_iteration() -> None:
    ticks = iter(range(0, 10_000_000, 1_500_000))
    syncs = []
    timer = perf_counter_timer(lambda: syncs.append(1), clock_ns=lambda: next(ticks))
    assert timer(lambda: None, 2) == [1.5, 1.5]
    assert len(syncs) == 4


def test_a_slow_first_call_such_as_compilation_is_excluded_from_samples_and_time_budget() -> None:
    rng = np.random.default_rng(4)
    script = np.concatenate([[30_000.0], 1.0 + 0.01 * rng.standard_normal(100_000)])  # 30 s "compile"
    dev = ScriptedDevice(script)
    res = sample_point(
        lambda: None, dev.timer, SamplingConfig(min_seconds=0.5, max_seconds=2.0), clock=dev.clock
    )
    assert res.converged
    assert res.first_iteration_ms == 30_000.0
    assert max(res.steady_ms) < 2.0 and res.elapsed_s < 2.0
