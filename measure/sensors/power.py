"""Power sensors: NVML (board power, energy counter, clocks, temperature, clock-event reasons) and RAPL
(package and DRAM energy through powercap), and the choice of one for a device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from measure.run import (
    EnergyMethod,
)
from measure.sensors.nvml import NvmlDevice, decode_reasons, open_device, reasons_mask

# Clock-event reasons that mean the device ran slower than it could, as point flags the planner can exclude.
FLAG_FOR_REASON = {
    "sw_power_cap": "power-capped",
    "sw_thermal_slowdown": "thermal-slowdown",
    "hw_thermal_slowdown": "thermal-slowdown",
    "hw_slowdown": "hw-slowdown",
    "hw_power_brake_slowdown": "hw-slowdown",
}


class TelemetryError(RuntimeError):
    """A sensor that stopped answering mid-measurement."""


@dataclass(frozen=True)
class Sample:
    """One telemetry reading; None where the sensor cannot read that quantity."""

    t_s: float
    power_w: float | None = None
    sm_mhz: float | None = None
    mem_mhz: float | None = None
    temp_c: float | None = None
    util_gpu_pct: float | None = None
    energy_j: float | None = None
    reasons: tuple[str, ...] = ()


class Sensor(Protocol):
    """A device's telemetry: one sample of everything readable, and its cumulative energy counter."""

    source: str
    domain: str
    energy_method: EnergyMethod | None  # the counter's method, None when there is no counter
    missing: dict[str, str]  # quantity -> why it cannot be read

    def sample(self) -> Sample: ...

    def energy_j(self) -> float | None: ...


# ------------------------------------------------------------------------------------------------ NVML


def _field_number(fv: Any, nvml: Any) -> float:
    if int(getattr(fv, "nvmlReturn", 0)) != 0:
        raise TelemetryError(f"field value returned NVML error {fv.nvmlReturn}")
    kind = int(fv.valueType)
    member = {
        getattr(nvml, "NVML_VALUE_TYPE_DOUBLE", 0): "dVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_INT", 1): "uiVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_LONG", 2): "ulVal",
        getattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", 3): "ullVal",
        getattr(nvml, "NVML_VALUE_TYPE_SIGNED_LONG_LONG", 4): "sllVal",
        getattr(nvml, "NVML_VALUE_TYPE_SIGNED_INT", 5): "siVal",
    }.get(kind)
    if member is None:
        raise TelemetryError(f"field value of unknown type {kind}")
    return float(getattr(fv.value, member))


class NvmlSensor:
    """A GPU through NVML: instantaneous power where the GPU has it, clocks, temperature, utilization, reasons."""

    def __init__(self, dev: NvmlDevice, clock: Callable[[], float] = time.perf_counter) -> None:
        self.dev, self.nvml, self.h, self.clock = dev, dev.nvml, dev.handle, clock
        self.missing: dict[str, str] = {}
        n = self.nvml
        instant = getattr(n, "NVML_FI_DEV_POWER_INSTANT", 186)
        candidates: dict[str, list[tuple[str, Callable[[], float]]]] = {
            "power": [
                (
                    "instantaneous power field",
                    lambda: _field_number(n.nvmlDeviceGetFieldValues(self.h, [instant])[0], n) / 1000.0,
                ),
                ("nvmlDeviceGetPowerUsage (1 s average on Ampere and newer)", self._power_usage),
            ],
            "sm": [("SM clock", lambda: float(n.nvmlDeviceGetClockInfo(self.h, n.NVML_CLOCK_SM)))],
            "mem": [("memory clock", lambda: float(n.nvmlDeviceGetClockInfo(self.h, n.NVML_CLOCK_MEM)))],
            "temp": [
                (
                    "GPU temperature",
                    lambda: float(n.nvmlDeviceGetTemperature(self.h, getattr(n, "NVML_TEMPERATURE_GPU", 0))),
                )
            ],
            "util": [("utilization", lambda: float(n.nvmlDeviceGetUtilizationRates(self.h).gpu))],
            "energy": [
                (
                    "total energy counter",
                    lambda: float(n.nvmlDeviceGetTotalEnergyConsumption(self.h)) / 1000.0,
                )
            ],
            "reasons": [("clock-event reasons", lambda: float(reasons_mask(n, self.h)))],
        }
        self.readers: dict[str, Callable[[], float]] = {}
        self.power_reader = ""
        for what, options in candidates.items():
            errors = []
            for name, fn in options:
                try:
                    fn()
                except Exception as exc:  # NVML raises NVMLError_NotSupported and friends
                    errors.append(f"{name}: {exc}")
                    continue
                self.readers[what] = fn
                if what == "power":
                    self.power_reader = name
                break
            else:
                self.missing[what] = "; ".join(errors)
        self.energy_method: EnergyMethod | None = (
            "nvml-total-energy-counter" if "energy" in self.readers else None
        )
        self.source = f"NVML ({self.power_reader or 'no power reading'})"
        self.domain = "whole GPU board (NVML), host and PUE excluded"

    def _power_usage(self) -> float:
        return float(self.nvml.nvmlDeviceGetPowerUsage(self.h)) / 1000.0

    def _read(self, what: str) -> float | None:
        fn = self.readers.get(what)
        return fn() if fn is not None else None

    def sample(self) -> Sample:
        """Read everything readable now; NVML errors propagate (the sampler records them)."""
        mask = self._read("reasons")
        return Sample(
            t_s=self.clock(),
            power_w=self._read("power"),
            sm_mhz=self._read("sm"),
            mem_mhz=self._read("mem"),
            temp_c=self._read("temp"),
            util_gpu_pct=self._read("util"),
            energy_j=self._read("energy"),
            reasons=tuple(decode_reasons(int(mask))) if mask is not None else (),
        )

    def energy_j(self) -> float | None:
        """Total energy since the driver loaded, in joules (NVML counts millijoules)."""
        return self._read("energy")


