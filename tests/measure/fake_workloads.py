"""User-protocol workloads for tests: tiny, fast, and able to fail on purpose."""

from __future__ import annotations

import torch
from torch import nn

from measure.workloads.builtin import UserWorkload


class OomAbove(nn.Module):
    """A Linear layer that raises torch's OOM error for batches larger than `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.lin = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} rows")
        return self.lin(x)


def oom_above(limit: int = 2) -> UserWorkload:
    return UserWorkload(module=OomAbove(limit), build_input=lambda b, s: torch.randn(b, 16), unit="rows")


def tiny(width: int = 16) -> tuple[nn.Module, object, str]:
    """The plain 3-tuple form of the protocol."""
    return nn.Sequential(nn.Linear(width, width), nn.ReLU()), (lambda b, s: torch.randn(b, width)), "samples"


def broken() -> str:
    return "not a workload"
