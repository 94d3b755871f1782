"""Real-GPU paths: CUDA-event timing, tf32/bf16/fp8 on the device, NVML stack fields. Skipped without CUDA."""

from __future__ import annotations

import pytest

from measure.batch.sweep import run_sweep
from measure.core.steady_state import SamplingConfig
from measure.inprocess.plan import SweepRequest
from measure.run import Unavailable

pytestmark = pytest.mark.gpu

FAST = SamplingConfig(
    ci_target=0.05, min_iterations=10, min_seconds=0.1, max_seconds=1.0, check_interval_s=0.02
)


def test_device_compute_scope_times_with_cuda_events_and_reads_nvml() -> None:
    req = SweepRequest(
        "mlp",
        {"width": 256, "layers": 2, "in_features": 256, "classes": 256},
        "cuda",
        ["fp32", "tf32", "bf16"],
        [1, 8],
        sampling=FAST,
        scope="device-compute",
    )
    run = run_sweep(req, command=["test"]).run
    assert run.methodology.timer == "cuda-event"
    assert run.stack.device_kind == "cuda" and not isinstance(run.stack.compute_capability, Unavailable)
    assert not isinstance(run.stack.driver_version, Unavailable)
    for p in run.points:
        assert p.status in ("ok", "unstable"), p.reason
        assert isinstance(p.peak_memory_bytes, int) and p.peak_memory_bytes > 0


def test_fp8_runs_for_real_or_says_why() -> None:
    import torch

    req = SweepRequest("gemm", {"k": 1024, "n": 1024}, "cuda", ["fp8"], [16], sampling=FAST)
    p = run_sweep(req, command=["test"]).run.points[0]
    if torch.cuda.get_device_capability() >= (8, 9):
        assert p.status in ("ok", "unstable"), p.reason
        assert "fp8 e4m3" in (p.precision_notes or "")
    else:
        assert p.status == "unsupported" and "8.9" in (p.reason or "")


def test_end_to_end_scope_uses_the_host_clock() -> None:
    req = SweepRequest(
        "mlp",
        {"width": 64, "layers": 1, "in_features": 64, "classes": 64},
        "cuda",
        ["fp16"],
        [4],
        sampling=FAST,
        scope="end-to-end",
    )
    run = run_sweep(req, command=["test"]).run
    assert run.methodology.timer == "perf_counter_ns+synchronize"
    assert run.points[0].status in ("ok", "unstable")


def test_nvml_telemetry_gives_idle_power_energy_per_item_clocks_and_reasons() -> None:
    from measure.run import Energy, IdlePower, PointTelemetry, PowerStats, Stat

    req = SweepRequest(
        "mlp",
        {"width": 1024, "layers": 4, "in_features": 1024, "classes": 1024},
        "cuda",
        ["bf16"],
        [256],
        sampling=FAST,
        scope="device-compute",
        idle_seconds=1.0,
        energy_min_window_s=1.0,
        energy_quantization_target=0.1,
    )
    run = run_sweep(req, command=["test"]).run
    assert isinstance(run.idle_power, IdlePower) and run.idle_power.power_w > 0
    tel = run.points[0].telemetry
    assert isinstance(tel, PointTelemetry), tel
    assert isinstance(tel.power_w, PowerStats) and tel.power_w.mean_w > run.idle_power.power_w * 0.5
    assert isinstance(tel.energy, Energy) and tel.energy.energy_per_item_j > 0 and tel.energy.window_s >= 1.0
    assert isinstance(tel.sm_clock_mhz, Stat) and tel.sm_clock_mhz.min > 0
    assert tel.sample_hz >= 10 and tel.samples >= 10
    assert run.quality is not None and run.quality.entries[0].status == "ok"
