"""A reactive autoscaler inside the engine simulation, with Kubernetes' HorizontalPodAutoscaler rule.

Every `interval_s` it reads one metric over the ready replicas: `concurrency` (requests in flight per
replica, running and waiting: Knative/KServe's default), `queue` (waiting requests per replica: vLLM's
num_requests_waiting, what KEDA setups scale on) or `kv` (KV-cache use, 0..1: vLLM's kv_cache_usage_perc). As the
HPA does, it wants ceil(ready x mean / target) replicas, and holds the current count while the mean is within
`tolerance` of the target. Scale-up is at once: a new replica holds its device from that moment and serves
`startup_s` later (model load, graph capture). Scale-down waits for the highest wish of the last `cooldown_s`
(the HPA's stabilisation window) to fall below the count; a replica scaled down leaves the router at once and
holds its device until its last request ends (drained, as a preStop hook drains a pod).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator
from typing import Literal

import simpy
from pydantic import Field, ValidationError, model_validator

from measure.run.types import ResultModel
from planner.llm.replica import Replica

Metric = Literal["concurrency", "queue", "kv"]
METRICS: tuple[str, ...] = ("concurrency", "queue", "kv")


class AutoscalePolicy(ResultModel):
    """What the autoscaler reads, what it aims for, and how fast it may move."""

    metric: Metric
    target: float = Field(gt=0, le=100_000)
    interval_s: float = Field(default=15.0, ge=1, le=600)
    startup_s: float = Field(default=0.0, ge=0, le=3600)
    cooldown_s: float = Field(default=300.0, ge=0, le=3600)
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    min_replicas: int = Field(default=1, ge=1, le=10_000)
    max_replicas: int = Field(default=256, ge=1, le=10_000)

    @model_validator(mode="after")
    def _sane(self) -> AutoscalePolicy:
        if self.metric == "kv" and self.target > 1:
            raise ValueError(f"a kv target is a share of the KV cache, 0..1, got {self.target:g}")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        return self

    def label(self) -> str:
        """The policy in words, all but its start-up time (which a day compares)."""
        what = {"concurrency": "requests in flight", "queue": "waiting requests", "kv": "KV-cache use"}
        return (
            f"{what[self.metric]} per replica -> {self.target:.3g}, read every {self.interval_s:g} s "
            f"(±{self.tolerance:.0%}); scale-down after {self.cooldown_s:g} s "
            f"stable; {self.min_replicas}..{self.max_replicas} replicas"
        )


def autoscale_policy(text: str, **knobs: float) -> tuple[AutoscalePolicy, bool]:
    """The policy from `metric:target` and its knobs (interval_s, cooldown_s, ...), or one line saying which
    knob is out of range; and whether the target is `auto` (concurrency only: the day sets it from its peak hour,
    1 until then)."""
    metric, target = parse_autoscale(text)
    try:
        policy = AutoscalePolicy(metric=metric, target=target or 1.0, **knobs)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "policy"
        raise ValueError(f"autoscaler {where}: {str(e['msg']).removeprefix('Value error, ')}") from None
    return policy, target is None


def parse_autoscale(text: str) -> tuple[Metric, float | None]:
    """`metric:target` from the command line, e.g. `concurrency:16`, `kv:0.7` or `concurrency:auto` (None)."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or name not in METRICS:
        raise ValueError(
            f"--autoscale takes METRIC:TARGET with METRIC one of {', '.join(METRICS)}, got {text!r}"
        )
    if value.strip() == "auto":
        if name != "concurrency":
            raise ValueError(f"--autoscale {text!r}: only a concurrency target can be auto (Little's law)")
        return name, None  # type: ignore[return-value]
    try:
        target = float(value)
    except ValueError:
        raise ValueError(f"--autoscale {text!r}: the target is not a number") from None
    if not math.isfinite(target) or target <= 0:
        raise ValueError(f"--autoscale {text!r}: the target must be above 0")
    return name, target  # type: ignore[return-value]


