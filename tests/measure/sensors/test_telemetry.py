"""Telemetry against a fake NVML that replays counters and a fake powercap tree: no GPU, no RAPL needed."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from measure.core.steady_state import SamplingConfig, sample_point
from measure.run import Energy, IdlePower, PowerStats, Stat, Unavailable
from measure.sensors import power as pw
from measure.sensors import telemetry as tm
from measure.sensors.nvml import NvmlDevice
from tests.measure.core.test_engine import ScriptedDevice
from tests.measure.sensors.test_stack import FakeNvml, FakeNvmlError

BUSY_W, IDLE_W = 300.0, 60.0


class FakeGpu(FakeNvml):
    """An H200 seen through NVML, driven by a clock: busy power, an energy counter that steps every
    `step_s`, and optionally a power-cap throttle window and a sensor that dies at some time."""

    NVML_TEMPERATURE_GPU = 0
    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_VALUE_TYPE_UNSIGNED_INT = 1

    def __init__(
        self,
        now: Callable[[], float],
        power_w: float = BUSY_W,
        step_s: float = 0.1,
        throttle: tuple[float, float] | None = None,
        dies_at: float | None = None,
        failing: set[str] | None = None,
    ) -> None:
        super().__init__(failing=failing)
        self.now, self.power_w, self.step_s = now, power_w, step_s
        self.throttle, self.dies_at = throttle, dies_at
        self.at: float | None = None  # replay: read the device as it was at this time

    def t(self) -> float:
        t = self.at if self.at is not None else self.now()
        if self.dies_at is not None and t >= self.dies_at:
            raise FakeNvmlError("GPU is lost")
        return t

    def throttled(self) -> bool:
        t = self.t()
        return self.throttle is not None and self.throttle[0] <= t < self.throttle[1]

    def nvmlDeviceGetTotalEnergyConsumption(self, h: str) -> int:
        steps = math.floor(self.t() / self.step_s + 1e-9)
        return round(steps * self.step_s * self.power_w * 1000)  # millijoules

    def nvmlDeviceGetFieldValues(self, h: str, ids: list[int]) -> list[Any]:
        self.t()
        return [
            SimpleNamespace(nvmlReturn=0, valueType=1, value=SimpleNamespace(uiVal=int(self.power_w * 1000)))
        ]

    def nvmlDeviceGetPowerUsage(self, h: str) -> int:
        self.t()
        return int(self.power_w * 1000)

    def nvmlDeviceGetClockInfo(self, h: str, clock: int) -> int:
        if clock == self.NVML_CLOCK_MEM:
            return 3201
        return 1500 if self.throttled() else 1980

    def nvmlDeviceGetTemperature(self, h: str, sensor: int) -> int:
        return 85 if self.throttled() else 60

    def nvmlDeviceGetUtilizationRates(self, h: str) -> Any:
        self.t()
        return SimpleNamespace(gpu=100, memory=40)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: str) -> int:
        return 0x4 if self.throttled() else 0


class ReplaySampler(tm.Sampler):
    """A sampler without a thread: on stop it reads the fake GPU as it was every interval since start."""

    def __init__(
        self, sensor: pw.Sensor, interval_s: float, gpu: FakeGpu, clock: Callable[[], float]
    ) -> None:
        super().__init__(sensor, interval_s)
        self.gpu, self.clock = gpu, clock

    def start(self) -> ReplaySampler:
        self.t0 = self.clock()
        return self

    def stop(self) -> list[pw.Sample]:
        t = self.t0
        while t <= self.clock():
            self.gpu.at = t
            try:
                s = self.sensor.sample()
            except Exception as exc:
                self.error = f"sensor failed after {len(self.samples)} samples: {exc}"
                break
            finally:
                self.gpu.at = None
            self.samples.append(pw.Sample(**{**s.__dict__, "t_s": t}))
            t += self.interval_s
        return list(self.samples)


def gpu_sensor(gpu: FakeGpu, clock: Callable[[], float]) -> pw.NvmlSensor:
    return pw.NvmlSensor(NvmlDevice(gpu, "h"), clock)


def metered_point(gpu: FakeGpu, dev: ScriptedDevice, config: SamplingConfig, period: float | None):
    """One sampled point with a meter on the fake GPU, sharing the scripted device's fake clock."""
    sensor = gpu_sensor(gpu, dev.clock)
    meter = tm.PointMeter(
        sensor,
        counter_update_s=period,
        clock=dev.clock,
        make_sampler=lambda s, i: ReplaySampler(s, i, gpu, dev.clock),
    ).start()
    sampled = sample_point(lambda: None, dev.timer, config, clock=dev.clock, observer=meter)
    telemetry, flags = meter.finish(sampled.detected_warmup, sampled.after_fixed_warmup(), 8, 128.0)
    return sampled, telemetry, flags


