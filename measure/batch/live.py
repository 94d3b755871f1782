"""Live replay: serve a run's workload with the simulator's dynamic batcher under open-loop arrivals.

What runs: the run's workload, precision, scope, compile mode and thread count, on its device; one replica; a
real FCFS request queue; a batching loop doing real forward passes with the simulator's rule (launch when the
queue holds `max_batch` items, or the oldest request has waited `max_delay`; `max_delay = 0` launches at
once with whatever is queued; a batch is the first requests FCFS that fit in `max_batch` items).

What is counted: every request's scheduled arrival (fixed in advance from the seed), the time the generator
actually enqueued it, the batch start and the completion. Latency is taken from the *scheduled* arrival, so
a generator that falls behind adds its lag to the latency instead of hiding queueing (coordinated omission).

What is excluded: each batch size's first WARM_CALLS calls (allocation, lazy initialisation, compilation)
run before the clock starts. The generator is its own thread that sleeps until each arrival; torch's
intra-op threads are set to the run's count (the compute path), and the generator holds the GIL only to
enqueue (torch releases it inside operators).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from measure.batch.resume import request_from_run
from measure.device.precision import math_mode, prepare
from measure.device.target import parse_device
from measure.inprocess.plan import compile_prepared
from measure.inprocess.point import make_step
from measure.run import Run
from measure.workloads.builtin import build

WARM_CALLS = 3
MAX_LIVE_REQUESTS = 2_000_000


class LiveError(ValueError):
    """A live replay that cannot start (bad config, a precision the device cannot run); says why."""


@dataclass
class LiveRecord:
    """Per-request times in seconds from the replay's start, per-batch records, and how it was run."""

    scheduled_s: np.ndarray
    enqueue_s: np.ndarray
    start_s: np.ndarray
    done_s: np.ndarray
    batch_sizes: list[int]
    batch_service_s: list[float]
    threads: int
    notes: list[str] = field(default_factory=list)
    load_average_before: tuple[float, float, float] | None = None
    load_average_after: tuple[float, float, float] | None = None


def _load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None


def _placement(threads: int) -> tuple[set[int] | None, set[int] | None, str]:
    """CPUs for the compute threads and for the generator, and a sentence saying what was done."""
    cpus = _affinity()
    if cpus is None:
        return None, None, "threads not pinned (no CPU affinity on this OS)"
    ordered = sorted(cpus)
    if threads >= len(ordered):
        return (
            None,
            None,
            (
                f"not pinned: the run used {threads} threads on {len(ordered)} CPUs, so the generator shares CPUs with "
                "the compute (measure the run with fewer threads than CPUs to keep it off the compute path)"
            ),
        )
    compute, rest = set(ordered[:threads]), set(ordered[threads:])
    return compute, rest, f"compute pinned to CPUs {sorted(compute)}, generator to CPUs {sorted(rest)}"


