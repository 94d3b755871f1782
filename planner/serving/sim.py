"""The serving simulator core: replicas with dynamic batchers behind a router, replaying a request stream.

Pure: arrays in, per-request times and per-replica counters out; no files, no printing. Event-efficient by
design (an event costs microseconds): arrivals are known in advance, so a queue that no router decides
at run time (central, random, round robin) admits them lazily when a replica looks, and an idle replica sleeps
exactly until its next batch can launch. Only join-the-shortest-queue needs an event per arrival.

The batcher's rules are in `batch_queue`; the static routers run in `event_loop` (the same bodies without
SimPy's per-event cost, identical results), and the SimPy engine here serves join-the-shortest-queue and is
the reference the event loops are tested against.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import simpy

from planner.serving.batch_queue import (
    INF,
    BatchPolicy,
    BatchTime,
    FcfsQueue,
    OpenQueue,
    Replica,
    World,
    launch,
)
from planner.serving.event_loop import Loop, OpenLoop
from planner.serving.routing import BATCH_ROUTERS, router_for

__all__ = ["ROUTERS", "BatchPolicy", "BatchTime", "Router", "SimOutput", "simulate"]

Router = Literal["central", "random", "round-robin", "least-outstanding"]
ROUTERS: tuple[str, ...] = BATCH_ROUTERS
# at a look: (requests decided so far, start times, done times (NaN where undecided), utilization) -> stop?
Stop = Callable[[int, np.ndarray, np.ndarray, float], bool]


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


class _Wake(simpy.Event):
    """An idle replica's wake-up, which the replica handing the queue over may set for a later time."""

    def succeed_at(self, delay: float) -> None:
        # what Event.succeed and Timeout do, with a delay: the outcome is set, then the event is scheduled
        self._ok = True
        self._value = None
        self.env.schedule(self, delay=max(delay, 0.0))


def _serve(w: World, q: FcfsQueue, r: Replica) -> Generator[simpy.Event, Any, None]:
    env = w.env
    while True:
        now = env.now
        q.admit(now)
        if q.launchable(now):
            svc, k = launch(w, q, r, now)
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
                    svc, _ = launch(w, q, r, at)
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
        # dynamic (least-outstanding): the dispatcher wakes us on an arrival; a deadline also wakes us
        if not q.waiting() and q.closed:
            return
        q.wake = env.event()
        if q.waiting():
            yield env.any_of([q.wake, env.timeout(max(q.next_launch(now) - now, 0.0))])
        else:
            yield q.wake
        q.wake = None


def _dispatch_jsq(w: World, queues: list[FcfsQueue]) -> Generator[simpy.Event, Any, None]:
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
    draw: BatchTime,
    rng: np.random.Generator,
    busy_power_w: Callable[[int], float] | None = None,
    looks: Sequence[int] = (),
    stop: Stop | None = None,
    engine: Literal["loop", "simpy"] = "loop",
) -> SimOutput:
    """Replay the stream through `replicas` batching replicas behind `router`.

    Every request runs to completion, unless `stop` says so at a look: the clock paused at the arrival of
    request k (k in `looks`). Pausing changes nothing (the event order is kept), so the requests decided
    by then have exactly the times a full-length run gives them.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    router = router_for(router, "batch")  # type: ignore[assignment]
    if int(items.max()) > policy.max_batch:
        raise ValueError(f"a request has {int(items.max())} items, more than max_batch {policy.max_batch}")
    n = arrival_s.size
    env = simpy.Environment()
    w = World(env, arrival_s, seq_len.tolist() if seq_len is not None else None, draw, busy_power_w)
    w.solo = replicas == 1 and router != "least-outstanding"
    rejected = np.zeros(n, dtype=bool)
    reps = [Replica(i) for i in range(replicas)]
    ids = np.arange(n, dtype=np.int64)
    # the arrivals of each static queue (central: one queue for every replica); least-outstanding decides at run time
    if router == "central":
        static: list[np.ndarray] | None = [ids]
    elif router in ("random", "round-robin"):
        assign = rng.integers(0, replicas, n) if router == "random" else ids % replicas
        static = [ids[assign == r.index] for r in reps]
    else:
        static = None
    loop: Loop | OpenLoop | None = None
    queues: list[FcfsQueue] = []
    if static is not None and engine == "loop" and policy.capacity is None:
        open_qs = [OpenQueue(q_ids, arrival_s, items, seq_len, policy) for q_ids in static]
        loop = OpenLoop(w, open_qs * replicas if router == "central" else open_qs, reps)
    else:
        args = (arrival_s, items, policy, rejected, items.tolist(), arrival_s.tolist())
        queues = [FcfsQueue(env, q_ids, *args) for q_ids in static or [None] * replicas]  # type: ignore[list-item]
        queue_of = queues * replicas if router == "central" else queues
        if static is not None and engine == "loop":
            loop = Loop(w, queue_of, reps)
        else:
            for r in reps:
                env.process(_serve(w, queue_of[r.index], r))
            if router == "least-outstanding":
                env.process(_dispatch_jsq(w, queues))

    def clock() -> float:
        return loop.now if loop is not None else float(env.now)

    simulated = n
    times = _Times(n)
    for k in looks if stop is not None else ():
        if not 0 < k <= n or float(arrival_s[k - 1]) <= clock():
            continue
        if loop is not None:
            loop.run(until=float(arrival_s[k - 1]))
        else:
            env.run(until=float(arrival_s[k - 1]))
        start, done = times.update(w)
        decided = ~np.isnan(start) | rejected
        prefix = n if decided.all() else int(np.argmin(decided))
        busy = sum(r.busy_s for r in reps) / (replicas * max(clock(), max(w.batch_done, default=0.0)))
        assert stop is not None
        if stop(prefix, start, done, busy):
            simulated = prefix
            break
    else:
        if loop is not None:
            loop.run()
        else:
            env.run()
    start, done = times.update(w)
    return SimOutput(
        start_s=start,
        done_s=done,
        rejected=rejected,
        batch_sizes=w.batch_sizes,
        busy_s=np.array([r.busy_s for r in reps]),
        busy_energy_j=np.array([r.energy_j for r in reps]),
        # stopped: batches launched before the pause still run to their end
        end_s=max(clock(), max(w.batch_done, default=0.0)),
        simulated=simulated,
    )


class _Times:
    """Per-request start and done times (NaN: not launched, or rejected), filled from the batches launched
    since the last call: a look costs the batches since the previous look, not every batch so far."""

    def __init__(self, n: int) -> None:
        self.start, self.done = np.full(n, np.nan), np.full(n, np.nan)
        self.filled = 0

    def update(self, w: World) -> tuple[np.ndarray, np.ndarray]:
        new = w.batch_ids[self.filled :]
        if new:
            lens = np.fromiter((len(b) for b in new), dtype=np.int64, count=len(new))
            idx = np.fromiter(itertools.chain.from_iterable(new), dtype=np.int64, count=int(lens.sum()))
            self.start[idx] = np.repeat(np.asarray(w.batch_start[self.filled :]), lens)
            self.done[idx] = np.repeat(np.asarray(w.batch_done[self.filled :]), lens)
            self.filled += len(new)
        return self.start, self.done
