"""A batch run's predictions held against live serving, below any front end.

`plan_validation` checks the question and derives what every level needs (the service model, the batching
policy, the sustainable rate) before anything is served; `level_traffic` draws a level's arrivals;
`predict_level` compares what was served live with the simulator fed the same arrivals, and says how the
prediction moves with the live batch times and with back-to-back samples only. Serving the workload (torch) is
the caller's: the CLI drives measure/'s live replay and hands the observations here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from measure.run import Run
from planner.evidence.validation import (
    P50_TARGET_PCT,
    P99_TARGET_PCT,
    TARGET_UP_TO_LOAD,
    LevelResult,
    Validation,
    compare_level,
    cpu_count,
    live_service_model,
    verdict,
    with_back_to_back,
    with_live_service,
)
from planner.serving.service import ServiceError, ServiceModel
from planner.serving.service_from import from_run
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import run_simulation
from planner.traffic.arrivals import Requests, generate
from planner.traffic.scenario import Fixed, Gamma, Poisson, Scenario


@dataclass(frozen=True)
class ValidationPlan:
    """A batch validation, checked: the run's model (and its back-to-back twin when paced), the policy, the
    sequence length served and the sustainable request rate the loads are fractions of."""

    run: Run
    precision: str
    scenario: Scenario
    model: ServiceModel
    back_to_back: ServiceModel | None
    policy: BatchPolicy
    seq_len: int | None
    sustainable_rps: float
    seconds: float
    max_delay_ms: float


@dataclass(frozen=True)
class Served:
    """One level as served live: every request's scheduled, enqueue and completion time, and every batch."""

    scheduled_s: np.ndarray
    enqueue_s: np.ndarray
    done_s: np.ndarray
    batch_sizes: list[int]
    batch_service_s: list[float]
    load_average: float | None


def level_scenario(sc: Scenario, rate: float, seconds: float, seq_len: int | None) -> tuple[Scenario, str]:
    """The scenario at one steady rate (gamma kept, anything else Poisson), at the served sequence length."""
    a = sc.arrivals
    if isinstance(a, Gamma):
        arrivals: Poisson | Gamma = Gamma(process="gamma", rate_rps=rate, cv=a.cv)
        what = f"gamma arrivals (cv {a.cv:g}) as in the scenario"
    else:
        arrivals = Poisson(process="poisson", rate_rps=rate)
        what = "Poisson arrivals" + (
            "" if isinstance(a, Poisson) else f" (the scenario's {a.process} replaced)"
        )
    size = sc.size
    if seq_len is not None:
        size = size.model_copy(update={"seq_len": Fixed(dist="fixed", value=seq_len)})
    n = max(200, int(rate * seconds))
    return sc.model_copy(
        update={"arrivals": arrivals, "requests": n, "duration_s": None, "growth": 1.0, "size": size}
    ), what


def check_levels(loads: list[float], seconds: float) -> None:
    """Loads are fractions of the sustainable rate in (0, 1); a level lasts 1 s to an hour."""
    if not loads or any(not 0 < x < 1 for x in loads):
        raise ServiceError(f"--load must be fractions in (0, 1), got {','.join(f'{x:g}' for x in loads)!r}")
    if not 1 <= seconds <= 3600:
        raise ServiceError(f"--seconds must be in 1..3600, got {seconds:g}")


def plan_validation(
    run: Run,
    sc: Scenario,
    precision: str | None,
    loads: list[float],
    seconds: float,
    max_batch: int,
    max_delay_ms: float,
) -> ValidationPlan:
    """Every input checked (ServiceError, one line) and every derived figure computed, before serving."""
    check_levels(loads, seconds)
    model = from_run(run, precision)
    # a paced run is also predicted from its back-to-back samples alone: the table shows what pacing changed
    unpaced = run.model_copy(update={"points": [p.model_copy(update={"paced": None}) for p in run.points]})
    back_to_back = from_run(unpaced, precision) if any(p.paced for p in run.points) else None
    prec = precision or next(p.precision for p in run.points if p.status == "ok")
    policy = BatchPolicy(max_batch, max_delay_ms / 1000.0)
    if max_batch > model.max_batch:
        raise ServiceError(f"max_batch {max_batch} is above what the run measured: {model.limit_reason}")
    seq = model.seq_lens[0] if model.seq_lens else None
    probe, _ = level_scenario(sc, 1.0, 10_000, seq)
    mean_items = float(generate(probe).items.mean())
    per_s = model.sustainable_items_per_s(max_batch, seq) / mean_items
    return ValidationPlan(run, prec, sc, model, back_to_back, policy, seq, per_s, seconds, max_delay_ms)


def level_traffic(plan: ValidationPlan, load: float) -> tuple[Scenario, str, Requests]:
    """A level's scenario, how its arrivals were made, and the arrivals themselves (seeded by the scenario)."""
    lsc, what = level_scenario(plan.scenario, load * plan.sustainable_rps, plan.seconds, plan.seq_len)
    return lsc, what, generate(lsc, np.random.default_rng(np.random.SeedSequence(lsc.seed).spawn(3)[0]))


def predict_level(
    plan: ValidationPlan, load: float, lsc: Scenario, traffic: Requests, live: Served
) -> LevelResult:
    """The simulator fed the same arrivals, compared with what was served; then fed the live batch times, and
    (for a paced run) the back-to-back samples alone."""
    table, _ = plan.model.table_for(plan.seq_len)
    pred = run_simulation(lsc, plan.model, 1, "central", plan.policy, traffic=traffic)
    level = compare_level(
        load,
        load * plan.sustainable_rps,
        pred,
        live.scheduled_s,
        live.enqueue_s,
        live.done_s,
        live.batch_sizes,
        live.batch_service_s,
        lsc.warmup_fraction,
        lambda b: (lambda base: base[0].median_ms * base[1])(table.base(b)),
        live.load_average,
        cpu_count(),
    )
    live_model = live_service_model(plan.model, live.batch_sizes, live.batch_service_s, plan.policy.max_batch)
    again = run_simulation(lsc, live_model, 1, "central", plan.policy, traffic=traffic)
    level = with_live_service(level, again)
    if plan.back_to_back is not None:
        b2b = run_simulation(lsc, plan.back_to_back, 1, "central", plan.policy, traffic=traffic)
        level = with_back_to_back(level, b2b)
    return level


def validation(
    plan: ValidationPlan, arrivals: str, levels: list[LevelResult], threads: int, notes: list[str]
) -> Validation:
    """The validation file's content."""
    return Validation(
        run_id=plan.run.id,
        precision=plan.precision,
        scenario=plan.scenario.name,
        arrivals=arrivals,
        max_batch=plan.policy.max_batch,
        max_delay_ms=plan.max_delay_ms,
        seconds=plan.seconds,
        seq_len=plan.seq_len,
        created_at=datetime.now(UTC),
        device=plan.run.stack.device_name,
        threads=threads,
        cpu_count=cpu_count(),
        notes=notes,
        targets=f"|p50 error| <= {P50_TARGET_PCT:g}% and |p99 error| <= {P99_TARGET_PCT:g}% at loads up to "
        f"{TARGET_UP_TO_LOAD:g}; above that the error is reported, not judged",
        levels=levels,
        verdict=verdict(levels),
    )