def test_nvml_sensor_prefers_the_instantaneous_power_field_and_reads_every_quantity() -> None:
    gpu = FakeGpu(lambda: 1.0)
    sensor = gpu_sensor(gpu, lambda: 1.0)
    assert sensor.power_reader == "instantaneous power field" and sensor.missing == {}
    s = sensor.sample()
    assert (s.power_w, s.sm_mhz, s.mem_mhz, s.temp_c, s.util_gpu_pct) == (300.0, 1980.0, 3201.0, 60.0, 100.0)
    assert s.energy_j == pytest.approx(300.0) and s.reasons == ()
    assert sensor.energy_method == "nvml-total-energy-counter"


def test_nvml_sensor_falls_back_to_averaged_power_and_names_what_is_missing() -> None:
    gpu = FakeGpu(lambda: 1.0, failing={"nvmlDeviceGetFieldValues", "nvmlDeviceGetTotalEnergyConsumption"})
    sensor = gpu_sensor(gpu, lambda: 1.0)
    assert sensor.power_reader.startswith("nvmlDeviceGetPowerUsage")
    assert sensor.energy_method is None and "Not Supported" in sensor.missing["energy"]
    assert sensor.sample().power_w == 300.0 and sensor.energy_j() is None


def test_no_nvml_means_no_sensor_and_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if nvidia-ml-py were not installed
    sensor, why = pw.sensor_for("cuda", 0, None)
    assert sensor is None and "not installed" in why
    sensor, why = pw.sensor_for("cuda", 0, None, FakeNvml(init_error="Driver Not Loaded"))
    assert sensor is None and "Driver Not Loaded" in why
    blind = FakeGpu(
        lambda: 0.0,
        failing={f"nvmlDeviceGet{x}" for x in ("FieldValues", "PowerUsage", "TotalEnergyConsumption")},
    )
    sensor, why = pw.sensor_for("cuda", 0, None, blind)
    assert sensor is None and "neither power nor energy" in why


def test_counter_update_period_is_found_by_polling() -> None:
    clock = {"t": 0.0}
    gpu = FakeGpu(lambda: clock["t"], step_s=0.1)

    def sleep(s: float) -> None:
        clock["t"] += s

    period = tm.counter_update_period_s(
        gpu_sensor(gpu, lambda: clock["t"]).energy_j, lambda: clock["t"], sleep
    )
    assert period == pytest.approx(0.1, rel=0.02)
    flat = tm.counter_update_period_s(lambda: 5.0, lambda: clock["t"], sleep)
    assert flat is None


def test_energy_from_a_counter_stepping_every_100_ms_extends_the_window_and_is_accurate() -> None:
    dev = ScriptedDevice(np.full(1_000_000, 1.0))  # 1 ms per batch of 8, no gaps
    gpu = FakeGpu(dev.clock, step_s=0.1)
    config = SamplingConfig(min_seconds=0.5, max_seconds=1.0)
    sampled, tel, flags = metered_point(gpu, dev, config, period=0.1)
    assert sampled.extended_for is not None and "energy window" in sampled.extended_for
    e = tel.energy
    assert isinstance(e, Energy) and e.method == "nvml-total-energy-counter" and e.extended
    need = 0.1 / tm.ENERGY_QUANTIZATION_TARGET  # 5 s: the counter step is 2% of the window
    assert e.window_s >= need and e.quantization_rel == pytest.approx(0.1 / e.window_s)
    assert e.mean_power_w == pytest.approx(BUSY_W, rel=e.quantization_rel)
    assert e.energy_per_item_j == pytest.approx(BUSY_W * 0.001 / 8, rel=e.quantization_rel)
    assert e.energy_per_unit_j == pytest.approx(e.energy_per_item_j / 128)
    assert e.busy_fraction == pytest.approx(1.0, abs=0.01)
    assert (
        isinstance(tel.power_w, PowerStats) and tel.power_w.mean_w == BUSY_W and tel.power_w.p95_w == BUSY_W
    )
    assert tel.samples >= 100 and tel.sample_hz >= 10
    assert isinstance(tel.sm_clock_mhz, Stat) and tel.sm_clock_mhz.min == 1980
    assert isinstance(tel.utilization_gpu_pct, Stat) and flags == [] and tel.reasons_seen == []


