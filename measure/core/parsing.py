"""What the command line hands to measuring, parsed without torch: integer lists, precision names, `key=value`
parameters, and the progress callbacks a sweep reports to.

Torch-free on purpose: measuring a remote engine (`fleetwise measure --endpoint`) is an HTTP client and must
run on a machine without torch; the in-process sweeps import these names from here too.
"""

from __future__ import annotations

import math

from measure.run import PRECISIONS, Point

ParamValue = int | float | str | bool


class SweepError(ValueError):
    """A sweep request that cannot be carried out as asked (bad list, mismatching resume, ...)."""


class PrecisionError(ValueError):
    """An unknown precision name."""


class WorkloadError(ValueError):
    """An unknown workload, a bad parameter, or a user factory that does not follow the protocol."""


def parse_int_list(text: str, what: str) -> list[int]:
    """`1,2,4` into positive ints (order kept, duplicates dropped); one-line error otherwise."""
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            v = int(tok)
        except ValueError:
            raise SweepError(f"malformed {what} list {text!r}: {tok!r} is not an integer") from None
        if v <= 0:
            raise SweepError(f"{what} must be positive, got {v}")
        out.append(v)
    if not out:
        raise SweepError(f"empty {what} list {text!r}")
    return list(dict.fromkeys(out))


def powers_of_two(cap: int) -> list[int]:
    """1, 2, 4, ... up to cap (the default batch list: the sweep stops earlier at an OOM)."""
    if cap <= 0:
        raise SweepError(f"max batch must be positive, got {cap}")
    return [2**i for i in range(cap.bit_length()) if 2**i <= cap]


def parse_precisions(text: str) -> list[str]:
    """Comma-separated precision names, validated and de-duplicated in order."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise PrecisionError("no precision given")
    for n in names:
        if n not in PRECISIONS:
            raise PrecisionError(f"unknown precision {n!r}: choose from {', '.join(PRECISIONS)}")
    return list(dict.fromkeys(names))


def parse_param(text: str) -> tuple[str, ParamValue]:
    """`key=value` with the value read as int, float, bool or string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise WorkloadError(f"parameter {text!r} must look like key=value")
    raw = raw.strip()
    value: ParamValue
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
                if not math.isfinite(value):
                    raise WorkloadError(f"parameter {key} must be finite")
            except ValueError:
                value = raw
    return key.strip(), value


class Progress:
    """Sweep progress callbacks; the CLI draws a progress bar, tests record calls."""

    def start(self, total: int) -> None: ...

    def point_started(self, precision: str, batch: int, seq_len: int | None) -> None: ...

    def point_done(self, point: Point) -> None: ...
