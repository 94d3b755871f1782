"""The serving simulator core (SimPy): replicas with dynamic batchers behind a router, replaying a request stream.

Pure: arrays in, per-request times and per-replica counters out; no files, no printing. Event-efficient by
design (SimPy costs microseconds per event): arrivals are known in advance, so a queue that no router decides
at run time (central, random, round robin) admits them lazily when a replica looks, and an idle replica sleeps
exactly until its next batch can launch. Only join-the-shortest-queue needs an event per arrival.

Batcher semantics: a free replica with a non-empty queue launches a batch as soon as the queue holds
`max_batch` items (batch = the first requests FCFS that fit in `max_batch` items) or the oldest queued
request has waited `max_delay` (batch = all queued, up to `max_batch` items); `max_delay = 0` launches at
once with whatever is queued. With a bounded queue, an arrival that finds `capacity` requests waiting is
rejected.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import simpy

Router = Literal["central", "random", "rr", "jsq"]
ROUTERS: tuple[str, ...] = ("central", "random", "rr", "jsq")
INF = float("inf")
# a batch's service time (s) from its size, its longest sequence and the replica's idle time before it (s)
Draw = Callable[[int, int | None, float], float]
# at a look: (requests decided so far, start times, done times (NaN where undecided), utilization) -> stop?
Stop = Callable[[int, np.ndarray, np.ndarray, float], bool]
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


@dataclass
class SimOutput:
    """Per-request times (NaN where rejected) and per-replica counters."""

    start_s: np.ndarray
    done_s: np.ndarray
    rejected: np.ndarray  # bool
    batch_sizes: list[int]  # items per launched batch, in launch order
    busy_s: np.ndarray  # per replica
    busy_energy_j: np.ndarray  # per replica: sum of busy power(batch) x service time
    end_s: float
    simulated: (
        int  # requests [0, simulated) are decided (served or rejected); all of them unless stopped early
    )
    seq_over: int = 0  # batches whose longest sequence exceeded every measured one


class _Queue:
    """One FCFS queue. Static: its arrivals are known (ids in arrival order), admitted lazily. Dynamic: pushed."""

    def __init__(
        self,
        env: simpy.Environment,
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
        self.leader: _Replica | None = None
        self.waiters: list[tuple[_Replica, _Wake]] = []
        self.closed = self.static  # dynamic queues close when the dispatcher has pushed every arrival
        self.wake: simpy.Event | None = None  # dynamic: the idle replica's wake-up
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


class _Wake(simpy.Event):
    """An idle replica's wake-up, which the replica handing the queue over may set for a later time."""

    def succeed_at(self, delay: float) -> None:
        # what Event.succeed and Timeout do, with a delay: the outcome is set, then the event is scheduled
        self._ok = True
        self._value = None
        self.env.schedule(self, delay=max(delay, 0.0))


@dataclass
class _Replica:
    index: int
    busy_s: float = 0.0
    energy_j: float = 0.0
    free_at: float = 0.0  # when its last batch ended: the idle time before the next one starts here


@dataclass
class _World:
    env: simpy.Environment
    A: np.ndarray
    seq: list[int] | None
    draw: Draw
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


def _launch(w: _World, q: _Queue, r: _Replica, now: float) -> tuple[float, int]:
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


def _serve(w: _World, q: _Queue, r: _Replica) -> Generator[simpy.Event, Any, None]:
    env = w.env
    while True:
        now = env.now
        q.admit(now)
        if q.launchable(now):
            svc, k = _launch(w, q, r, now)
            if q.waiters and (q.waiting() or q.more_coming()):
                waiter, ev = q.waiters.pop()  # another idle replica takes over watching the queue
                t = q.next_launch(now) if q.static and q.leader is None else INF
                if t == INF:
                    ev.succeed()
                else:  # static arrivals: it sleeps straight until the next launch (one event, not two)
                    q.leader = waiter
                    ev.succeed_at(t - now)
            q.in_service += k
            yield env.timeout(svc)
            q.in_service -= k
            continue
        if q.static:
            t = q.next_launch(now)
            if t == INF:
                for _, ev in q.waiters:  # nothing will ever come: every idle replica can stop
                    ev.succeed()
                q.waiters.clear()
                return
            if w.solo:
                # the only replica: nothing happens before t, so it launches then in this step (one event)
                at = now + max(t - now, 0.0)  # the clock a timeout to t would show
                q.admit(at)
                if q.launchable(at):
                    svc, _ = _launch(w, q, r, at)
                    yield env.timeout(at - now + svc)
                    continue
            if q.leader is None:
                q.leader = r
                yield env.timeout(max(t - now, 0.0))
                q.leader = None
            else:
                ev = _Wake(env)
                q.waiters.append((r, ev))
                yield ev
                if q.leader is r:
                    q.leader = None
            continue
        # dynamic (jsq): the dispatcher wakes us on an arrival; a deadline also wakes us
        if not q.waiting() and q.closed:
            return
        q.wake = env.event()
        if q.waiting():
            yield env.any_of([q.wake, env.timeout(max(q.next_launch(now) - now, 0.0))])
        else:
            yield q.wake
        q.wake = None