def test_too_short_a_window_is_reported_not_hidden() -> None:
    dev = ScriptedDevice(np.full(1_000_000, 1.0))
    gpu = FakeGpu(dev.clock, step_s=0.1)
    config = SamplingConfig(min_seconds=0.5, max_seconds=1.0, extend_max_seconds=1.5)
    _, tel, _ = metered_point(gpu, dev, config, period=0.1)
    e = tel.energy
    assert isinstance(e, Energy) and e.window_s < 5.0
    assert (
        any("shorter than" in n for n in e.notes)
        and e.quantization_rel is not None
        and e.quantization_rel > 0.05
    )


def test_a_throttle_event_mid_point_flags_the_point_and_shows_in_clocks_and_temperature() -> None:
    dev = ScriptedDevice(np.full(1_000_000, 1.0))
    gpu = FakeGpu(dev.clock, throttle=(2.0, 3.0))
    _, tel, flags = metered_point(gpu, dev, SamplingConfig(min_seconds=0.5, max_seconds=1.0), period=0.1)
    assert flags == ["power-capped"] and tel.reasons_seen == ["sw_power_cap"]
    assert (
        isinstance(tel.sm_clock_mhz, Stat) and tel.sm_clock_mhz.min == 1500 and tel.sm_clock_mhz.max == 1980
    )
    assert isinstance(tel.temperature_c, Stat) and tel.temperature_c.max == 85


def test_a_missing_energy_counter_falls_back_to_integrating_power_samples() -> None:
    dev = ScriptedDevice(np.full(1_000_000, 1.0))
    gpu = FakeGpu(dev.clock, failing={"nvmlDeviceGetTotalEnergyConsumption"})
    _, tel, _ = metered_point(gpu, dev, SamplingConfig(min_seconds=0.5, max_seconds=1.0), period=None)
    e = tel.energy
    assert isinstance(e, Energy) and e.method == "integrated-power-samples" and e.quantization_rel is None
    assert e.window_s >= tm.MIN_ENERGY_WINDOW_S and e.mean_power_w == pytest.approx(BUSY_W)
    assert any("integrated" in n for n in e.notes)


def test_a_sensor_dying_mid_point_loses_telemetry_after_it_not_the_point() -> None:
    dev = ScriptedDevice(np.full(1_000_000, 1.0))
    gpu = FakeGpu(dev.clock, dies_at=1.0, failing={"nvmlDeviceGetTotalEnergyConsumption"})
    sampled, tel, _ = metered_point(gpu, dev, SamplingConfig(min_seconds=0.5, max_seconds=1.0), period=None)
    assert sampled.converged and tel.samples > 0  # samples up to the failure are kept
    assert isinstance(tel.power_w, PowerStats)


def test_the_sampler_thread_reads_at_least_ten_times_a_second_and_records_a_failure() -> None:
    gpu = FakeGpu(time.perf_counter)
    sampler = tm.Sampler(gpu_sensor(gpu, time.perf_counter)).start()
    time.sleep(0.5)
    samples = sampler.stop()
    assert len(samples) >= 5 and sampler.error is None
    assert float(np.median(np.diff([s.t_s for s in samples]))) <= 0.1
    dying = FakeGpu(time.perf_counter, dies_at=time.perf_counter() + 0.2)
    sampler = tm.Sampler(gpu_sensor(dying, time.perf_counter)).start()
    time.sleep(0.4)
    kept = sampler.stop()
    assert sampler.error is not None and "GPU is lost" in sampler.error and len(kept) >= 2


def test_idle_power_comes_from_the_counter_with_its_update_period() -> None:
    clock = {"t": 0.0}
    now = lambda: clock["t"]  # noqa: E731
    gpu = FakeGpu(now, power_w=IDLE_W, step_s=0.1)

    def sleep(s: float) -> None:
        clock["t"] += s

    idle = tm.measure_idle(
        gpu_sensor(gpu, now), 3.0, now, sleep, make_sampler=lambda s, i: ReplaySampler(s, i, gpu, now)
    )
    assert isinstance(idle, IdlePower) and idle.method == "nvml-total-energy-counter"
    assert idle.power_w == pytest.approx(IDLE_W, rel=0.1 / 3.0) and idle.counter_update_ms == pytest.approx(
        100, rel=0.02
    )
    assert idle.temperature_c == 60 and idle.samples > 10
    assert isinstance(tm.measure_idle(gpu_sensor(gpu, now), 0.0), Unavailable)


# ------------------------------------------------------------------------------------------------ RAPL