def serve_live(
    run: Run,
    precision: str,
    arrivals_s: np.ndarray,
    items: np.ndarray,
    max_batch: int,
    max_delay_s: float,
    seq_len: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    user_workload: str | None = None,
) -> LiveRecord:
    """Replay the arrivals against the run's workload on its device and record every request's times."""
    n = int(arrivals_s.size)
    if n == 0 or n > MAX_LIVE_REQUESTS:
        raise LiveError(f"a live replay needs 1..{MAX_LIVE_REQUESTS:,} requests, got {n}")
    if int(items.max()) > max_batch:
        raise LiveError(f"a request has {int(items.max())} items, more than max_batch {max_batch}")
    if not any(p.precision == precision and p.status == "ok" for p in run.points):
        raise LiveError(f"run {run.short_id()} has no ok point at {precision}")
    req = request_from_run(run, user_workload)  # a user factory runs only when the user names it
    if run.workload.has_seq_len and seq_len is None:
        seqs = sorted({p.seq_len for p in run.points if p.seq_len is not None and p.precision == precision})
        seq_len = seqs[0]
    device = parse_device(req.device)
    previous_threads = torch.get_num_threads()
    threads = req.threads or previous_threads
    compute_cpus, generator_cpus, placement = _placement(threads)
    previous_affinity = _affinity()
    if compute_cpus:
        os.sched_setaffinity(0, compute_cpus)  # this (compute) thread; torch's pool threads inherit it
    torch.set_num_threads(threads)
    try:
        built = build(req.workload, req.params)
        with torch.inference_mode(), math_mode(precision):
            prepared = compile_prepared(
                prepare(precision, built.module.to(device.torch_device), device), req.compile_mode
            )
            steps: dict[int, Callable[[], object]] = {}
            for b in range(1, max_batch + 1):
                step = make_step(prepared, built.inputs(b, seq_len), device, req.scope)
                for _ in range(WARM_CALLS):
                    step()
                device.synchronize()
                steps[b] = step
            record = _replay(
                steps, device.synchronize, arrivals_s, items, max_batch, max_delay_s, clock, generator_cpus
            )
    finally:
        torch.set_num_threads(previous_threads)
        if compute_cpus and previous_affinity:
            os.sched_setaffinity(0, previous_affinity)
    record.threads = threads
    record.notes += [
        f"workload {run.workload.name} at {precision} on {req.device}, scope {req.scope}, compile {req.compile_mode}",
        f"torch intra-op threads {threads} (as the run); the generator is a separate sleeping thread; {placement}",
        f"each batch size 1..{max_batch} ran {WARM_CALLS} calls before the clock started (warm-up excluded)",
    ]
    return record


def _replay(
    steps: dict[int, Callable[[], object]],
    sync: Callable[[], None],
    arrivals_s: np.ndarray,
    items: np.ndarray,
    max_batch: int,
    max_delay_s: float,
    clock: Callable[[], float],
    generator_cpus: set[int] | None = None,
) -> LiveRecord:
    n = int(arrivals_s.size)
    sched = arrivals_s.astype(np.float64)
    item_list = [int(i) for i in items]
    enq = np.full(n, np.nan)
    start = np.full(n, np.nan)
    done = np.full(n, np.nan)
    queue: deque[int] = deque()
    cond = threading.Condition()
    load_before = _load_average()
    t0 = clock() + 0.05  # scheduled time 0, a moment after both threads are ready

    def generate() -> None:
        if generator_cpus:
            os.sched_setaffinity(0, generator_cpus)  # Linux: pins this thread only
        for i in range(n):
            target = t0 + sched[i]
            wait = target - clock()
            if wait > 0:
                time.sleep(wait)
            with cond:
                enq[i] = clock() - t0
                queue.append(i)
                cond.notify()

    gen = threading.Thread(target=generate, name="fleetwise-live-generator", daemon=True)
    sizes: list[int] = []
    services: list[float] = []
    served = 0
    gen.start()
    while served < n:
        with cond:
            while True:
                if queue:
                    full = len(queue) >= max_batch or sum(item_list[i] for i in queue) >= max_batch
                    oldest = (
                        enq[queue[0]] + t0
                    )  # the batcher knows when a request reached it, not its schedule
                    now = clock()
                    if full or now >= oldest + max_delay_s:
                        break
                    cond.wait(timeout=max(oldest + max_delay_s - now, 0.0))
                else:
                    cond.wait(timeout=0.05)
            batch: list[int] = []
            total = 0
            while queue and total + item_list[queue[0]] <= max_batch:
                i = queue.popleft()
                batch.append(i)
                total += item_list[i]
        s = clock()
        steps[total]()
        sync()
        d = clock()
        for i in batch:
            start[i] = s - t0
            done[i] = d - t0
        sizes.append(total)
        services.append(d - s)
        served += len(batch)
    gen.join()
    return LiveRecord(
        scheduled_s=sched,
        enqueue_s=enq,
        start_s=start,
        done_s=done,
        batch_sizes=sizes,
        batch_service_s=services,
        threads=torch.get_num_threads(),
        load_average_before=load_before,
        load_average_after=_load_average(),
    )
