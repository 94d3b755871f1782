"""The dynamic batcher's queue and replicas, shared by the SimPy engine and the event loops.

Batcher semantics: a free replica with a non-empty queue launches a batch as soon as the queue holds
`max_batch` items (batch = the first requests FCFS that fit in `max_batch` items) or the oldest queued
request has waited `max_delay` (batch = all queued, up to `max_batch` items); `max_delay = 0` launches at
once with whatever is queued. With a bounded queue, an arrival that finds `capacity` requests waiting is
rejected.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INF = float("inf")
# a batch's service time (s) from its size, its longest sequence and the replica's idle time before it (s)
BatchTime = Callable[[int, int | None, float], float]
EPS_S = 1e-9  # float slack when a timer lands on an arrival or a deadline computed from it


@dataclass(frozen=True)
class BatchPolicy:
    """The dynamic batcher's knobs: items per batch, how long the oldest request may wait, queue bound."""

    max_batch: int
    max_delay_s: float
    capacity: int | None = None  # queued requests per queue; None: unbounded

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_delay_s < 0 or not np.isfinite(self.max_delay_s):
            raise ValueError(f"max_delay must be a finite number >= 0, got {self.max_delay_s}")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {self.capacity}")


class FcfsQueue:
    """One FCFS queue. Static: its arrivals are known (ids in arrival order), admitted lazily. Dynamic: pushed."""

    def __init__(
        self,
        env: Any,
        ids: np.ndarray | None,
        arrivals: np.ndarray,
        items: np.ndarray,
        policy: BatchPolicy,
        rejected: np.ndarray,
        item_list: list[int],
        arrival_list: list[float],
    ) -> None:
        self.env, self.items, self.policy, self.rejected = env, items, policy, rejected
        # per-request access happens per event: Python lists beat numpy scalars and searchsorted calls there
        self.A, self.item_list = arrival_list, item_list
        self.static = ids is not None
        self.ids = ids if ids is not None else np.empty(0, dtype=np.int64)
        self.id_list: list[int] = self.ids.tolist()
        self.ids_arrival: list[float] = arrivals[self.ids].tolist() if ids is not None else []
        self.unit_items = bool((items == 1).all())
        # cumulative items over this queue's arrivals (static, sizes vary): items between two looks by subtraction
        self.cum: list[int] | None = (
            np.cumsum(items[self.ids]).tolist() if ids is not None and not self.unit_items else None
        )
        self.adm = 0  # static: ids admitted so far
        self.acc: list[int] = []  # accepted request ids in FCFS order
        self.head = 0  # acc[head:] are waiting
        self.queued_items = 0
        self.leader: Replica | None = None
        self.waiters: list[tuple[Replica, Any]] = []  # (replica, its wake-up event in the SimPy engine)
        self.closed = self.static  # dynamic queues close when the dispatcher has pushed every arrival
        self.wake: Any = None  # dynamic: the idle replica's wake-up
        self.in_service = 0  # requests in service (for jsq)

    # -- admission
    def admit(self, now: float) -> None:
        if not self.static:
            return
        k = bisect.bisect_right(self.ids_arrival, now + EPS_S)
        if k <= self.adm:
            return
        new = self.id_list[self.adm : k]
        cap = self.policy.capacity
        if cap is None:
            self.acc.extend(new)
            if self.cum is None:
                self.queued_items += k - self.adm
            else:
                self.queued_items += self.cum[k - 1] - (self.cum[self.adm - 1] if self.adm else 0)
        else:
            for rid in new:  # queue length at each arrival: nothing left the queue since the last look
                if len(self.acc) - self.head >= cap:
                    self.rejected[rid] = True
                else:
                    self.acc.append(rid)
                    self.queued_items += self.item_list[rid]
        self.adm = k

    def push(self, rid: int) -> bool:
        cap = self.policy.capacity
        if cap is not None and len(self.acc) - self.head >= cap:
            self.rejected[rid] = True
            return False
        self.acc.append(rid)
        self.queued_items += self.item_list[rid]
        return True

    def waiting(self) -> int:
        return len(self.acc) - self.head

    def more_coming(self) -> bool:
        return self.adm < len(self.id_list) if self.static else not self.closed

    # -- batching decisions
    def launchable(self, now: float) -> bool:
        if self.head >= len(self.acc):
            return False
        p = self.policy
        return self.queued_items >= p.max_batch or now + EPS_S >= self.A[self.acc[self.head]] + p.max_delay_s

    def next_launch(self, now: float) -> float:
        """When a batch can launch next, from known arrivals (static); INF when nothing more will come."""
        p = self.policy
        if self.head < len(self.acc):
            deadline = self.A[self.acc[self.head]] + p.max_delay_s
        elif self.static and self.adm < len(self.id_list):
            deadline = self.ids_arrival[self.adm] + p.max_delay_s
        else:
            return INF
        if not self.static:
            return deadline
        need = p.max_batch - self.queued_items  # items still to arrive for a full batch
        if need <= 0:
            return now
        if self.unit_items:
            j = self.adm + need - 1
        else:
            assert self.cum is not None
            before = self.cum[self.adm - 1] if self.adm > 0 else 0
            j = bisect.bisect_left(self.cum, before + need)
        if p.capacity is not None:
            room = p.capacity - self.waiting()  # arrivals accepted before the queue is full
            if room <= 0:
                return deadline  # full: arrivals are rejected until a launch, so only the deadline is left
            if j - self.adm + 1 > room:
                j = self.adm + room - 1  # the queue fills (in requests) first: wake then and look again
        fill = self.ids_arrival[j] if j < len(self.id_list) else INF
        return min(deadline, fill)

    def take(self) -> tuple[list[int], int]:
        """The next batch (request ids, FCFS) and its size in items."""
        mb = self.policy.max_batch
        if self.unit_items:
            batch = self.acc[self.head : self.head + mb]
            total = len(batch)
        else:
            total, end, items = 0, self.head, self.item_list
            while end < len(self.acc) and total + items[self.acc[end]] <= mb:
                total += items[self.acc[end]]
                end += 1
            batch = self.acc[self.head : end]
        self.queued_items -= total
        self.head += len(batch)
        return batch, total


