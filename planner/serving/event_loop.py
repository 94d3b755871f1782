"""The serving simulator's event loops without SimPy, for queues no router decides at run time.

SimPy costs a few microseconds per event in its own machinery; a sizing grid takes about two million events,
so the static routers (central, random, round robin) run here: the same process bodies as the SimPy engine's
`_serve`, in the same event order, giving the same times bit for bit (a test holds them to the SimPy engine
on random systems). Join-the-shortest-queue stays on SimPy: its dispatcher decides at each arrival.
"""

from __future__ import annotations

import bisect
import heapq

from planner.serving.batch_queue import EPS_S, INF, FcfsQueue, OpenQueue, Replica, World, launch

# what a process does on resuming, before its loop's next pass: nothing, stop leading, stop waiting
NONE, LEAD, WAIT = 0, 1, 2


class Loop:
    """The static-queue processes of `_serve` without SimPy: the same bodies, the same event order.

    SimPy orders events by (time, priority, insertion); every event here is NORMAL priority (the processes'
    URGENT starts are the first bodies, run in creation order), so a heap on (time, insertion) pops them in
    SimPy's order, and each time is computed with SimPy's arithmetic (now + delay). A body is the code of
    `_serve` between two yields; `post` is what `_serve` does on resuming before its loop's next pass.
    """

    def __init__(self, w: World, queue_of: list[FcfsQueue], reps: list[Replica]) -> None:
        self.w, self.queue_of, self.reps = w, queue_of, reps
        self.heap: list[tuple[float, int, int, int]] = []
        self.eid = 0
        self.now = 0.0
        for r in reps:  # the processes' starts, in creation order, before any event at time 0
            self._body(r, queue_of[r.index], 0.0)

    def _at(self, t: float, r: Replica, post: int) -> None:
        heapq.heappush(self.heap, (t, self.eid, r.index, post))
        self.eid += 1

    def _body(self, r: Replica, q: FcfsQueue, now: float) -> None:
        w = self.w
        q.admit(now)
        if q.launchable(now):
            svc, _ = launch(w, q, r, now)
            if q.waiters and (q.waiting() or q.more_coming()):
                waiter, _ev = q.waiters.pop()
                t = q.next_launch(now) if q.leader is None else INF
                if t == INF:
                    self._at(now, waiter, WAIT)
                else:
                    q.leader = waiter
                    self._at(now + max(t - now, 0.0), waiter, WAIT)
            self._at(now + svc, r, NONE)
            return
        t = q.next_launch(now)
        if t == INF:
            for waiter, _ev in q.waiters:
                self._at(now, waiter, WAIT)
            q.waiters.clear()
            return
        if w.solo:
            at = now + max(t - now, 0.0)
            q.admit(at)
            if q.launchable(at):
                svc, _ = launch(w, q, r, at)
                self._at(now + (at - now + svc), r, NONE)
                return
        if q.leader is None:
            q.leader = r
            self._at(now + max(t - now, 0.0), r, LEAD)
        else:
            q.waiters.append((r, None))

    def run(self, until: float = INF) -> None:
        """Every event before `until` (SimPy's run(until): its stop event, at now + (until - now) like every
        SimPy time, goes before the events at that time)."""
        heap, reps, queue_of = self.heap, self.reps, self.queue_of
        pop = heapq.heappop
        if until != INF:
            until = self.now + (until - self.now)
        while heap and heap[0][0] < until:
            t, _, i, post = pop(heap)
            self.now = t
            r, q = reps[i], queue_of[i]
            if post == LEAD or (post == WAIT and q.leader is r):
                q.leader = None
            self._body(r, q, t)
        if until != INF:
            self.now = until