def _dispatch_jsq(w: _World, queues: list[_Queue]) -> Generator[simpy.Event, Any, None]:
    env = w.env
    for rid, t in enumerate(w.A.tolist()):
        dt = t - env.now
        if dt > 0:
            yield env.timeout(dt)
        q = min(queues, key=lambda x: x.waiting() + x.in_service)  # fewest outstanding, lowest index on ties
        pushed = q.push(rid)
        if (
            pushed
            and q.wake is not None
            and not q.wake.triggered
            and (q.waiting() == 1 or q.queued_items >= q.policy.max_batch or q.policy.max_delay_s == 0)
        ):
            q.wake.succeed()
    for q in queues:
        q.closed = True
        if q.wake is not None and not q.wake.triggered:
            q.wake.succeed()


def simulate(
    arrival_s: np.ndarray,
    items: np.ndarray,
    seq_len: np.ndarray | None,
    replicas: int,
    router: Router,
    policy: BatchPolicy,
    draw: Draw,
    rng: np.random.Generator,
    busy_power_w: Callable[[int], float] | None = None,
    looks: Sequence[int] = (),
    stop: Stop | None = None,
) -> SimOutput:
    """Replay the stream through `replicas` batching replicas behind `router`.

    Every request runs to completion, unless `stop` says so at a look: the clock paused at the arrival of
    request k (k in `looks`). Pausing changes nothing (the event order is kept), so the requests decided
    by then have exactly the times a full-length run gives them.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if router not in ROUTERS:
        raise ValueError(f"unknown router {router!r}: use {', '.join(ROUTERS)}")
    if int(items.max()) > policy.max_batch:
        raise ValueError(f"a request has {int(items.max())} items, more than max_batch {policy.max_batch}")
    n = arrival_s.size
    env = simpy.Environment()
    w = _World(env, arrival_s, seq_len.tolist() if seq_len is not None else None, draw, busy_power_w)
    w.solo = replicas == 1 and router != "jsq"
    rejected = np.zeros(n, dtype=bool)
    reps = [_Replica(i) for i in range(replicas)]
    ids = np.arange(n, dtype=np.int64)
    item_list: list[int] = items.tolist()
    arrival_list: list[float] = arrival_s.tolist()
    queues: list[_Queue] = []
    if router == "central":
        q = _Queue(env, ids, arrival_s, items, policy, rejected, item_list, arrival_list)
        queues = [q]
        for r in reps:
            env.process(_serve(w, q, r))
    elif router in ("random", "rr"):
        assign = rng.integers(0, replicas, n) if router == "random" else ids % replicas
        for r in reps:
            q = _Queue(
                env, ids[assign == r.index], arrival_s, items, policy, rejected, item_list, arrival_list
            )
            queues.append(q)
            env.process(_serve(w, q, r))
    else:
        for r in reps:
            q = _Queue(env, None, arrival_s, items, policy, rejected, item_list, arrival_list)
            queues.append(q)
            env.process(_serve(w, q, r))
        env.process(_dispatch_jsq(w, queues))
    simulated = n
    for k in looks if stop is not None else ():
        if not 0 < k <= n or arrival_list[k - 1] <= env.now:
            continue
        env.run(until=arrival_list[k - 1])
        start, done = _times(w, n)
        decided = ~np.isnan(start) | rejected
        prefix = n if decided.all() else int(np.argmin(decided))
        busy = sum(r.busy_s for r in reps) / (replicas * max(env.now, max(w.batch_done, default=0.0)))
        assert stop is not None
        if stop(prefix, start, done, busy):
            simulated = prefix
            break
    else:
        env.run()
    start, done = _times(w, n)
    return SimOutput(
        start_s=start,
        done_s=done,
        rejected=rejected,
        batch_sizes=w.batch_sizes,
        busy_s=np.array([r.busy_s for r in reps]),
        busy_energy_j=np.array([r.energy_j for r in reps]),
        # stopped: batches launched before the pause still run to their end
        end_s=max(float(env.now), max(w.batch_done, default=0.0)),
        simulated=simulated,
    )


def _times(w: _World, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-request start and done times of every launched batch (NaN: not launched, or rejected)."""
    start, done = np.full(n, np.nan), np.full(n, np.nan)
    if w.batch_ids:
        lens = np.fromiter((len(b) for b in w.batch_ids), dtype=np.int64, count=len(w.batch_ids))
        idx = np.fromiter(itertools.chain.from_iterable(w.batch_ids), dtype=np.int64, count=int(lens.sum()))
        start[idx] = np.repeat(np.asarray(w.batch_start), lens)
        done[idx] = np.repeat(np.asarray(w.batch_done), lens)
    return start, done
