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

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from measure.batch.resume import request_from_run
from measure.core.pacing import SPIN_S, wait_until
from measure.core.stats import mean_ci_halfwidth
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


CANARY_CALLS = 30
SWITCH_INTERVAL_S = 0.0005  # the generator waits at most this long for the GIL (Python's default is 5 ms)


@dataclass(frozen=True)
class CanaryReading:
    """The canary setting (batch 1 back to back on the session's prepared model): mean, its 95% CI, median."""

    mean_ms: float
    ci_half_ms: float
    median_ms: float
    calls: int


@dataclass(frozen=True)
class CurveSamples:
    """Batch service times measured through the live harness, one request of b items at a time after an idle
    gap drawn as a replica at `rate_rps` would see (exponential, mean 1 / rate)."""

    rate_rps: float
    samples_ms: dict[int, list[float]]


class LiveSession:
    """A run's workload prepared once on its device, pinned as the run ran, for a validation's whole life:
    the canary, the curves measured through the harness and the live levels share one model and one process.
    Use as a context manager: threads and affinity are restored on exit."""

    def __init__(
        self,
        run: Run,
        precision: str,
        max_batch: int,
        seq_len: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        user_workload: str | None = None,
    ) -> None:
        if not any(p.precision == precision and p.status == "ok" for p in run.points):
            raise LiveError(f"run {run.short_id()} has no ok point at {precision}")
        self.run, self.precision, self.max_batch, self.clock = run, precision, max_batch, clock
        self._req = request_from_run(run, user_workload)  # a user factory runs only when the user names it
        if run.workload.has_seq_len and seq_len is None:
            seqs = sorted(
                {p.seq_len for p in run.points if p.seq_len is not None and p.precision == precision}
            )
            seq_len = seqs[0]
        self.seq_len = seq_len
        self._device = parse_device(self._req.device)
        self.steps: dict[int, Callable[[], object]] = {}
        self.threads = 0
        self.notes: list[str] = []

    def __enter__(self) -> LiveSession:
        req, device = self._req, self._device
        self._previous_threads = torch.get_num_threads()
        self.threads = req.threads or self._previous_threads
        compute_cpus, self._generator_cpus, placement = _placement(self.threads)
        self._previous_affinity = _affinity()
        self._pinned = bool(compute_cpus)
        if compute_cpus:
            os.sched_setaffinity(0, compute_cpus)  # this (compute) thread; torch's pool threads inherit it
        torch.set_num_threads(self.threads)
        self._modes = contextlib.ExitStack()
        try:
            built = build(req.workload, req.params)
            self._modes.enter_context(torch.inference_mode())
            self._modes.enter_context(math_mode(self.precision))
            prepared = compile_prepared(
                prepare(self.precision, built.module.to(device.torch_device), device), req.compile_mode
            )
            for b in range(1, self.max_batch + 1):
                step = make_step(prepared, built.inputs(b, self.seq_len), device, req.scope)
                for _ in range(WARM_CALLS):
                    step()
                device.synchronize()
                self.steps[b] = step
        except BaseException:
            self.__exit__(None, None, None)
            raise
        run = self.run
        self.notes = [
            f"workload {run.workload.name} at {self.precision} on {req.device}, scope {req.scope}, "
            f"compile {req.compile_mode}",
            f"torch intra-op threads {self.threads} (as the run); the generator is a separate sleeping thread; "
            f"{placement}",
            f"each batch size 1..{self.max_batch} ran {WARM_CALLS} calls before the clock started (warm-up "
            "excluded); one prepared model serves the canary, the curves and every level",
            f"the generator spins the last {SPIN_S * 1000:g} ms before a send and Python's GIL switch interval "
            f"is {SWITCH_INTERVAL_S * 1000:g} ms while a replay runs (default 5 ms), so a send is not held "
            "behind the compute thread's Python",
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        self._modes.close()
        torch.set_num_threads(self._previous_threads)
        if self._pinned and self._previous_affinity:
            os.sched_setaffinity(0, self._previous_affinity)

    def canary(self, calls: int = CANARY_CALLS) -> CanaryReading:
        """The canary: batch 1 back to back, `calls` times (the setting every run measures first)."""
        step, sync, clock = self.steps[1], self._device.synchronize, self.clock
        ms = []
        for _ in range(calls):
            s = clock()
            step()
            sync()
            ms.append((clock() - s) * 1000.0)
        return CanaryReading(float(np.mean(ms)), float(mean_ci_halfwidth(ms)), float(np.median(ms)), len(ms))

    def curve(self, rate_rps: float, calls_per_size: int, seed: int) -> CurveSamples:
        """Every batch size's service time in the harness's conditions: a generator thread wakes at the level's
        rate on its own CPUs and takes the queue's lock as a live send does, while this thread runs each batch
        after an idle gap ~ Exp(mean 1 / rate_rps) (the idle periods of a single-server queue with Poisson
        arrivals at that rate). Sizes are interleaved in a seeded random order, as live batches are."""
        if not 0 < rate_rps <= 1e6 or not 1 <= calls_per_size <= 10_000:
            raise LiveError(
                f"a curve needs a rate in (0, 1e6] req/s and 1..10,000 calls per size, got {rate_rps:g}, "
                f"{calls_per_size}"
            )
        rng = np.random.default_rng(seed)
        sizes = rng.permutation(np.repeat(np.arange(1, self.max_batch + 1), calls_per_size))
        gaps = rng.exponential(1.0 / rate_rps, sizes.size)
        tick_rng = np.random.default_rng(seed + 1)
        out: dict[int, list[float]] = {b: [] for b in range(1, self.max_batch + 1)}
        cond, stop = threading.Condition(), threading.Event()
        step_for, sync, clock = self.steps, self._device.synchronize, self.clock

        def tick() -> None:
            if self._generator_cpus:
                os.sched_setaffinity(0, self._generator_cpus)
            while not stop.wait(tick_rng.exponential(1.0 / rate_rps)):
                with cond:
                    cond.notify()

        ticker = threading.Thread(target=tick, name="fleetwise-curve-generator", daemon=True)
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        ticker.start()
        try:
            for b, gap in zip(sizes, gaps, strict=True):
                wait_until(clock() + gap, clock)
                s = clock()
                step_for[int(b)]()
                sync()
                out[int(b)].append((clock() - s) * 1000.0)
        finally:
            stop.set()
            ticker.join()
            sys.setswitchinterval(previous)
        return CurveSamples(rate_rps, out)

    def replay(self, arrivals_s: np.ndarray, items: np.ndarray, max_delay_s: float) -> LiveRecord:
        """Replay the arrivals against the prepared model and record every request's times."""
        n = int(arrivals_s.size)
        if n == 0 or n > MAX_LIVE_REQUESTS:
            raise LiveError(f"a live replay needs 1..{MAX_LIVE_REQUESTS:,} requests, got {n}")
        if int(items.max()) > self.max_batch:
            raise LiveError(f"a request has {int(items.max())} items, more than max_batch {self.max_batch}")
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            record = _replay(
                self.steps,
                self._device.synchronize,
                arrivals_s,
                items,
                self.max_batch,
                max_delay_s,
                self.clock,
                self._generator_cpus,
            )
        finally:
            sys.setswitchinterval(previous)
        record.threads = self.threads
        record.notes = list(self.notes)
        return record


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
    """One replay in a session of its own (the session's model is prepared for this replay only)."""
    with LiveSession(run, precision, max_batch, seq_len, clock, user_workload) as session:
        return session.replay(arrivals_s, items, max_delay_s)


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
            wait_until(target, clock)
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
