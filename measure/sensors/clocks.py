"""Clock probes read between sampling chunks, so a point whose clocks moved or throttled is flagged.

A probe returns the current clock in MHz and any active slowdown reasons; it runs outside the timed
iterations. GPUs are read through NVML, CPUs through cpufreq in sysfs; where neither is readable the point
says why instead of pretending the clocks were stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from measure.core.steady_state import ClockProbe, ClockReading
from measure.run import Unavailable, unavailable
from measure.sensors.nvml import open_device, sm_clock_and_reasons


def cpu_probe(sys_root: Path = Path("/sys")) -> tuple[ClockProbe | None, str]:
    """Mean `scaling_cur_freq` over the CPUs, or None and why it cannot be read."""
    files = sorted((sys_root / "devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))
    if not files:
        return None, "cpufreq scaling_cur_freq is not exposed (virtual machine or container)"
    try:
        for f in files:
            int(f.read_text())
    except (OSError, ValueError) as exc:
        return None, f"cpufreq unreadable: {exc}"

    def read() -> ClockReading:
        khz = [int(f.read_text()) for f in files]
        return ClockReading(sum(khz) / len(khz) / 1000.0, ())

    return read, "sysfs cpufreq scaling_cur_freq (mean over CPUs)"


def gpu_probe(index: int, uuid: str | None, nvml_module: Any | None = None) -> tuple[ClockProbe | None, str]:
    """SM clock and clock-event reasons from NVML, or None and why they cannot be read."""
    dev, why = open_device(index, uuid, nvml_module)
    if dev is None:
        return None, why
    try:
        sm_clock_and_reasons(dev)
    except Exception as exc:
        return None, f"NVML clocks unreadable: {exc}"

    def read() -> ClockReading:
        mhz, reasons = sm_clock_and_reasons(dev)
        return ClockReading(mhz, tuple(reasons))

    return read, "NVML SM clock and clock-event reasons"


def probe_for(
    kind: str,
    index: int | None,
    uuid: str | None,
    nvml_module: Any | None = None,
    sys_root: Path = Path("/sys"),
) -> tuple[ClockProbe | None, str | Unavailable]:
    """The probe for a device kind, and its description (or why there is none)."""
    probe, what = gpu_probe(index or 0, uuid, nvml_module) if kind == "cuda" else cpu_probe(sys_root)
    return probe, (what if probe is not None else unavailable(what))
