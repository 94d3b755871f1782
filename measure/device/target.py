"""The target device: parsing, synchronisation, timers, memory accounting and out-of-memory detection."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from measure.core.steady_state import IterationTimer, event_timer, perf_counter_timer
from measure.run import MaybeInt, unavailable


def _cuda_event() -> Any:
    return torch.cuda.Event(enable_timing=True)


_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
L2_FLUSH_BYTES = 256 * 1024 * 1024  # larger than any current GPU's L2 (H100/H200: 50 MB, B200: 126 MB)


class DeviceError(ValueError):
    """A device string that is malformed or names a device this machine does not have."""


@dataclass(frozen=True)
class Device:
    """A resolved torch device with what the measurement needs to know about it."""

    spec: str
    kind: str  # "cpu" | "cuda"
    index: int | None

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.spec)

    def synchronize(self) -> None:
        """Wait for all queued work on the device (no-op on the CPU, which runs synchronously)."""
        if self.kind == "cuda":
            torch.cuda.synchronize(self.torch_device)

    def compute_capability(self) -> tuple[int, int] | None:
        """(major, minor) for CUDA devices, None on the CPU."""
        if self.kind != "cuda":
            return None
        cap = torch.cuda.get_device_capability(self.torch_device)
        return int(cap[0]), int(cap[1])

    def timer(self, scope: str, l2_flush: bool) -> tuple[IterationTimer, str]:
        """The timer for an iteration scope, and its methodology name.

        Device-compute scope on CUDA uses CUDA events; end-to-end scope (host copies and Python overhead
        included) and the CPU use perf_counter_ns with synchronisation around each iteration.
        """
        flush = self._l2_flusher() if l2_flush else None
        if self.kind == "cuda" and scope == "device-compute":
            return event_timer(_cuda_event, self.synchronize, flush), ("cuda-event")
        return perf_counter_timer(self.synchronize, flush), "perf_counter_ns+synchronize"

    def _l2_flusher(self) -> Callable[[], None]:
        if self.kind != "cuda":
            raise DeviceError("--l2-flush applies to CUDA devices only")
        buf = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device=self.torch_device)

        def flush() -> None:
            buf.zero_()

        return flush

    def reset_peak_memory(self) -> None:
        if self.kind == "cuda":
            torch.cuda.reset_peak_memory_stats(self.torch_device)

    def peak_memory(self) -> MaybeInt:
        """Peak bytes allocated by torch on the device since the last reset."""
        if self.kind == "cuda":
            return int(torch.cuda.max_memory_allocated(self.torch_device))
        return unavailable("CPU allocations are not tracked per point (no caching-allocator statistics)")

    def release_memory(self) -> None:
        if self.kind == "cuda":
            torch.cuda.empty_cache()


def parse_device(spec: str) -> Device:
    """Resolve `cpu`, `cuda` or `cuda:i`, failing with a one-line reason when it does not exist here."""
    m = _DEVICE_RE.match(spec.strip())
    if not m:
        raise DeviceError(f"unknown device {spec!r}: use cpu, cuda or cuda:N")
    kind, idx = m.group(1), m.group(2)
    if kind == "cpu":
        if idx is not None:
            raise DeviceError(f"unknown device {spec!r}: the CPU takes no index")
        return Device("cpu", "cpu", None)
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} requested but CUDA is not available in this torch build or machine"
        )
    index = int(idx) if idx is not None else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} does not exist: this machine has {count} CUDA device(s)")
    return Device(f"cuda:{index}", "cuda", index)


# torch.OutOfMemoryError is the name since torch 2.5; older releases only have torch.cuda.OutOfMemoryError.
_OOM_TYPES: tuple[type[BaseException], ...] = (
    getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError,
    MemoryError,
)
_OOM_TEXT = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")


def is_oom(exc: BaseException) -> bool:
    """True for the ways torch reports an allocation failure on CUDA and on the CPU."""
    if isinstance(exc, _OOM_TYPES):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _OOM_TEXT)
