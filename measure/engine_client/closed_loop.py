"""Engine-level measurement: a controlled closed-loop sweep against a running OpenAI-compatible streaming server.

For every prompt length and concurrency c, c clients each send the next request when their last one ends,
with a fixed prompt length and max_tokens. Per-token arrival times give the prefill time (TTFT at
concurrency 1, by prompt length) and the decode step time by concurrency and context (the inter-token gaps
while c streams are in flight). Every point is labelled `source: engine` and carries its request counts;
failures end a setting with the reason and the sweep goes on.

With cached prefix lengths, each is then measured one request at a time: every prompt is the same prefix of
that many tokens followed by a suffix of its own, sent as token ids, so that after the first (the warm-up, which
puts the prefix in the engine's cache) the engine computes only the suffix. The TTFT is a prefill point with
`cached_tokens`; the same suffix with no prefix is measured beside them, and the engine's prefix-cache counters
over each window say whether the prefix was found.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from measure.core import stats
from measure.core.summary import latency_summary
from measure.engine_client.http import LoopResult, StreamResult, closed_loop, prompt_text, stream_completion
from measure.engine_client.metrics import Scrape, counters_between, scrape
from measure.engine_client.prefix_prompts import block, unique_suffix
from measure.engine_client.session import (
    EnginePlan,
    replica_from_params,
    words_for,
)
from measure.run import (
    MAX_SEQ_LEN,
    RAW_LATENCY_CAP,
    WARMUP_LATENCY_CAP,
    DriftCheck,
    EngineCounters,
    EngineStats,
    LlmFacts,
    LlmGrid,
    Methodology,
    Point,
    Run,
    StoppingRule,
    SweepSpec,
    WarmupPolicy,
    Workload,
    format_validation_error,
    unavailable,
)
from measure.run.datafile import one_line


def _ci_ok(values: list[float], target: float) -> bool:
    if len(values) < 2:
        return False
    mean = float(np.mean(values))
    return mean > 0 and stats.mean_ci_halfwidth(values) / mean <= target


def run_setting(
    plan: EnginePlan, prompt: int, c: int, seed: int, at_edge: Callable[[], None] | None = None
) -> LoopResult:
    """One closed loop: c clients, fixed prompt and output lengths, stopped by the CI target or the limits;
    `at_edge` runs as its steady window opens and closes."""
    req = plan.request
    words = words_for(plan, prompt)
    ok = lambda rs: [r for r in rs if r.error is None and len(r.token_times) > 1]  # noqa: E731

    def send(n: int) -> StreamResult:
        return stream_completion(
            plan.endpoint, req.model, prompt_text(words, seed + n), req.output_tokens, req.timeout_s
        )

    def enough(steady: list[StreamResult]) -> bool:
        good = ok(steady)
        if len(steady) < max(req.min_requests, 2 * c) or len(good) < 2:
            return False
        tpot = [r.tpot_ms for r in good if r.tpot_ms is not None]
        ttft = [r.ttft_ms for r in good if r.ttft_ms is not None]
        return _ci_ok(tpot, req.ci_target) and (c > 1 or _ci_ok(ttft, req.ci_target))

    return closed_loop(send, c, req.max_requests, req.max_seconds, enough, warmup=c, at_edge=at_edge)


def run_cached(
    plan: EnginePlan, cached: int, suffix: int, seed: int, at_edge: Callable[[], None] | None = None
) -> LoopResult:
    """One request at a time: `cached` tokens shared by every prompt (found cached after the warm-up request
    computed them), then `suffix` tokens of each request's own; one output token (TTFT is what is timed)."""
    req = plan.request
    prefix = block(seed, seed, cached) if cached else []

    def send(n: int) -> StreamResult:
        prompt = prefix + unique_suffix(suffix, seed * 10_000 + n)
        return stream_completion(plan.endpoint, req.model, prompt, 1, req.timeout_s)

    def enough(steady: list[StreamResult]) -> bool:
        ttft = [r.ttft_ms for r in steady if r.error is None and r.ttft_ms is not None]
        return len(steady) >= req.min_requests and _ci_ok(ttft, req.ci_target)

    return closed_loop(send, 1, req.max_requests, req.max_seconds, enough, warmup=1, at_edge=at_edge)


