"""The canary rule shared by every live check (batch and LLM): a level is not judged when a canary reading
taken around it moved from the first reading beyond both confidence intervals and by more than DRIFT_MIN_PCT.

Readings are compared with the first, not with their neighbours: a slow drift over the whole check moves no
single step far, but it moves the machine away from the one the first level was measured on."""

from __future__ import annotations

import itertools

DRIFT_MIN_PCT = 5.0  # a canary that moved less than this is the same machine, whatever its CIs say


def drift_flags(readings: list[tuple[float | None, float | None]], what: str) -> list[str | None]:
    """For the level between readings i and i + 1 (each a mean and its CI half-width, None when not read): why
    it is not judged, when either reading moved from the first as above; else None. `what` names the reading."""
    if not readings or readings[0][0] is None:
        return [None] * max(0, len(readings) - 1)
    base, base_ci = readings[0][0], readings[0][1] or 0.0
    out: list[str | None] = []
    for a, b in itertools.pairwise(readings):
        moved = [
            mean for mean, ci in (a, b)
            if mean is not None
            and abs(mean - base) > base_ci + (ci or 0.0)
            and abs(mean - base) / base * 100 > DRIFT_MIN_PCT
        ]  # fmt: skip
        out.append(
            f"drift: the canary's {what} moved from {base:.3g} ms to {moved[0]:.3g} ms around this level (beyond "
            "both CIs): not judged"
            if moved
            else None
        )
    return out
