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
from planner.evidence.drift import drift_flags
from planner.evidence.validation import (
    P50_TARGET_PCT,
    P99_TARGET_PCT,
    TARGET_UP_TO_LOAD,
    BatchCanary,
    LevelResult,
    Validation,
    compare_level,
    cpu_count,
    live_service_model,
    verdict,
    with_back_to_back,
    with_drift,
    with_live_service,
    with_run_prediction,
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


def curve_model(plan: ValidationPlan, curve_ms: dict[int, list[float]]) -> ServiceModel:
    """The service model from a session curve: every batch size's times measured around the level."""
    sizes = [b for b, ms in curve_ms.items() for _ in ms]
    seconds = [x / 1000.0 for ms in curve_ms.values() for x in ms]
    return live_service_model(
        plan.model, sizes, seconds, plan.policy.max_batch, "curves measured in the validation's session"
    )


def predict_level(
    plan: ValidationPlan,
    load: float,
    lsc: Scenario,
    traffic: Requests,
    live: Served,
    curve_ms: dict[int, list[float]] | None = None,
    canary_vs_run: float | None = None,
) -> LevelResult:
    """The simulator fed the same arrivals, compared with what was served; then fed the live batch times, and
    (for a paced run) the back-to-back samples alone. With a session curve, the level is predicted and judged
    from it, and the run's own prediction is kept beside it."""
    table, _ = plan.model.table_for(plan.seq_len)

    def run_median_ms(b: int) -> float:
        base, k = table.base(b)
        return base.median_ms * k

    run_pred = run_simulation(lsc, plan.model, 1, "central", plan.policy, traffic=traffic)
    if curve_ms is not None:
        model = curve_model(plan, curve_ms)
        pred = run_simulation(lsc, model, 1, "central", plan.policy, traffic=traffic)
        medians = {b: float(np.median(ms)) for b, ms in curve_ms.items() if ms}

        def median_ms(b: int) -> float:
            return medians[b]

        what = median_ms
    else:
        pred, what = run_pred, run_median_ms

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
        what,
        live.load_average,
        cpu_count(),
        "the session curve's" if curve_ms is not None else "the run's",
    )
    live_model = live_service_model(plan.model, live.batch_sizes, live.batch_service_s, plan.policy.max_batch)
    again = run_simulation(lsc, live_model, 1, "central", plan.policy, traffic=traffic)
    level = with_live_service(level, again)
    if plan.back_to_back is not None:
        b2b = run_simulation(lsc, plan.back_to_back, 1, "central", plan.policy, traffic=traffic)
        level = with_back_to_back(level, b2b)
    if curve_ms is not None:
        ratios = {b: m / run_median_ms(b) for b, m in medians.items()}
        level = with_run_prediction(level, run_pred, canary_vs_run, ratios)
        level = level.model_copy(update={"curve_median_ms": medians})
    return level


def validation(
    plan: ValidationPlan,
    arrivals: str,
    levels: list[LevelResult],
    threads: int,
    notes: list[str],
    canaries: list[BatchCanary] | None = None,
    curve_calls_per_size: int | None = None,
) -> Validation:
    """The validation file's content; with canary readings, each level between two of them that moved is
    flagged (not judged)."""
    canaries = canaries or []
    flags = drift_flags([(c.mean_ms, c.ci_half_ms) for c in canaries], "batch-1 time")
    levels = [with_drift(lv, flags[i] if i < len(flags) else None) for i, lv in enumerate(levels)]
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
        judged_from="session curves" if curve_calls_per_size else "run",
        canaries=canaries,
        canary_vs_run=canary_vs_run(plan, canaries[0].mean_ms) if canaries else None,
        curve_calls_per_size=curve_calls_per_size,
    )


def canary_vs_run(plan: ValidationPlan, canary_mean_ms: float) -> float | None:
    """The canary's mean over the run's own batch-1 back-to-back mean (the same setting), when the run has it."""
    for p in plan.run.points:
        if (
            p.status == "ok"
            and p.precision == plan.precision
            and p.batch_size == 1
            and p.seq_len == plan.seq_len
            and p.latency_ms is not None
            and p.latency_ms.mean > 0
        ):
            return canary_mean_ms / p.latency_ms.mean
    return None
