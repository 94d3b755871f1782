"""Stack capture against fake NVML modules and fake /proc and /sys trees."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from measure.device.target import parse_device
from measure.run import Unavailable
from measure.sensors.nvml import load_nvml
from measure.sensors.stack import capture_stack, cpu_governor, cpu_info, nvml_fields


class FakeNvmlError(Exception):
    pass


class FakeNvml:
    """Answers like pynvml on an H200 with ECC on, MIG off; optionally fails chosen queries."""

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, failing: set[str] | None = None, init_error: str | None = None) -> None:
        self.failing = failing or set()
        self.init_error = init_error

    def __getattribute__(self, name: str) -> Any:
        failing = object.__getattribute__(self, "failing")
        if name in failing:

            def fail(*a: Any) -> Any:
                raise FakeNvmlError("Not Supported")

            return fail
        return object.__getattribute__(self, name)

    def nvmlInit(self) -> None:
        if self.init_error:
            raise FakeNvmlError(self.init_error)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return f"handle:{uuid}"

    def nvmlDeviceGetHandleByIndex(self, i: int) -> str:
        return f"handle:{i}"

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"570.86.15"

    def nvmlDeviceGetEnforcedPowerLimit(self, h: str) -> int:
        return 700_000

    def nvmlDeviceGetPersistenceMode(self, h: str) -> int:
        return 1

    def nvmlDeviceGetEccMode(self, h: str) -> tuple[int, int]:
        return (1, 1)

    def nvmlDeviceGetMigMode(self, h: str) -> tuple[int, int]:
        return (0, 0)

    def nvmlDeviceGetApplicationsClock(self, h: str, clock: int) -> int:
        return 1980 if clock == self.NVML_CLOCK_SM else 3201


def test_nvml_fields_read_every_value() -> None:
    f = nvml_fields(0, "GPU-abc", FakeNvml())
    assert f == {
        "driver_version": "570.86.15",
        "gpu_power_limit_w": 700.0,
        "gpu_persistence_mode": "enabled",
        "gpu_ecc_mode": "enabled",
        "gpu_mig_mode": "disabled",
        "gpu_app_clock_sm_mhz": 1980,
        "gpu_app_clock_mem_mhz": 3201,
    }


def test_a_query_nvml_cannot_answer_is_unavailable_with_the_reason() -> None:
    f = nvml_fields(0, None, FakeNvml(failing={"nvmlDeviceGetApplicationsClock", "nvmlDeviceGetMigMode"}))
    assert isinstance(f["gpu_app_clock_sm_mhz"], Unavailable)
    assert "Not Supported" in f["gpu_mig_mode"].unavailable
    assert f["gpu_power_limit_w"] == 700.0


def test_nvml_that_fails_to_initialise_marks_every_field_unavailable() -> None:
    f = nvml_fields(0, None, FakeNvml(init_error="Driver Not Loaded"))
    assert all(isinstance(v, Unavailable) and "Driver Not Loaded" in v.unavailable for v in f.values())


def test_missing_pynvml_is_reported_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    module, why = load_nvml()
    assert module is None and "not installed" in why


def test_cpu_governor_from_sysfs_and_its_absence(tmp_path: Path) -> None:
    for cpu in ("cpu0", "cpu1"):
        d = tmp_path / "devices/system/cpu" / cpu / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text("performance\n")
    assert cpu_governor(tmp_path) == "performance"
    missing = cpu_governor(tmp_path / "nothing")
    assert isinstance(missing, Unavailable) and "virtual machine" in missing.unavailable


def test_cpu_info_reads_model_and_precision_flags(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(
        "model name\t: Fake Xeon 9000\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16 sse\n"
    )
    model, flags = cpu_info(tmp_path)
    assert model == "Fake Xeon 9000" and flags == ["amx_bf16", "avx2", "avx512_bf16"]


def test_cpu_stack_marks_gpu_fields_unavailable_and_records_perf_env(tmp_path: Path) -> None:
    stack = capture_stack(parse_device("cpu"), "eager", environ={"OMP_NUM_THREADS": "2", "HOME": "/root"})
    assert stack.device_kind == "cpu" and stack.device_name == stack.cpu_model
    assert isinstance(stack.gpu_power_limit_w, Unavailable)
    assert stack.environment == {"OMP_NUM_THREADS": "2"}
    assert stack.torch_version and stack.torch_num_threads >= 1
