"""Contention from a fake /proc: other processes' CPU share and steal time flag a point, never silently."""

from __future__ import annotations

from pathlib import Path

from measure.run import Contention, Unavailable
from measure.sensors import contention as cont


def fake_proc(root: Path, load1: float, user: int, idle: int, steal: int, own: int) -> Path:
    (root / "self").mkdir(parents=True, exist_ok=True)
    (root / "loadavg").write_text(f"{load1} 1.00 0.50 2/300 4242\n")
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    (root / "stat").write_text(f"cpu  {user} 0 0 {idle} 0 0 0 {steal} 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")
    fields = ["S"] + ["0"] * 10 + [str(own), "0"] + ["0"] * 30  # state, ..., utime (14th), stime (15th)
    (root / "self" / "stat").write_text(f"4242 (python (fleet)) {' '.join(fields)}\n")
    return root


def test_other_processes_using_half_the_cpus_flag_the_point(tmp_path: Path) -> None:
    before = cont.read(fake_proc(tmp_path / "a", 0.9, user=1000, idle=1000, steal=0, own=400))
    # 300 jiffies pass, 200 of them busy, 50 of those ours: other processes took 150 / 300 = 50%
    after = cont.read(fake_proc(tmp_path / "b", 2.5, user=1200, idle=1100, steal=0, own=450))
    got = cont.summarise(before, after, cpus=2)
    assert isinstance(got, Contention)
    assert abs(got.other_cpu_share - 0.5) < 1e-9 and got.steal_share == 0.0
    assert got.contended and got.reason is not None and "other processes" in got.reason
    assert got.load1_before == 0.9 and got.load1_after == 2.5


def test_a_quiet_machine_is_not_contended_and_steal_is_its_own_reason(tmp_path: Path) -> None:
    before = cont.read(fake_proc(tmp_path / "a", 0.1, user=1000, idle=1000, steal=0, own=900))
    quiet = cont.read(fake_proc(tmp_path / "b", 0.2, user=1100, idle=1100, steal=0, own=1000))
    got = cont.summarise(before, quiet)
    assert isinstance(got, Contention) and not got.contended and got.other_cpu_share == 0.0
    stolen = cont.read(fake_proc(tmp_path / "c", 0.2, user=1100, idle=1080, steal=20, own=1000))
    got = cont.summarise(before, stolen)
    assert isinstance(got, Contention) and got.contended and "steal" in (got.reason or "")


def test_an_unreadable_proc_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    missing = cont.safe_read(tmp_path / "nope")
    assert isinstance(missing, str) and "cannot read" in missing
    got = cont.summarise(missing, missing)
    assert isinstance(got, Unavailable) and "cannot read" in got.unavailable
