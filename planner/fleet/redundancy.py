"""The redundancy policy: N+k spares and headroom on top of the sized count, applied the same way to batch
and LLM fleets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Redundancy:
    """N+k spare replicas and/or a headroom fraction on top of the sized count."""

    spares: int = 0
    headroom: float = 0.0

    def __post_init__(self) -> None:
        if self.spares < 0 or not 0 <= self.headroom <= 10:
            raise ValueError(f"redundancy needs spares >= 0 and 0 <= headroom <= 10, got {self}")

    def apply(self, n: int) -> int:
        if n == 0:
            return 0  # an hour without traffic needs no spare either
        return math.ceil(n * (1 + self.headroom) - 1e-9) + self.spares

    def label(self) -> str:
        parts = ([f"N+{self.spares}"] if self.spares else []) + (
            [f"+{self.headroom:.0%} headroom"] if self.headroom else []
        )
        return ", ".join(parts) or "none (N+0)"
