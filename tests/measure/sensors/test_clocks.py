"""Clock probes and the clock-change / throttle flags, with fake NVML and fake sysfs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from measure.core import stats
from measure.core.steady_state import ClockReading, SamplingConfig, sample_point
from measure.inprocess.point import clock_summary
from measure.run import ClockSummary, Unavailable, unavailable
from measure.sensors.clocks import cpu_probe, gpu_probe
from measure.sensors.nvml import SLOWDOWN_REASONS, decode_reasons
from tests.measure.core.test_engine import ScriptedDevice
from tests.measure.sensors.test_stack import FakeNvml


def test_decode_reasons_names_nvml_bits() -> None:
    assert decode_reasons(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
    assert decode_reasons(0) == []


def test_stable_clocks_raise_no_flag_and_a_throttle_in_the_window_does() -> None:
    stable = [(0, 1980.0, ()), (100, 1975.0, ()), (200, 1980.0, ())]
    v = stats.clock_stability(stable, 50, SLOWDOWN_REASONS)
    assert v is not None and not v.changed and not v.throttled and v.readings == 3
    hot = [(0, 1980.0, ()), (100, 1500.0, ("sw_thermal_slowdown",)), (200, 1490.0, ("sw_thermal_slowdown",))]
    v = stats.clock_stability(hot, 50, SLOWDOWN_REASONS)
    assert v is not None and v.changed and v.throttled and v.reasons_seen == ("sw_thermal_slowdown",)
    idle = [(0, 345.0, ("gpu_idle",)), (100, 1980.0, ()), (200, 1980.0, ())]
    v = stats.clock_stability(idle, 100, SLOWDOWN_REASONS)  # the idle reading is before the steady window
    assert v is not None and not v.changed and not v.throttled and v.min_mhz == 1980.0
    assert stats.clock_stability([], 0, SLOWDOWN_REASONS) is None


def test_sampling_reads_the_probe_between_chunks_and_survives_a_failing_sensor() -> None:
    dev = ScriptedDevice(1.0 + 0.01 * np.random.default_rng(0).standard_normal(100_000))
    calls = {"n": 0}

    def probe() -> ClockReading:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("GPU is lost")
        return ClockReading(1000.0, ())

    res = sample_point(lambda: None, dev.timer, SamplingConfig(min_seconds=1.0), clock=dev.clock, probe=probe)
    assert res.clock_readings[0][0] == 0 and len(res.clock_readings) == 3
    assert res.clock_error is not None and "GPU is lost" in res.clock_error
    assert res.converged  # a sensor failure costs the clock check, not the measurement


def _sampled_with(readings: list[tuple[int, ClockReading]], warmup: int = 0) -> Any:
    dev = ScriptedDevice(np.ones(10_000))
    res = sample_point(lambda: None, dev.timer, SamplingConfig(min_seconds=0.2), clock=dev.clock)
    res.clock_readings = readings
    res.detected_warmup = warmup
    return res


def test_point_clock_summary_flags_a_mid_point_throttle_event() -> None:
    readings = [
        (0, ClockReading(1980, ())),
        (50, ClockReading(1980, ())),
        (100, ClockReading(1600, ("sw_power_cap",))),
        (150, ClockReading(1590, ("sw_power_cap",))),
    ]
    summary, flags = clock_summary(_sampled_with(readings), "NVML SM clock")
    assert isinstance(summary, ClockSummary) and summary.min_mhz == 1590 and summary.max_mhz == 1980
    assert summary.reasons_seen == ["sw_power_cap"]
    assert flags == ["clock-change", "throttled"]


def test_point_clock_summary_says_why_when_there_is_no_probe() -> None:
    summary, flags = clock_summary(_sampled_with([]), unavailable("cpufreq not exposed"))
    assert isinstance(summary, Unavailable) and "cpufreq" in summary.unavailable and flags == []


def test_cpu_probe_reads_sysfs_and_reports_its_absence(tmp_path: Path) -> None:
    for cpu, khz in (("cpu0", 2_000_000), ("cpu1", 3_000_000)):
        d = tmp_path / "devices/system/cpu" / cpu / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{khz}\n")
    probe, what = cpu_probe(tmp_path)
    assert probe is not None and probe() == ClockReading(2500.0, ()) and "cpufreq" in what
    probe, why = cpu_probe(tmp_path / "none")
    assert probe is None and "not exposed" in why


class ThrottlingNvml(FakeNvml):
    """Reports a power-cap slowdown from the third reading on; no event-reasons call (older driver API)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def nvmlDeviceGetClockInfo(self, h: str, clock: int) -> int:
        self.reads += 1
        return 1980 if self.reads < 3 else 1650

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: str) -> int:
        return 0x4 if self.reads >= 3 else 0x0


def test_gpu_probe_reads_sm_clock_and_reasons_through_nvml() -> None:
    probe, what = gpu_probe(0, "GPU-x", ThrottlingNvml())
    assert probe is not None and "NVML" in what
    assert probe() == ClockReading(1980.0, ())  # the probe's own check was the first read
    assert probe() == ClockReading(1650.0, ("sw_power_cap",))


def test_gpu_probe_without_nvml_says_why() -> None:
    probe, why = gpu_probe(0, None, FakeNvml(init_error="Driver Not Loaded"))
    assert probe is None and "Driver Not Loaded" in why