def _generated(r: StreamResult) -> int:
    return r.completion_tokens if r.completion_tokens is not None else r.text_chunks


def _mismatch(r: StreamResult) -> bool:
    """Text chunks that differ from usage.completion_tokens, except the stop token a stopped stream counts
    without text."""
    if r.completion_tokens is None:
        return False
    stop_token = 1 if r.finish_reason == "stop" else 0
    return r.completion_tokens not in (r.text_chunks, r.text_chunks + stop_token)


def _stats(
    plan: EnginePlan,
    prompt: int,
    c: int,
    loop: LoopResult,
    counters: EngineCounters | None = None,
    output: int | None = None,
) -> EngineStats:
    req = plan.request
    output = req.output_tokens if output is None else output
    steady = loop.steady
    for r in steady:
        if r.error is None and r.prompt_tokens is not None and r.prompt_tokens > MAX_SEQ_LEN:
            r.error = f"usage.prompt_tokens {r.prompt_tokens:,} is beyond {MAX_SEQ_LEN:,}: not this prompt"
    good = [r for r in steady if r.error is None]
    errors = list(dict.fromkeys(r.error for r in steady if r.error))[:20]

    def summ(values: list[float | None]) -> Any:
        v = [x for x in values if x is not None and x > 0]
        return latency_summary(np.asarray(v)) if v else None

    reported = [r.prompt_tokens for r in good if r.prompt_tokens is not None]
    return EngineStats(
        concurrency=c,
        prompt_tokens=prompt,
        output_tokens=output,
        requests=len(steady),
        completed=sum(1 for r in good if _generated(r) >= output),
        early_ends=sum(1 for r in good if _generated(r) < output),
        failed=len(steady) - len(good),
        usage_mismatches=sum(1 for r in good if _mismatch(r)),
        usage_missing=sum(1 for r in good if r.completion_tokens is None),
        prompt_tokens_reported=int(statistics.median(reported)) if reported else None,
        ttft_ms=summ([r.ttft_ms for r in good]),
        tpot_ms=summ([r.tpot_ms for r in good]),
        e2e_ms=summ([r.e2e_ms for r in good]),
        wall_s=loop.wall_s,
        steady_s=loop.steady_s,
        edge_excluded=loop.edge_excluded,
        errors=[e for e in errors if e],
        counters=counters,
    )


