"""Is anything else using the machine while a point is measured? Load, steal and other processes' CPU share.

Read from /proc (Linux) before and after each point, never inside a timed iteration. The root is a parameter,
so tests give a fake /proc. A point measured while other processes took a large share of the CPUs, or the
hypervisor stole time, is flagged `contended`: still usable, never silent (a busy machine once gave a point 60x
slower than its neighbours, marked ok). Torch-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from measure.run import Contention, Unavailable, unavailable

OTHER_SHARE_LIMIT = 0.2  # other processes used more than this share of all CPU time during the point
STEAL_SHARE_LIMIT = 0.05  # the hypervisor took more than this share of all CPU time


@dataclass(frozen=True)
class Reading:
    """One look at /proc: the 1-minute load average, CPU jiffies (total, steal), this process's jiffies."""

    load1: float
    total: int
    idle: int
    steal: int
    own: int


def read(root: str | Path = "/proc", pid: int | str = "self") -> Reading:
    """A reading now; OSError or ValueError when /proc is missing or unreadable."""
    base = Path(root)
    load1 = float((base / "loadavg").read_text().split()[0])
    cpu = (base / "stat").read_text().splitlines()[0].split()
    if cpu[0] != "cpu":
        raise ValueError("the first line of stat is not the cpu total")
    # user nice system idle iowait irq softirq steal (guest time is inside user and nice already)
    fields = [int(x) for x in cpu[1:9]] + [0] * max(0, 8 - len(cpu[1:9]))
    idle = fields[3] + fields[4]
    own_fields = (base / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    own = int(own_fields[11]) + int(own_fields[12])  # utime, stime (fields 14 and 15 of the full line)
    return Reading(load1=load1, total=sum(fields), idle=idle, steal=fields[7], own=own)


def safe_read(root: str | Path = "/proc") -> Reading | str:
    """A reading, or why none could be taken."""
    try:
        return read(root)
    except (OSError, ValueError, IndexError) as exc:
        return f"cannot read {root}: {type(exc).__name__}: {exc}"


def summarise(
    before: Reading | str, after: Reading | str, cpus: int | None = None
) -> Contention | Unavailable:
    """What the machine did between two readings, and whether it counts as contended."""
    if isinstance(before, str) or isinstance(after, str):
        return unavailable(before if isinstance(before, str) else str(after))
    total = after.total - before.total
    if total <= 0:
        return unavailable("the CPU counters did not advance between the readings (point too short)")
    busy = total - (after.idle - before.idle) - (after.steal - before.steal)
    own = max(0, after.own - before.own)
    other = max(0.0, (busy - own) / total)
    steal = max(0.0, (after.steal - before.steal) / total)
    reasons = []
    if other > OTHER_SHARE_LIMIT:
        reasons.append(f"other processes used {other:.0%} of the CPUs (limit {OTHER_SHARE_LIMIT:.0%})")
    if steal > STEAL_SHARE_LIMIT:
        reasons.append(f"steal time was {steal:.0%} of the CPUs (limit {STEAL_SHARE_LIMIT:.0%})")
    return Contention(
        load1_before=before.load1,
        load1_after=after.load1,
        cpus=cpus or os.cpu_count() or 1,
        other_cpu_share=other,
        steal_share=steal,
        contended=bool(reasons),
        reason="; ".join(reasons) or None,
    )
