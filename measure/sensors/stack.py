"""Automatic capture of the software and hardware stack a run executes on.

Readers of the host (sysfs, /proc, NVML) are parameters, so tests feed fake trees and a fake NVML.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from measure.device.target import Device
from measure.run import MaybeStr, Stack, Unavailable, unavailable
from measure.sensors.nvml import NvmlDevice, load_nvml

# Environment variables that change how fast the same code runs; recorded when set.
PERF_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "KMP_AFFINITY",
    "GOMP_CPU_AFFINITY",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TORCH_CUDNN_V8_API_ENABLED",
    "NVIDIA_TF32_OVERRIDE",
    "CUBLAS_WORKSPACE_CONFIG",
)
# CPU flags that decide which precisions have native kernels.
PRECISION_CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "asimd",
    "bf16",
    "i8mm",
    "sve",
)


def cpu_info(proc_root: Path = Path("/proc")) -> tuple[str, list[str]]:
    """CPU model name and the precision-relevant ISA flags, from /proc/cpuinfo (falls back to platform)."""
    model, flags = "", set[str]()
    try:
        for line in (proc_root / "cpuinfo").read_text(errors="replace").splitlines():
            key, _, val = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and not model:
                model = val.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(val.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), sorted(
        f for f in PRECISION_CPU_FLAGS if f in flags
    )


def cpu_governor(sys_root: Path = Path("/sys")) -> MaybeStr:
    """The cpufreq scaling governor(s) in use, or why it cannot be read (common in VMs and containers)."""
    base = sys_root / "devices/system/cpu"
    govs = set()
    for f in sorted(base.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            govs.add(f.read_text().strip())
        except OSError as exc:
            return unavailable(f"{f}: {exc.strerror}")
    if not govs:
        return unavailable(
            f"no cpufreq scaling_governor under {base} (virtual machine or cpufreq not exposed)"
        )
    return ",".join(sorted(govs))


def torch_build() -> str:
    """torch's build flavour in one line: CUDA/ROCm version or CPU-only, and the BLAS it links."""
    parts = []
    if torch.version.cuda:
        parts.append(f"CUDA {torch.version.cuda}")
    elif getattr(torch.version, "hip", None):
        parts.append(f"ROCm {torch.version.hip}")
    else:
        parts.append("CPU-only")
    blas = next((x.split("=", 1)[1] for x in torch.__config__.show().split(",") if "BLAS_INFO=" in x), None)
    if blas:
        parts.append(f"BLAS {blas.strip()}")
    parts.append(f"git {torch.version.git_version[:10]}")
    return ", ".join(parts)


# Stack fields read from torch on a GPU run, and those read from NVML.
TORCH_GPU_KEYS = ("device_uuid", "compute_capability", "device_memory_bytes", "cuda_runtime", "cudnn_version")
NVML_KEYS = (
    "driver_version",
    "gpu_power_limit_w",
    "gpu_persistence_mode",
    "gpu_ecc_mode",
    "gpu_mig_mode",
    "gpu_app_clock_sm_mhz",
    "gpu_app_clock_mem_mhz",
)


def _cuda_fields(device: Device, nvml_module: Any | None) -> dict[str, Any]:
    """Every GPU field: from torch where torch knows it, NVML for the rest, Unavailable with reasons."""
    no_gpu = unavailable("CPU run: no GPU involved")
    fields: dict[str, Any] = dict.fromkeys(TORCH_GPU_KEYS + NVML_KEYS, no_gpu)
    if device.kind != "cuda":
        return fields
    props = torch.cuda.get_device_properties(device.torch_device)
    uuid = str(getattr(props, "uuid", "") or "")
    uuid = uuid if not uuid or uuid.startswith("GPU-") else f"GPU-{uuid}"
    fields.update(
        device_name=props.name,
        device_uuid=uuid or unavailable("torch exposes no device uuid"),
        compute_capability=f"{props.major}.{props.minor}",
        device_memory_bytes=int(props.total_memory),
        cuda_runtime=torch.version.cuda or unavailable("torch build has no CUDA runtime version"),
        cudnn_version=str(torch.backends.cudnn.version())
        if torch.backends.cudnn.is_available()
        else unavailable("cuDNN not available in this torch build"),
    )
    fields.update(nvml_fields(device.index or 0, uuid or None, nvml_module))
    return fields


def nvml_fields(index: int, uuid: str | None, nvml_module: Any | None = None) -> dict[str, Any]:
    """Driver, power limit, persistence/ECC/MIG modes and application clocks from NVML."""
    nvml, why = load_nvml(nvml_module)
    if nvml is None:
        return dict.fromkeys(NVML_KEYS, unavailable(why))
    dev = NvmlDevice.open(nvml, uuid, index)
    if isinstance(dev, Unavailable):
        return dict.fromkeys(NVML_KEYS, dev)
    out: dict[str, Any] = {
        "driver_version": dev.driver_version(),
        "gpu_power_limit_w": dev.power_limit_w(),
        "gpu_persistence_mode": dev.persistence_mode(),
        "gpu_ecc_mode": dev.ecc_mode(),
        "gpu_mig_mode": dev.mig_mode(),
        "gpu_app_clock_sm_mhz": dev.app_clock_mhz("sm"),
        "gpu_app_clock_mem_mhz": dev.app_clock_mhz("mem"),
    }
    return out


def capture_stack(
    device: Device,
    compile_mode: str,
    *,
    nvml_module: Any | None = None,
    proc_root: Path = Path("/proc"),
    sys_root: Path = Path("/sys"),
    environ: dict[str, str] | None = None,
) -> Stack:
    """The full stack record for a run on `device`."""
    env = os.environ if environ is None else environ
    model, flags = cpu_info(proc_root)
    uname = platform.uname()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    fields = _cuda_fields(device, nvml_module)
    fields.setdefault("device_name", model)
    return Stack(
        device=device.spec,
        device_kind="cuda" if device.kind == "cuda" else "cpu",
        torch_version=torch.__version__,
        torch_build=torch_build(),
        torch_num_threads=torch.get_num_threads(),
        compile_mode=compile_mode,
        python_version=platform.python_version(),
        numpy_version=np.__version__,
        os=platform.platform(),
        kernel=uname.release,
        hostname=socket.gethostname(),
        cpu_model=model,
        cpu_count_logical=os.cpu_count() or 1,
        cpu_count_usable=usable,
        cpu_flags=flags,
        cpu_governor=cpu_governor(sys_root),
        environment={k: env[k] for k in PERF_ENV_VARS if k in env},
        **fields,
    )