def _point(
    plan: EnginePlan,
    phase: str,
    c: int,
    prompt: int,
    samples: list[float],
    warm: list[float],
    es: EngineStats,
    loop: LoopResult,
    cached: int | None = None,
) -> Point:
    """A point from engine samples (TTFT for prefill, inter-token gaps for decode), or a failed one."""
    req = plan.request
    shape = (
        {"seq_len": prompt, "cached_tokens": cached}
        if phase == "prefill"
        else {"context_tokens": (es.prompt_tokens_reported or prompt) + req.output_tokens // 2}
    )
    base: dict[str, Any] = {
        "precision": req.precision,
        "batch_size": c,
        "phase": phase,
        "source": "engine",
        "engine": es,
        **shape,
    }
    flags = (
        (["early-end"] if es.early_ends else [])
        + (["request-errors"] if es.failed else [])
        + (["usage-mismatch"] if es.usage_mismatches else [])
    )
    arr = np.asarray([x for x in samples if x > 0], dtype=np.float64)
    if arr.size < 2:
        why = es.errors[0] if es.errors else "fewer than 2 timed tokens"
        return Point(
            **base,
            status="failed",
            reason=f"{es.failed} of {es.requests} requests failed: {why}",
            flags=flags,
        )
    summary = latency_summary(arr)
    per_request = [r.tpot_ms if phase == "decode" else r.ttft_ms for r in loop.steady if r.error is None]
    rel = summary.mean_ci95_halfwidth_rel
    converged = loop.stop_reason == "target met"
    tokens = prompt if phase == "prefill" else c
    items_per_s = (1 if phase == "prefill" else c) * 1000.0 / summary.mean
    raw, stride = stats.thin(arr, RAW_LATENCY_CAP)
    warm_kept, _ = stats.thin(np.asarray([w for w in warm if w > 0]), WARMUP_LATENCY_CAP) if warm else ([], 1)
    d = stats.drift([x for x in per_request if x is not None])
    return Point(
        **base,
        status="ok" if converged else "unstable",
        reason=None
        if converged
        else f"stopped at {loop.stop_reason} before the {req.ci_target:.0%} CI target (CI {rel or 0:.1%})",
        flags=flags + (["drift"] if d.detected else []),
        units_per_item=float(prompt) if phase == "prefill" else 1.0,
        warmup_iterations_excluded=loop.warmup,
        measured_iterations=int(arr.size),
        elapsed_s=loop.wall_s,
        latency_ms=summary,
        throughput_items_per_s=items_per_s,
        throughput_units_per_s=tokens * 1000.0 / summary.mean,
        telemetry=unavailable("the engine's device is not sampled by a client"),
        drift=DriftCheck(
            detected=d.detected, p_value=d.p_value, relative_change=d.relative_change, reason=d.reason
        ),
        raw_latencies_ms=raw,
        raw_latencies_stride=stride,
        warmup_latencies_ms=warm_kept,
    )


def _phases(c: int) -> list[str]:
    return ["prefill", "decode"] if c == 1 else ["decode"]


def _setting_points(
    plan: EnginePlan, prompt: int, c: int, loop: LoopResult, counters: EngineCounters | None = None
) -> list[Point]:
    """The prefill (at concurrency 1) and decode points of one setting."""
    es = _stats(plan, prompt, c, loop, counters)
    good = [r for r in loop.steady if r.error is None]
    warm = [r for r in loop.results[: loop.warmup] if r.error is None]
    out = []
    if c == 1:
        ttft, warm_ttft = [r.ttft_ms or 0 for r in good], [r.ttft_ms or 0 for r in warm]
        out.append(_point(plan, "prefill", 1, prompt, ttft, warm_ttft, es, loop))
    gaps, warm_gaps = [g for r in good for g in r.gaps_ms], [g for r in warm for g in r.gaps_ms]
    out.append(_point(plan, "decode", c, prompt, gaps, warm_gaps, es, loop))
    return out


def _cached_point(
    plan: EnginePlan, cached: int, suffix: int, loop: LoopResult, counters: EngineCounters | None
) -> Point:
    """The prefill point of one cached-prefix setting; flagged when the engine's counters found no prefix."""
    es = _stats(plan, cached + suffix, 1, loop, counters, output=1)
    good = [r for r in loop.steady if r.error is None]
    warm = [r.ttft_ms or 0 for r in loop.results[: loop.warmup] if r.error is None]
    p = _point(plan, "prefill", 1, suffix, [r.ttft_ms or 0 for r in good], warm, es, loop, cached)
    if cached and counters is not None and counters.prefix_cache_hits == 0 and p.status != "failed":
        return p.model_copy(update={"flags": [*p.flags, "no-prefix-hits"]})
    return p


def _edge_reader(plan: EnginePlan, edges: list[tuple[float, Scrape | str]]) -> Callable[[], None]:
    """What a steady window's edge runs: the engine's /metrics read, stamped at the middle of the read."""

    def read() -> None:
        t = time.perf_counter()
        got = scrape(plan.endpoint)
        edges.append(((t + time.perf_counter()) / 2, got))

    return read


def _window_counters(loop: LoopResult, edges: list[tuple[float, Scrape | str]]) -> EngineCounters | None:
    """The counters over the steady window: read as it opened and as it closed (None when it never closed)."""
    if len(edges) != 2:
        return None
    (t0, before), (t1, after) = edges
    sent = sum(1 for r in loop.results if t0 <= r.sent <= t1)
    return counters_between(before, after, sent, t1 - t0)


def _failed(plan: EnginePlan, phase: str, c: int, prompt: int, loop: LoopResult, why: str) -> Point:
    """A failed point that keeps the setting and its reason when the readings themselves cannot be stored."""
    req = plan.request
    es = EngineStats(
        concurrency=c,
        prompt_tokens=prompt,
        output_tokens=req.output_tokens,
        requests=len(loop.steady),
        completed=0,
        early_ends=0,
        failed=len(loop.steady),
        usage_mismatches=0,
        usage_missing=0,
        wall_s=loop.wall_s,
        errors=[one_line(why, 300)],
    )
    shape = {"seq_len": prompt} if phase == "prefill" else {"context_tokens": prompt + req.output_tokens // 2}
    return Point(
        precision=req.precision,
        batch_size=c,
        phase=phase,
        source="engine",
        engine=es,
        status="failed",
        reason=one_line(why, 500),
        **shape,
    )


def execute_engine(
    plan: EnginePlan, progress: Any = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> tuple[Run, bool]:
    """Every (prompt, concurrency) setting in order; Ctrl-C keeps what was measured (an incomplete run)."""
    req = plan.request
    points: list[Point] = []
    interrupted = False
    total = len(req.prompt_tokens) * len(req.concurrencies)
    if progress is not None:
        progress.start(total)
    metrics = scrape(plan.endpoint)  # an engine without /metrics is asked once, and the run says why
    no_metrics = metrics if isinstance(metrics, str) else None
    try:
        for i, prompt in enumerate(req.prompt_tokens):
            for c in req.concurrencies:
                if progress is not None:
                    progress.point_started(req.precision, c, prompt)
                edges: list[tuple[float, Scrape | str]] = []
                read = _edge_reader(plan, edges)
                loop = run_setting(
                    plan, prompt, c, 1_000_000 * (i + 1) + 1000 * c, None if no_metrics else read
                )
                counters = _window_counters(loop, edges)
                try:
                    points += _setting_points(plan, prompt, c, loop, counters)
                except ValidationError as exc:  # a reading no run may hold: this setting fails, not the run
                    why = f"an impossible reading: {format_validation_error(exc, 2)}"
                    points += [_failed(plan, ph, c, prompt, loop, why) for ph in _phases(c)]
                if progress is not None:
                    progress.point_done(points[-1])
        for j, cached in enumerate((0, *req.cached_prefixes) if req.cached_prefixes else ()):
            edges = []
            read = _edge_reader(plan, edges)
            loop = run_cached(plan, cached, req.cached_suffix, 7_000 + j, None if no_metrics else read)
            try:
                points.append(
                    _cached_point(plan, cached, req.cached_suffix, loop, _window_counters(loop, edges))
                )
            except ValidationError as exc:
                why = f"an impossible reading: {format_validation_error(exc, 2)}"
                failed = _failed(plan, "prefill", 1, req.cached_suffix, loop, why)
                points.append(failed.model_copy(update={"cached_tokens": cached}))
    except KeyboardInterrupt:
        interrupted = True
    said = (
        f"engine counters: none ({no_metrics})"
        if no_metrics
        else "engine counters: the engine's /metrics read as each setting's steady window opened and closed"
    )
    return build_run(
        plan,
        points,
        complete=not interrupted
        and len(
            {(p.engine.prompt_tokens, p.batch_size) for p in points if p.engine and p.cached_tokens is None}
        )
        == total
        and sum(p.cached_tokens is not None for p in points)
        == (len(req.cached_prefixes) + 1 if req.cached_prefixes else 0),
        now=now(),
        notes=[said],
    ), interrupted


ENGINE_NOTES = [
    "engine points are timed on the client: perf_counter at the arrival of every stream chunk that carries text",
    "prefill (TTFT) = first text chunk - request sent, at concurrency 1: includes the HTTP round trip and "
    "tokenisation",
    "decode step = gap between consecutive text chunks while `batch_size` streams are in flight; the engine may mix "
    "other requests' prefill into those steps, so at concurrency > 1 it is the decode step as served, not a pure one",
    "context_tokens of a decode point = the prompt's reported tokens + half the output (the mean context over the "
    "stream)",
    "prompts are random words, different for every request (no prefix cache serves them), sized from the server's "
    "usage.prompt_tokens on two calibration requests",
    "a closed loop: each client sends its next request when the last one ends; the first `concurrency` requests of "
    "each setting to end are the warm-up; a setting is judged on the requests sent and ended in its steady window "
    "(from the warm-up's last end to the last send), so every one ran among `concurrency` streams: those in flight "
    "as the window opened or closed (the drain) are left out and counted (edge_excluded)",
]


def build_run(
    plan: EnginePlan, points: list[Point], complete: bool, now: datetime, notes: list[str] | None = None
) -> Run:
    """The run file of an engine sweep."""
    req = plan.request
    grid = LlmGrid(
        mode="engine",
        prompt_tokens=list(req.prompt_tokens),
        concurrencies=list(req.concurrencies),
        output_tokens=req.output_tokens,
        requests_per_point=req.max_requests,
        timeout_s=req.timeout_s,
    )
    methodology = Methodology(
        warmup=WarmupPolicy(
            min_excluded_iterations=0,
            detection="first-requests",
            detection_parameters={},
            compilation_excluded=False,
        ),
        stopping=StoppingRule(
            ci_target_relative=req.ci_target,
            confidence=stats.CONFIDENCE,
            ci_method="t-interval of per-request TPOT (and TTFT at concurrency 1); tokens within a request are "
            "correlated, so requests are the samples",
            min_iterations=req.min_requests,
            max_iterations=req.max_requests,
            min_seconds=0.0,
            max_seconds=req.max_seconds,
        ),
        timer="client-stream-arrival",
        iteration_scope="end-to-end",
        l2_flush=False,
        percentile_method=stats.PERCENTILE_METHOD_DOC,
        p99_ci_method="distribution-free 95% CI from order statistics with binomial ranks",
        drift_test="Mann-Kendall on batch means of the per-request values, in completion order",
        raw_latency_policy=f"samples thinned by a fixed stride to at most {RAW_LATENCY_CAP}",
        inference_mode="whatever the engine runs; see llm.engine.params for what the user said about it",
        notes=[*ENGINE_NOTES, *(notes or [])],
        energy_policy="not measured: a client cannot read the engine's power",
    )
    return Run(
        created_at=now,
        fleetwise_version=_version(),
        command=plan.command,
        methodology=methodology,
        stack=plan.stack,
        workload=Workload(
            name="llm-engine",
            source="builtin",
            description=f"{req.model} served at {plan.endpoint.url}",
            parameters={"model": req.model[:200], "endpoint": plan.endpoint.url[:200]},
            unit="tokens",
            microbenchmark=False,
            has_seq_len=True,
        ),
        sweep=SweepSpec(
            precisions=[req.precision],
            batch_sizes=sorted(set(req.concurrencies)),
            seq_lens=sorted(set(req.prompt_tokens)),
            complete=complete,
            llm=grid,
        ),
        points=points,
        idle_power=unavailable("not measured: a client cannot read the engine's power"),
        llm=LlmFacts(
            shape=None,
            weights="served",
            weights_note="whatever the engine serves",
            memory_fraction=float(req.params.get("gpu_memory_utilization", 0.9)),
            device_memory_bytes=unavailable("the engine's device is not visible to a client"),
            device_memory_method="not read",
            energy_note="energy unavailable: a client cannot read the engine's power",
            engine=plan.info,
            replica=replica_from_params(req.params),
        ),
    ).with_id()


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("fleetwise")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"