class OpenLoop:
    """`Loop` over `OpenQueue`s, the body written out in the loop: the same decisions and event order, without
    a method call per queue step (the body runs once per event, about two million times in a sizing grid).
    The processes' starts are events at time 0 inserted first, so they run first and in creation order."""

    def __init__(self, w: World, queue_of: list[OpenQueue], reps: list[Replica]) -> None:
        self.w, self.open_of, self.reps = w, queue_of, reps
        self.heap = [(0.0, r.index, r.index, NONE) for r in reps]
        self.eid = len(reps)
        self.now = 0.0

    def run(self, until: float = INF) -> None:
        """Every event before `until`, as `Loop.run`. One pass is `_serve`'s body for the replica whose event
        it is; a launch is `launch` and `FcfsQueue.take` by positions (the batch is ids[head:end])."""
        heap, reps, queue_of, w = self.heap, self.reps, self.open_of, self.w
        pop, push, after = heapq.heappop, heapq.heappush, bisect.bisect_right
        solo, eid = w.solo, self.eid
        draw, power, watts = w.draw, w.power, w.power_memo
        record_ids, record_start, record_done = w.batch_ids.append, w.batch_start.append, w.batch_done.append
        record_size = w.batch_sizes.append
        stop = INF if until == INF else self.now + (until - self.now)
        now = self.now
        while heap and heap[0][0] < stop:
            now, _, i, post = pop(heap)
            r, q = reps[i], queue_of[i]
            if post == LEAD or (post == WAIT and q.leader is r):
                q.leader = None
            Aq, cum0 = q.Aq, q.cum0
            adm = after(Aq, now + EPS_S)
            if adm > q.adm:
                q.adm = adm
            else:
                adm = q.adm
            head, at = q.head, now
            if not (head < adm and (cum0[adm] - cum0[head] >= q.mb or now + EPS_S >= Aq[head] + q.md)):
                if head >= adm and adm >= q.n:  # next_launch is INF: nothing waits, nothing more comes
                    for waiter, _ev in q.waiters:
                        push(heap, (now, eid, waiter.index, WAIT))
                        eid += 1
                    q.waiters.clear()
                    continue
                if q.leader is not None and not solo:  # another replica watches the queue: wait
                    q.waiters.append((r, None))
                    continue
                t = q.next_launch(now)
                launch = False
                if solo:  # the only replica: it launches at t in this pass when the queue allows
                    at = now + (t - now if t > now else 0.0)
                    adm = after(Aq, at + EPS_S)
                    if adm > q.adm:
                        q.adm = adm
                    else:
                        adm = q.adm
                    head = q.head
                    launch = head < adm and (cum0[adm] - cum0[head] >= q.mb or at + EPS_S >= Aq[head] + q.md)
                if not launch:
                    if q.leader is None:
                        q.leader = r
                        push(heap, (now + (t - now if t > now else 0.0), eid, i, LEAD))
                        eid += 1
                    else:
                        q.waiters.append((r, None))
                    continue
            mb = q.mb
            if q.unit_items:
                end = head + mb if head + mb < adm else adm
            else:
                end = after(cum0, cum0[head] + mb) - 1
                if end > adm:
                    end = adm
            q.head = end
            size = cum0[end] - cum0[head]
            sq = q.seq
            seq = None if sq is None else sq[head] if size == 1 else max(sq[head:end])
            svc = draw(size, seq, at - r.free_at)
            r.free_at = at + svc
            record_ids(q.id_list[head:end])
            record_start(at)
            record_done(at + svc)
            record_size(size)
            r.busy_s += svc
            if power is not None:
                watt = watts.get(size)
                r.energy_j += (w.busy_power(size) if watt is None else watt) * svc
            if q.waiters and (end < adm or adm < q.n):  # never when solo: the launch was at now
                waiter = q.waiters.pop()[0]
                t = q.next_launch(now) if q.leader is None else INF
                if t == INF:
                    push(heap, (now, eid, waiter.index, WAIT))
                else:
                    q.leader = waiter
                    push(heap, (now + (t - now if t > now else 0.0), eid, waiter.index, WAIT))
                eid += 1
            push(heap, (now + (at - now + svc), eid, i, NONE))  # at == now unless solo: now + svc
            eid += 1
        self.eid = eid
        self.now = stop if stop != INF else now
