"""An imported engine benchmark predicted from an LLM run's curves: "my vLLM numbers vs your prediction".

Each level's traffic is rebuilt from what the file says and nothing more: per-request send times and token
lengths when the tool saved them; otherwise the level's rate (Poisson or constant as the tool says) or
concurrency (closed loop) with every request at the mean prompt and output lengths the tool reported, and
that simplification is stated. The engine model (one replica, the knobs given) replays it; every metric and
percentile both sides have is compared as (predicted - reported) / reported.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from measure.run import Run
from measure.run.types import ResultModel
from planner.evidence.engine_benchmark import BenchLevel, EngineBenchmark, Stat
from planner.llm.engine import EngineConfig, LlmRequests, check_work, simulate
from planner.llm.steps import StepModel

METRICS = ("ttft", "tpot", "itl", "e2e")
MAX_CHECK_REQUESTS = 200_000


class LevelCheck(ResultModel):
    """One benchmark level: what the tool reported, what the engine model predicts, and the errors."""

    label: str
    traffic: str
    requests: int
    how: str  # how the traffic was rebuilt
    reported: dict[str, dict[str, float]]
    predicted: dict[str, dict[str, float]]
    error_pct: dict[str, float]  # "ttft.p99": (predicted - reported) / reported x 100
    skipped: str | None = None


class BenchCheck(ResultModel):
    """Every level of one benchmark against one run's engine model."""

    benchmark_id: str
    tool: str
    tool_version: str
    run_id: str
    precision: str
    knobs: dict[str, int | bool]
    levels: list[LevelCheck]
    notes: list[str]


def _stat_dict(s: Stat | None) -> dict[str, float]:
    return s.figures() if s is not None else {}


def _summary(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if not x.size:
        return {}
    return {"mean": float(x.mean())} | {f"p{q:g}": float(np.percentile(x, q)) for q in (50, 90, 95, 99)}


def _traffic(level: BenchLevel, seed: int) -> tuple[LlmRequests, int | None, str] | str:
    """The requests to replay, the closed-loop concurrency (None: open loop) and how they were rebuilt; or why
    the level cannot be rebuilt."""
    rng = np.random.default_rng(seed)
    per = [r for r in level.requests if r.prompt_tokens and r.output_tokens]
    closed = level.concurrency if level.traffic in ("concurrency", "synchronous") else None
    if per and len(per) <= MAX_CHECK_REQUESTS:
        prompts = np.array([r.prompt_tokens for r in per], dtype=np.int64)
        outputs = np.array([r.output_tokens for r in per], dtype=np.int64)
        starts = [r.start_s for r in per]
        if closed is None and all(s is not None for s in starts):
            arr = np.array(starts, dtype=np.float64)
            order = np.argsort(arr, kind="stable")
            return (
                LlmRequests(arr[order] - arr[order][0], prompts[order], outputs[order]),
                None,
                f"{len(per)} requests at the send times and token lengths the tool recorded",
            )
        lengths_how = f"the {len(per)} requests' recorded token lengths"
    else:
        pm = level.prompt_tokens.mean if level.prompt_tokens else None
        om = level.output_tokens.mean if level.output_tokens else None
        if not pm or not om:
            return "the file gives neither per-request token lengths nor mean prompt and output lengths"
        n = level.completed + (level.failed or 0)
        if not 1 <= n <= MAX_CHECK_REQUESTS:
            return f"{n} requests: outside 1..{MAX_CHECK_REQUESTS:,}"
        check_work(n, n * max(1, round(pm)), n * max(1, round(om)), f"level {level.label}")
        prompts = np.full(n, max(1, round(pm)), dtype=np.int64)
        outputs = np.full(n, max(1, round(om)), dtype=np.int64)
        lengths_how = (
            f"every request at the mean lengths reported ({round(pm)} prompt, {round(om)} output tokens)"
        )
    n = prompts.size
    if closed is not None:
        return (
            LlmRequests(np.zeros(n), prompts, outputs),
            closed,
            f"closed loop at {closed} concurrent, {lengths_how}",
        )
    if level.traffic == "throughput" or level.rate_rps is None:
        return LlmRequests(np.zeros(n), prompts, outputs), None, f"all {n} requests at once, {lengths_how}"
    gaps = (
        np.full(n, 1.0 / level.rate_rps)
        if level.arrivals == "constant"
        else rng.exponential(1.0 / level.rate_rps, n)
    )
    arr = np.cumsum(gaps) - gaps[0]
    kind = "constant" if level.arrivals == "constant" else "Poisson"
    return (
        LlmRequests(arr, prompts, outputs),
        None,
        f"{kind} arrivals at {level.rate_rps:g} req/s, {lengths_how}",
    )


def check_level(level: BenchLevel, model: StepModel, cfg: EngineConfig, seed: int) -> LevelCheck:
    """Predict one level and compare every metric and statistic both sides have."""
    reported = {m: _stat_dict(getattr(level, m)) for m in METRICS}
    reported = {m: v for m, v in reported.items() if v}
    built = _traffic(level, seed)
    if isinstance(built, str):
        return LevelCheck(
            label=level.label, traffic=level.traffic, requests=0, how="", reported=reported, predicted={},
            error_pct={}, skipped=built,
        )  # fmt: skip
    reqs, closed, how = built
    tr = simulate(reqs, model, cfg, 1, "round-robin", seed=seed, concurrency=closed)
    sent = tr.sent_s if tr.sent_s is not None else reqs.arrival_s
    ttft = tr.first_s - sent
    e2e = tr.finish_s - sent
    multi = reqs.output > 1
    tpot = (e2e[multi] - ttft[multi]) / (reqs.output[multi] - 1)
    predicted = {
        "ttft": _summary(ttft * 1000.0),
        "tpot": _summary(tpot * 1000.0),
        "itl": _summary(np.asarray(tr.itl_ms)),
        "e2e": _summary(e2e * 1000.0),
    }
    errors = {
        f"{m}.{k}": (predicted[m][k] - v) / v * 100.0
        for m, stats in reported.items()
        for k, v in stats.items()
        if k in predicted.get(m, {}) and v > 0
    }
    return LevelCheck(
        label=level.label,
        traffic=level.traffic,
        requests=int(reqs.arrival_s.size),
        how=how,
        reported=reported,
        predicted={m: v for m, v in predicted.items() if m in reported},
        error_pct=errors,
    )


def check_benchmark(
    bench: EngineBenchmark, run: Run, precision: str, model: StepModel, cfg: EngineConfig, seed: int = 0
) -> BenchCheck:
    """Every level of the benchmark against the run's engine model."""
    levels = [check_level(lv, model, cfg, seed + i) for i, lv in enumerate(bench.levels)]
    notes = list(bench.notes) + list(model.notes)
    if bench.tool == "guidellm":
        notes.append(
            "the prediction times each request from its send; so does GuideLLM (not from a schedule)"
        )
    return BenchCheck(
        benchmark_id=bench.id,
        tool=bench.tool,
        tool_version=bench.tool_version,
        run_id=run.id,
        precision=precision,
        knobs=asdict(cfg),
        levels=levels,
        notes=notes,
    )