class OpenQueue:
    """A static queue without a bound, by positions: nothing is ever rejected, so the waiting requests are
    always ids[head:adm] and item counts come from a running sum. `OpenLoop` makes `FcfsQueue`'s decisions
    on it with the steps written out; `next_launch` is `FcfsQueue.next_launch` without the bound."""

    def __init__(
        self,
        ids: np.ndarray,
        arrivals: np.ndarray,
        items: np.ndarray,
        seq_len: np.ndarray | None,
        policy: BatchPolicy,
    ) -> None:
        self.policy = policy
        # sequence lengths in queue order: a batch's longest is max(seq[head:end])
        self.seq: list[int] | None = None if seq_len is None else seq_len[ids].tolist()
        self.mb, self.md = policy.max_batch, policy.max_delay_s
        self.id_list: list[int] = ids.tolist()
        self.Aq: list[float] = arrivals[ids].tolist()
        self.n = len(self.id_list)
        self.unit_items = bool((items[ids] == 1).all())
        self.cum0: list[int] = [0, *np.cumsum(items[ids]).tolist()]  # items of the first i arrivals
        self.adm = 0
        self.head = 0
        self.leader: Replica | None = None
        self.waiters: list[tuple[Replica, Any]] = []

    def next_launch(self, now: float) -> float:
        head, adm, cum0 = self.head, self.adm, self.cum0
        if head < adm:
            deadline = self.Aq[head] + self.md
        elif adm < self.n:
            deadline = self.Aq[adm] + self.md
        else:
            return INF
        need = self.mb - (cum0[adm] - cum0[head])
        if need <= 0:
            return now
        j = adm + need - 1 if self.unit_items else bisect.bisect_left(cum0, cum0[adm] + need) - 1
        if j >= self.n:
            return deadline
        fill = self.Aq[j]
        return fill if fill < deadline else deadline


@dataclass
class Replica:
    """One replica's counters."""

    index: int
    busy_s: float = 0.0
    energy_j: float = 0.0
    free_at: float = 0.0  # when its last batch ended: the idle time before the next one starts here


@dataclass
class World:
    """One simulation's inputs and its launched batches."""

    env: Any  # the SimPy environment of the SimPy engine; None in the event loops
    A: np.ndarray
    seq: list[int] | None
    draw: BatchTime
    power: Callable[[int], float] | None
    # per launched batch, in launch order; per-request arrays are filled from these once, at the end
    batch_ids: list[list[int]] = field(default_factory=list)
    batch_start: list[float] = field(default_factory=list)
    batch_done: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    power_memo: dict[int, float] = field(default_factory=dict)
    solo: bool = False  # one replica in the whole simulation: it may launch at a future instant directly

    def busy_power(self, size: int) -> float:
        w = self.power_memo.get(size)
        if w is None:
            assert self.power is not None
            w = self.power_memo[size] = self.power(size)
        return w


def launch(w: World, q: FcfsQueue, r: Replica, now: float) -> tuple[float, int]:
    """Take the next batch at `now` and record it; its service time and its requests."""
    batch, size = q.take()
    seq = None if w.seq is None else w.seq[batch[0]] if size == 1 else max(w.seq[i] for i in batch)
    svc = w.draw(size, seq, now - r.free_at)
    r.free_at = now + svc
    w.batch_ids.append(batch)
    w.batch_start.append(now)
    w.batch_done.append(now + svc)
    w.batch_sizes.append(size)
    r.busy_s += svc
    if w.power is not None:
        r.energy_j += w.busy_power(size) * svc
    return svc, len(batch)