class Autoscaler:
    """Drives one simulation's pool: decides, starts, drains, and keeps every replica's device time.

    `held` replicas are ready at time 0, and the stabilisation window opens as if the count had wished for
    them throughout (a pool settled at that count). Decisions stop at `until_s`."""

    def __init__(self, policy: AutoscalePolicy, held: int, until_s: float) -> None:
        if not policy.min_replicas <= held <= policy.max_replicas:
            raise ValueError(
                f"{held} replicas to start from, outside {policy.min_replicas}..{policy.max_replicas}"
            )
        self.policy, self.held, self.until_s = policy, held, until_s
        self.spans: list[list[float]] = []  # per replica: [device from, device until] (until: inf while held)
        self.up_s: list[float] = []  # when it decided to scale up
        self.down_s: list[float] = []
        self.starting = 0
        self.changes: list[tuple[float, int]] = [(0.0, held)]  # (time, replicas holding a device)

    def attach(self, env: simpy.Environment, pool: list[Replica], spawn: Callable[[], Replica]) -> None:
        """Take over `pool` (the router's list, with its `held` ready replicas); `spawn` builds a new one."""
        if len(pool) != self.held:
            raise ValueError(f"the pool has {len(pool)} replicas, the autoscaler was told {self.held}")
        self._span = {id(r): self._open(0.0) for r in pool}
        env.process(self._control(env, pool, spawn))

    def _open(self, at: float) -> int:
        self.spans.append([at, math.inf])
        return len(self.spans) - 1

    def _count(self, at: float, delta: int) -> None:
        self.changes.append((at, self.changes[-1][1] + delta))

    def _close(self, at: float, idx: int) -> None:
        self.spans[idx][1] = at
        self._count(at, -1)

    def desired(self, ready: list[Replica]) -> int:
        """The HPA's wish from the ready replicas' metric (the current count within the tolerance)."""
        p = self.policy
        current = len(ready) + self.starting
        if not ready:
            return current
        if p.metric == "concurrency":
            mean = sum(r.outstanding for r in ready) / len(ready)
        elif p.metric == "queue":
            mean = sum(len(r.waiting) for r in ready) / len(ready)
        else:
            mean = sum(r.kv_use for r in ready) / len(ready)
        ratio = mean / p.target
        if abs(ratio - 1.0) <= p.tolerance:
            return current
        return min(p.max_replicas, max(p.min_replicas, math.ceil(ratio * len(ready) - 1e-9)))

    def _control(
        self, env: simpy.Environment, pool: list[Replica], spawn: Callable[[], Replica]
    ) -> Generator[simpy.Event, None, None]:
        p = self.policy
        wishes: deque[tuple[float, int]] = deque([(0.0, self.held)])
        while env.now + p.interval_s <= self.until_s:
            yield env.timeout(p.interval_s)
            now = env.now
            want = self.desired(pool)
            wishes.append((now, want))
            while wishes and wishes[0][0] < now - p.cooldown_s:
                wishes.popleft()
            current = len(pool) + self.starting
            if want > current:
                for _ in range(want - current):
                    env.process(self._start(env, pool, spawn))
                self.up_s.append(now)
                continue
            floor = max(w for _, w in wishes)
            surplus = min(current - floor, len(pool) - 1)  # a starting replica is not cancelled
            if surplus > 0:
                for r in sorted(pool, key=lambda r: r.outstanding)[:surplus]:
                    self._drain(env, pool, r)
                self.down_s.append(now)

    def _start(
        self, env: simpy.Environment, pool: list[Replica], spawn: Callable[[], Replica]
    ) -> Generator[simpy.Event, None, None]:
        idx = self._open(env.now)
        self._count(env.now, +1)
        self.starting += 1
        yield env.timeout(self.policy.startup_s)
        self.starting -= 1
        r = spawn()
        self._span[id(r)] = idx
        pool.append(r)

    def _drain(self, env: simpy.Environment, pool: list[Replica], r: Replica) -> None:
        pool.remove(r)
        idx = self._span.pop(id(r))
        if r.outstanding == 0:
            self._close(env.now, idx)
            return

        def finished() -> None:
            if r.outstanding == 0:
                self._close(env.now, idx)

        r.on_finish = finished

    def device_s(self, start: float, end: float) -> float:
        """Replica-seconds of device held within [start, end] (starting, serving and draining)."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.spans)

    def decisions(self, start: float, end: float) -> tuple[int, int]:
        """Scale-ups and scale-downs decided within [start, end)."""
        return sum(start <= t < end for t in self.up_s), sum(start <= t < end for t in self.down_s)

    def mean_held(self, start: float, end: float) -> float:
        return self.device_s(start, end) / (end - start) if end > start else 0.0

    def kept(self) -> int:
        """Replicas starting or serving, drained ones not: after the run, what the next window starts from."""
        return len(self._span) + self.starting

    def holding_at(self, at: float) -> int:
        """Replicas holding a device at `at` (starting, serving or draining)."""
        n = 0
        for t, c in self.changes:
            if t > at:
                break
            n = c
        return n
