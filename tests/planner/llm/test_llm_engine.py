"""The continuous-batching engine model: degenerate cases against queueing theory, and a plain event-by-event
reference of the same scheduler, written here separately, that must give identical step start times and
preemptions on random small cases."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from measure.run import Point
from planner.llm.engine import EngineConfig, EngineError, LlmRequests, simulate
from planner.llm.steps import StepModel, StepModelError, step_model
from tests.conftest import make_run, summary_of

PREFILL_MS_PER_TOKEN = (
    0.01  # a synthetic engine: prefill 2 ms + 0.01 ms a token, decode 1 ms + 0.1 ms a sequence
)
DECODE_MS = 1.0


def _point(
    phase: str,
    batch: int,
    ms: float,
    seq: int | None = None,
    ctx: int | None = None,
    chunk: int | None = None,
    spread: float = 0.0,
) -> Point:
    rng = np.random.default_rng(batch * 7 + (seq or 0) + (ctx or 0))
    samples = (ms * (1 + spread * rng.standard_normal(200))).clip(ms * 0.2).tolist() if spread else [ms] * 200
    return Point(
        precision="fp32",
        batch_size=batch,
        seq_len=seq,
        phase=phase,  # type: ignore[arg-type]
        context_tokens=ctx,
        chunk_tokens=chunk,
        source="in-process",
        status="ok",
        measured_iterations=200,
        latency_ms=summary_of(samples),
        throughput_items_per_s=batch * 1000 / ms,
        raw_latencies_ms=samples,
    )


def synthetic_model(spread: float = 0.0, mixed: bool = True) -> StepModel:
    """Step times from a formula, measured at grid points (so interpolation is exercised)."""
    pts = []
    for b in (1, 4, 16):
        for s in (16, 64, 256, 1024):
            pts.append(_point("prefill", b, 2 + PREFILL_MS_PER_TOKEN * b * s, seq=s, spread=spread))
    for c in (64, 512, 4096):
        for b in (1, 2, 4, 8, 16, 32, 64):
            pts.append(_point("decode", b, DECODE_MS + 0.1 * b + 0.0001 * b * c, ctx=c, spread=spread))
    if mixed:
        for k in (16, 256, 1024):
            base = DECODE_MS + 0.1 * 4 + 0.0001 * 4 * 512
            pts.append(_point("mixed", 4, base + PREFILL_MS_PER_TOKEN * k, ctx=512, chunk=k, spread=spread))
    return step_model(make_run(pts))


def _reqs(arrival: list[float], prompt: list[int], output: list[int]) -> LlmRequests:
    return LlmRequests(np.asarray(arrival, dtype=float), np.asarray(prompt), np.asarray(output))


def test_one_request_at_a_time_gives_ttft_the_prefill_and_tpot_the_decode_at_batch_one() -> None:
    model = synthetic_model()
    n = 20
    arrival = [i * 1.0 for i in range(n)]  # a second apart: never two in the engine at once
    tr = simulate(_reqs(arrival, [256] * n, [9] * n), model, EngineConfig())
    ttft = (tr.first_s - np.asarray(arrival)) * 1000
    tpot = ((tr.finish_s - tr.first_s) * 1000) / 8
    assert ttft == pytest.approx(2 + PREFILL_MS_PER_TOKEN * 256, rel=1e-9)
    # the decode contexts run 256..263: between the measured 64 and 512, linear in log context (looked up in
    # 16-token buckets: within 0.1% here)
    expect = [model._decode_median(1, c)[0] for c in range(256, 264)]
    assert tpot == pytest.approx(float(np.mean(expect)), rel=1e-3)
    assert tr.preempted.sum() == 0 and tr.beyond_grid_steps == 0


def test_one_output_token_and_no_batching_is_an_m_d_1_queue_on_prefill_times() -> None:
    model = synthetic_model()
    rng = np.random.default_rng(3)
    n, service_s = 40_000, (2 + PREFILL_MS_PER_TOKEN * 256) / 1000
    for rho in (0.5, 0.8):
        arrival = np.cumsum(rng.exponential(service_s / rho, n))
        tr = simulate(
            LlmRequests(arrival, np.full(n, 256), np.ones(n, dtype=int)), model, EngineConfig(max_num_seqs=1)
        )
        wait = (tr.first_s - arrival)[n // 10 :] - service_s
        # Pollaczek-Khinchine for deterministic service: Wq = rho * S / (2 (1 - rho))
        assert wait.mean() == pytest.approx(rho * service_s / (2 * (1 - rho)), rel=0.06)


def test_a_decode_batch_shares_each_step_and_a_full_cache_preempts_the_newest() -> None:
    model = synthetic_model()
    tr = simulate(_reqs([0.0] * 4, [64] * 4, [20] * 4), model, EngineConfig())
    assert np.ptp(tr.first_s) == 0  # admitted and prefilled in one step, then decoded together
    # a cache that holds two sequences' worth: the newest two wait or are preempted, and all finish
    small = EngineConfig(block_size=16, kv_blocks=12)  # 192 tokens: two sequences of 64 + 30 fit
    tr = simulate(_reqs([0.0] * 4, [64] * 4, [30] * 4), model, small)
    assert np.isfinite(tr.finish_s).all()
    tight = EngineConfig(block_size=16, kv_blocks=10)
    tr = simulate(_reqs([0.0, 0.0, 0.0], [64, 64, 64], [60, 60, 60]), model, tight)
    assert tr.preempted.sum() > 0 and np.isfinite(tr.finish_s).all()


def test_requests_that_can_never_be_served_are_refused_with_the_reason() -> None:
    model = synthetic_model()
    with pytest.raises(EngineError, match="without chunked prefill"):
        simulate(
            _reqs([0.0], [9000], [1]), model, EngineConfig(chunked_prefill=False, max_num_batched_tokens=8192)
        )
    with pytest.raises(EngineError, match="KV blocks"):
        simulate(_reqs([0.0], [100], [100]), model, EngineConfig(kv_blocks=5))
    with pytest.raises(StepModelError, match="no measured LLM point"):
        step_model(make_run())


def test_without_mixed_points_a_mixed_step_costs_decode_plus_prefill_and_says_so() -> None:
    with_mixed, without = synthetic_model(), synthetic_model(mixed=False)
    assert any("no mixed-step measurement" in n for n in without.notes) and not with_mixed.notes
    rng = np.random.default_rng(0)
    a, _ = with_mixed.step_ms(rng, 4, 520, 256)  # 520: the middle of its 16-token context bucket
    b, _ = without.step_ms(rng, 4, 520, 256)
    assert a == pytest.approx(with_mixed._decode_median(4, 520)[0] + PREFILL_MS_PER_TOKEN * 256)
    assert b == pytest.approx(a + 2.0)  # the prefill curve's fixed 2 ms is paid again: pessimistic


# ------------------------------------------------------------------------------- the reference scheduler


def reference(
    arrival: list[float],
    prompt: list[int],
    output: list[int],
    model: StepModel,
    cfg: EngineConfig,
    done0: list[int] | None = None,
    times: dict[str, list[float]] | None = None,
    hold: Callable[[int, float], float] | None = None,
) -> tuple[list[float], list[int]]:
    """The same rules as planner.llm.engine, as a plain loop over steps (no SimPy): step start times and
    preemptions per request. Step times are deterministic in these tests (constant samples). `done0`: prompt
    tokens each request arrives with already computed (a KV sent from elsewhere); `times` gets each request's
    first-token and finish times ("first", "finish"). `hold(i, t)`: when request i, finished at t, gives its
    blocks back (a prefill replica holding them until its KV has crossed the link)."""
    rng = np.random.default_rng(0)
    n = len(arrival)
    state = [{"done": (done0 or [0] * n)[i], "gen": 0, "target": prompt[i], "blocks": 0} for i in range(n)]
    first, finish = [float("nan")] * n, [float("nan")] * n
    waiting: deque[int] = deque()
    running: list[int] = []
    free = cfg.kv_blocks
    preempts = [0] * n
    starts: list[float] = []
    t, nxt, finished = 0.0, 0, 0
    blocks = lambda tokens: math.ceil(tokens / cfg.block_size)  # noqa: E731
    pending: list[tuple[float, int]] = []  # (when, blocks) held until then
    while finished < n:
        while nxt < n and arrival[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        free += sum(b for r, b in pending if r <= t)
        pending = [(r, b) for r, b in pending if r > t]
        if not running and not waiting:
            t = arrival[nxt]
            continue
        budget, plan, preempted = cfg.max_num_batched_tokens, [], False
        k = 0
        while k < len(running) and budget > 0:
            i = running[k]
            s = state[i]
            dec = s["done"] >= s["target"]
            take = 1 if dec else min(s["target"] - s["done"], budget)
            more = blocks(s["done"] + take) - s["blocks"]
            gone = False
            while more > free:
                v = running.pop()
                free += state[v]["blocks"]
                state[v].update(blocks=0, done=0, target=prompt[v] + state[v]["gen"])
                waiting.appendleft(v)
                preempts[v] += 1
                preempted = True
                if v == i:
                    gone = True
                    break
            if gone:
                break
            free -= more
            s["blocks"] += more
            plan.append((i, take, dec))
            budget -= take
            k += 1
        while waiting and budget > 0 and len(running) < cfg.max_num_seqs and not preempted:
            i = waiting[0]
            s = state[i]
            take = s["target"] - s["done"]
            if take > budget:
                if not cfg.chunked_prefill:
                    break
                take = budget
            if blocks(s["done"] + take) > free:
                break
            waiting.popleft()
            running.append(i)
            s["blocks"] = blocks(s["done"] + take)
            free -= s["blocks"]
            plan.append((i, take, False))
            budget -= take
        if not plan:  # a step that preempted its only sequence schedules again at once; held blocks: wait
            if not preempted and pending:  # nothing fits until a held block comes back
                t = max(t, min(r for r, _ in pending))
            continue
        decs = [i for i, _, d in plan if d]
        ctx = sum(state[i]["done"] for i in decs) / len(decs) if decs else 0.0
        ms, _ = model.step_ms(rng, len(decs), ctx, sum(x for _, x, d in plan if not d))
        starts.append(t)
        t += ms / 1000
        for i, take, dec in plan:
            s = state[i]
            s["done"] += take
            if not dec and s["done"] < s["target"]:
                continue
            s["gen"] += 1
            if s["gen"] == 1:
                first[i] = t
            if s["gen"] >= output[i]:
                running.remove(i)
                if hold is None:
                    free += s["blocks"]
                else:
                    pending.append((hold(i, t), s["blocks"]))
                s["blocks"] = 0
                finished += 1
                finish[i] = t
    if times is not None:
        times["first"], times["finish"] = first, finish
    return starts, preempts


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    chunked=st.booleans(),
    max_seqs=st.integers(1, 6),
    budget=st.sampled_from([64, 128, 512]),
    kv_blocks=st.integers(20, 80),
)
def test_the_engine_matches_a_plain_reference_of_the_same_scheduler(
    n: int, seed: int, chunked: bool, max_seqs: int, budget: int, kv_blocks: int
) -> None:
    model = synthetic_model()
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, 0.05, n)).tolist()
    prompt = rng.integers(1, 120 if chunked else budget, n).tolist()
    output = rng.integers(1, 40, n).tolist()
    cfg = EngineConfig(
        max_num_seqs=max_seqs,
        max_num_batched_tokens=budget,
        chunked_prefill=chunked,
        block_size=8,
        kv_blocks=kv_blocks,
    )
    if any(cfg.check(p, o) for p, o in zip(prompt, output, strict=True)):
        return
    tr = simulate(_reqs(arrival, prompt, output), model, cfg, record_starts=True)
    starts, preempts = reference(arrival, prompt, output, model, cfg)
    assert tr.step_starts == pytest.approx(starts, abs=1e-12)
    assert tr.preempted.tolist() == preempts
