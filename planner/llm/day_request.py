"""One LLM-day question, as the CLI (`fleetwise day`) and the app's day section both ask it: the run, the engine's
knobs, the start-up times (`run`: the one the run timed), the autoscaler and the price; answered by plan_day."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from measure.run import EngineStartup, Run, Unavailable
from planner.fleet.prices import PRICINGS, PriceBook, PriceError
from planner.fleet.redundancy import Redundancy
from planner.llm.autoscale import autoscale_policy
from planner.llm.day import LlmDay, plan_day
from planner.llm.day_windows import DayError
from planner.llm.engine import EngineConfig, kv_blocks_from_run
from planner.llm.sources import source_price, source_shape
from planner.llm.steps import step_model
from planner.serving.routing import RouterError, router_for
from planner.traffic.scenario import Scenario, ScenarioError


@dataclass(frozen=True)
class DayRequest:
    """Everything a day is planned from, as typed (startups and autoscale as text)."""

    scenario: Scenario
    run: Run
    precision: str | None = None
    startups: str = "0,90"
    cooldown_s: float = 300.0
    ramp_s: float = 300.0
    router: str = "least-outstanding"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    kv_blocks: int | None = None
    prefix_caching: bool = False
    spares: int = 0
    autoscale: str | None = None
    interval_s: float = 15.0
    window_s: float | None = None
    max_replicas: int = 256
    requests: int = 1500
    pricing: str = "on_demand"
    jobs: int = 1  # processes for the autoscaled days (one per start-up time)


MAX_STARTUPS = 8  # each start-up time is its own day: its ramps and, autoscaled, every hour simulated again


def startups_from(text: str, run: Run) -> tuple[tuple[float, ...], str | None]:
    """The start-up times to compare, `run` read from the run's timed start-up; and a note saying so."""
    values, said = [], None
    parts = [x.strip() for x in text[:1000].split(",") if x.strip()]
    if not parts or len(parts) > MAX_STARTUPS or len(text) > 1000:
        raise DayError(f"--startup-s: 1 to {MAX_STARTUPS} start-up times, comma-separated")
    for x in parts:
        if x == "run":
            got = run.llm.engine.startup if run.llm is not None and run.llm.engine is not None else None
            if not isinstance(got, EngineStartup):
                why = (
                    got.unavailable
                    if isinstance(got, Unavailable)
                    else "it was measured without --engine-pid"
                )
                raise DayError(f"--startup-s run: run {run.short_id()} has no timed start-up ({why})")
            values.append(got.seconds)
            said = f"start-up {got.seconds:g} s: timed by run {run.short_id()} ({got.how})"
        elif x:
            try:
                values.append(float(x))
            except ValueError:
                raise DayError(f"--startup-s: {x!r} is not a number of seconds or `run`") from None
    return tuple(values), said


def answer_day(req: DayRequest, book: PriceBook) -> LlmDay:
    """Check the request in full, then plan the day (DayError, ValueError and the engine's errors in one line)."""
    sc, r = req.scenario, req.run
    if sc.llm is None:
        raise ScenarioError(f"scenario {sc.name} has no llm block: a day plans generative traffic")
    if (
        not 100 <= req.requests <= 100_000
        or not 0 <= req.spares <= 100
        or not 1 <= req.max_replicas <= 10_000
    ):
        raise DayError("requests in 100..100000, spares in 0..100 and max replicas in 1..10000")
    if req.pricing not in PRICINGS:
        raise DayError(f"unknown pricing {req.pricing!r}: use {', '.join(PRICINGS)}")
    model = step_model(r, req.precision)
    blocks, _ = kv_blocks_from_run(r, model.precision, req.block_size, req.kv_blocks)
    cfg = EngineConfig(
        req.max_num_seqs, req.max_num_batched_tokens, True, req.block_size, blocks, req.prefix_caching
    )
    route = router_for(req.router, "LLM")
    if route == "prefix-aware" and not req.prefix_caching:
        raise RouterError("prefix-aware routing needs the prefix cache: turn it on (--prefix-caching)")
    starts, said = startups_from(req.startups, r)
    policy, auto = None, False
    if req.autoscale:
        policy, auto = autoscale_policy(
            req.autoscale, interval_s=req.interval_s, cooldown_s=req.cooldown_s, max_replicas=req.max_replicas
        )
    usd = None
    with contextlib.suppress(PriceError):  # no price for the device: sized, not costed (the table says so)
        usd = source_price(book, r).price(req.pricing).usd_per_hour  # type: ignore[arg-type]
    plan = plan_day(
        sc, r, model, cfg, route, starts, req.cooldown_s, Redundancy(req.spares, 0.0), usd,
        source_shape(r).devices, req.requests, req.ramp_s, req.max_replicas, policy, req.window_s, auto,
        req.jobs,
    )  # fmt: skip
    return plan.model_copy(update={"notes": [*plan.notes, said]}) if said else plan
