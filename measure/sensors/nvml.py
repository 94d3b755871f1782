"""NVML access through an injectable module object, so tests replace the real `pynvml` with a fake.

Every query returns its value or `Unavailable` with the reason; nothing here guesses a value.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from measure.run import MaybeFloat, MaybeInt, MaybeStr, Unavailable, unavailable


def load_nvml(module: Any | None = None) -> tuple[Any | None, str]:
    """Initialised NVML module (the real `pynvml` unless one is injected), or None and the reason."""
    if module is None:
        try:
            module = importlib.import_module("pynvml")
        except ImportError:
            return None, "pynvml (nvidia-ml-py) is not installed"
    try:
        module.nvmlInit()
    except Exception as exc:  # NVMLError subclasses: library missing, driver not loaded, no permission
        return None, f"NVML init failed: {exc}"
    return module, ""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class NvmlDevice:
    """One GPU seen through NVML; queries fail soft into `Unavailable` with NVML's own message."""

    def __init__(self, nvml: ModuleType | Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle

    @classmethod
    def open(cls, nvml: Any, uuid: str | None, index: int) -> NvmlDevice | Unavailable:
        """By UUID when known (CUDA_VISIBLE_DEVICES may renumber devices), else by index."""
        try:
            if uuid:
                return cls(nvml, nvml.nvmlDeviceGetHandleByUUID(uuid))
            return cls(nvml, nvml.nvmlDeviceGetHandleByIndex(index))
        except Exception as exc:
            return unavailable(f"NVML has no handle for device {uuid or index}: {exc}")

    def _query(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            return unavailable(f"NVML {what}: {exc}")

    def name(self) -> MaybeStr:
        v = self._query("name", lambda: self.nvml.nvmlDeviceGetName(self.handle))
        return v if isinstance(v, Unavailable) else _text(v)

    def uuid(self) -> MaybeStr:
        v = self._query("uuid", lambda: self.nvml.nvmlDeviceGetUUID(self.handle))
        return v if isinstance(v, Unavailable) else _text(v)

    def driver_version(self) -> MaybeStr:
        v = self._query("driver version", lambda: self.nvml.nvmlSystemGetDriverVersion())
        return v if isinstance(v, Unavailable) else _text(v)

    def power_limit_w(self) -> MaybeFloat:
        """The enforced board power limit (the cap the device actually runs under)."""
        v = self._query("power limit", lambda: self.nvml.nvmlDeviceGetEnforcedPowerLimit(self.handle))
        return v if isinstance(v, Unavailable) else float(v) / 1000.0

    def _enabled(self, what: str, fn: Callable[[], Any]) -> MaybeStr:
        v = self._query(what, fn)
        if isinstance(v, Unavailable):
            return v
        current = v[0] if isinstance(v, list | tuple) else v  # ECC and MIG return (current, pending)
        return "enabled" if int(current) == 1 else "disabled"

    def persistence_mode(self) -> MaybeStr:
        return self._enabled("persistence mode", lambda: self.nvml.nvmlDeviceGetPersistenceMode(self.handle))

    def ecc_mode(self) -> MaybeStr:
        return self._enabled("ECC mode", lambda: self.nvml.nvmlDeviceGetEccMode(self.handle))

    def mig_mode(self) -> MaybeStr:
        return self._enabled("MIG mode", lambda: self.nvml.nvmlDeviceGetMigMode(self.handle))

    def app_clock_mhz(self, which: str) -> MaybeInt:
        clock = self.nvml.NVML_CLOCK_SM if which == "sm" else self.nvml.NVML_CLOCK_MEM
        v = self._query(
            f"{which} application clock", lambda: self.nvml.nvmlDeviceGetApplicationsClock(self.handle, clock)
        )
        return v if isinstance(v, Unavailable) else int(v)


# Clock-event ("throttle") reason bits, named as NVML names them; the slowdowns are what cost performance.
CLOCK_EVENT_REASONS: dict[str, int] = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}
SLOWDOWN_REASONS = frozenset(
    {"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)


def decode_reasons(mask: int) -> list[str]:
    """Named clock-event reasons in an NVML bit mask."""
    return [name for name, bit in CLOCK_EVENT_REASONS.items() if mask & bit]


def reasons_mask(nvml: Any, handle: Any) -> int:
    """The active clock-event reason bit mask (the newer NVML name first, the older one as a fallback)."""
    fn = (
        getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    return int(fn(handle))


def sm_clock_and_reasons(dev: NvmlDevice) -> tuple[float, list[str]]:
    """Current SM clock (MHz) and active clock-event reasons; raises NVML's error when unreadable."""
    mhz = float(dev.nvml.nvmlDeviceGetClockInfo(dev.handle, dev.nvml.NVML_CLOCK_SM))
    return mhz, decode_reasons(reasons_mask(dev.nvml, dev.handle))


def open_device(
    index: int, uuid: str | None, nvml_module: Any | None = None
) -> tuple[NvmlDevice | None, str]:
    """Initialise NVML and open one GPU (by UUID when known), or None and why not."""
    nvml, why = load_nvml(nvml_module)
    if nvml is None:
        return None, why
    dev = NvmlDevice.open(nvml, uuid, index)
    if isinstance(dev, Unavailable):
        return None, dev.unavailable
    return dev, ""