def write_domain(root: Path, name: str, label: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_reads_package_domains_only_and_handles_wrap_around(tmp_path: Path) -> None:
    p0 = write_domain(tmp_path, "intel-rapl:0", "package-0", 999_000_000, max_uj=1_000_000_000)
    write_domain(tmp_path, "intel-rapl:0:0", "core", 5)  # inside package 0: never added
    write_domain(tmp_path, "intel-rapl:1", "psys", 7)  # the whole platform: overlaps the package
    p1 = write_domain(tmp_path, "intel-rapl:2", "package-1", 100)
    sensor, why = pw.rapl_sensor(tmp_path)
    assert sensor is not None and why == ""
    assert "package-0" in sensor.domain and "package-1" in sensor.domain and "psys" not in sensor.domain
    assert sensor.energy_j() == 0.0
    (p0 / "energy_uj").write_text("1000000\n")  # wrapped: 1 J to the top, then 1 J more
    (p1 / "energy_uj").write_text("500100\n")
    assert sensor.energy_j() == pytest.approx(2.000001 + 0.5)


def test_rapl_power_comes_from_energy_differences(tmp_path: Path) -> None:
    p0 = write_domain(tmp_path, "intel-rapl:0", "package-0", 0)
    clock = {"t": 0.0}
    sensor, _ = pw.rapl_sensor(tmp_path, clock=lambda: clock["t"])
    assert sensor is not None and sensor.sample().power_w is None
    clock["t"] = 0.5
    (p0 / "energy_uj").write_text(f"{int(20e6)}\n")  # 20 J in 0.5 s
    assert sensor.sample().power_w == pytest.approx(40.0)


def test_rapl_that_cannot_be_read_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sensor, why = pw.rapl_sensor(tmp_path / "absent")
    assert sensor is None and "does not exist" in why
    write_domain(tmp_path, "intel-rapl:1", "psys", 7)
    sensor, why = pw.rapl_sensor(tmp_path)
    assert sensor is None and "no RAPL package domain" in why
    p0 = write_domain(tmp_path, "intel-rapl:0", "package-0", 0)
    real = Path.read_text

    def deny(self: Path, *a: Any, **k: Any) -> str:
        if self == p0 / "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    sensor, why = pw.rapl_sensor(tmp_path)
    assert sensor is None and "not readable" in why and "root" in why


class FakeRapl:
    """A package whose energy counter a thread advances at `watts`, written atomically like sysfs would."""

    def __init__(self, root: Path, watts: float) -> None:
        self.dir = write_domain(root, "intel-rapl:0", "package-0", 0)
        self.watts, self.stop = watts, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self.stop.wait(0.002):
            uj = int((time.perf_counter() - t0) * self.watts * 1e6)
            tmp = self.dir / ".energy_uj.tmp"
            tmp.write_text(f"{uj}\n")
            tmp.replace(self.dir / "energy_uj")

    def __enter__(self) -> FakeRapl:
        self.thread.start()
        return self

    def __exit__(self, *a: object) -> None:
        self.stop.set()
        self.thread.join()


def test_a_cpu_sweep_with_readable_rapl_carries_idle_power_and_energy_per_point(tmp_path: Path) -> None:
    from measure.batch.sweep import run_sweep
    from measure.inprocess.plan import SweepRequest

    req = SweepRequest(
        workload="mlp",
        params={"in_features": 16, "width": 16, "layers": 1, "classes": 16},
        device="cpu",
        precisions=["fp32"],
        batch_sizes=[4],
        sampling=SamplingConfig(ci_target=0.05, min_iterations=10, min_seconds=0.05, max_seconds=0.5),
        idle_seconds=0.3,
        energy_min_window_s=0.4,
    )
    with FakeRapl(tmp_path, watts=25.0):
        run = run_sweep(req, command=["test"], powercap_root=tmp_path).run
    assert isinstance(run.idle_power, IdlePower) and run.idle_power.method == "rapl-energy-counter"
    assert run.idle_power.power_w == pytest.approx(25.0, rel=0.2)
    (point,) = run.points
    assert point.telemetry is not None and not isinstance(point.telemetry, Unavailable)
    e = point.telemetry.energy
    assert isinstance(e, Energy) and e.method == "rapl-energy-counter" and e.window_s >= 0.4
    assert e.mean_power_w == pytest.approx(25.0, rel=0.2)
    assert e.energy_per_item_j == pytest.approx(e.energy_j / (e.iterations * 4))
    assert run.methodology.energy_policy and "RAPL" in run.methodology.energy_policy