def nvml_sensor(
    index: int,
    uuid: str | None,
    nvml_module: Any | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[NvmlSensor | None, str]:
    """The NVML sensor of a GPU, or None and why there is none."""
    dev, why = open_device(index, uuid, nvml_module)
    if dev is None:
        return None, why
    sensor = NvmlSensor(dev, clock)
    if "power" in sensor.missing and "energy" in sensor.missing:
        return None, f"NVML reads neither power nor energy: {sensor.missing['power']}"
    return sensor, ""


# ------------------------------------------------------------------------------------------------ RAPL


@dataclass
class _RaplDomain:
    name: str
    energy_file: Path
    max_range_uj: int
    last_uj: int
    total_uj: int = 0


class RaplSensor:
    """CPU package energy from Intel RAPL counters in sysfs, wrap-around handled, packages summed.

    Only top-level package domains are read: core, uncore and dram sub-domains overlap the package (or
    are separate), and psys covers the whole SoC, so summing them would count energy twice.
    """

    energy_method: EnergyMethod | None = "rapl-energy-counter"

    def __init__(self, domains: list[_RaplDomain], clock: Callable[[], float] = time.perf_counter) -> None:
        self.domains, self.clock = domains, clock
        self.missing = {
            "sm": "RAPL reads energy only; CPU clocks are in the point's clocks block",
            "mem": "RAPL reads energy only",
            "temp": "RAPL reads energy only",
            "util": "RAPL reads energy only",
            "reasons": "RAPL reads energy only",
        }
        self.source = "Intel RAPL (powercap sysfs), power from energy differences"
        self.domain = (
            "CPU package(s) " + ", ".join(d.name for d in domains) + " (RAPL); DRAM, host and PUE excluded"
        )
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None

    def energy_j(self) -> float:
        """Energy since the sensor was created, in joules, summed over packages."""
        with self._lock:
            for d in self.domains:
                raw = int(d.energy_file.read_text())
                delta = raw - d.last_uj
                if delta < 0:  # the counter wrapped at max_energy_range_uj
                    delta += d.max_range_uj + 1
                d.total_uj += delta
                d.last_uj = raw
            return sum(d.total_uj for d in self.domains) / 1e6

    def sample(self) -> Sample:
        """Energy now and the mean power since the previous sample (RAPL has no instantaneous power)."""
        t, e = self.clock(), self.energy_j()
        power = None
        if self._last is not None and t > self._last[0]:
            power = (e - self._last[1]) / (t - self._last[0])
        self._last = (t, e)
        return Sample(t_s=t, power_w=power, energy_j=e)


def rapl_sensor(
    root: Path = Path("/sys/class/powercap"), clock: Callable[[], float] = time.perf_counter
) -> tuple[RaplSensor | None, str]:
    """The RAPL sensor over every CPU package, or None and why RAPL cannot be read here."""
    if not root.is_dir():
        return (
            None,
            f"{root} does not exist (no RAPL driver: virtual machine, container or non-Intel/AMD CPU)",
        )
    domains = []
    for d in sorted(root.glob("intel-rapl:*")):
        if d.name.count(":") != 1:  # intel-rapl:0:0 and deeper are sub-domains of a package
            continue
        try:
            name = (d / "name").read_text().strip()
            if not name.startswith("package"):
                continue  # psys spans the whole platform and overlaps the packages
            last = int((d / "energy_uj").read_text())
            max_range = int((d / "max_energy_range_uj").read_text())
        except PermissionError:
            return None, (
                f"{d}/energy_uj is not readable by this user (root-only since Linux 5.10, CVE-2020-8694); "
                "run as root or grant read access"
            )
        except (OSError, ValueError) as exc:
            return None, f"{d}: unreadable RAPL domain ({exc})"
        domains.append(_RaplDomain(f"{d.name} ({name})", d / "energy_uj", max_range, last))
    if not domains:
        return None, f"{root} has no RAPL package domain"
    return RaplSensor(domains, clock), ""


def sensor_for(
    kind: str,
    index: int | None,
    uuid: str | None,
    nvml_module: Any | None = None,
    powercap_root: Path = Path("/sys/class/powercap"),
) -> tuple[Sensor | None, str]:
    """The telemetry sensor for a device kind, or None and the reason power cannot be measured."""
    if kind == "cuda":
        return nvml_sensor(index or 0, uuid, nvml_module)
    return rapl_sensor(powercap_root)


# ------------------------------------------------------------------------------------------------ sampling
