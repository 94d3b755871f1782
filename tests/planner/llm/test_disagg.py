"""Disaggregated prefill and decode: one pool is the aggregated engine; a lone request's TTFT is its prefill,
its link time and the decode side's first step, exactly; transfers on one link queue; bounds refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.llm.disagg import KvLink, Pool, simulate_pd
from planner.llm.engine import EngineConfig, EngineError, LlmRequests, simulate
from tests.planner.llm.test_llm_engine import synthetic_model

CFG = EngineConfig(max_num_seqs=64, max_num_batched_tokens=2048, kv_blocks=10_000)
LINK = KvLink(gb_per_s=1.0, latency_ms=2.0, kv_bytes_per_token=131_072, source="stated")


def _ms(model: object, batch: int, context: float, prefill: int) -> float:
    return model.step_ms(np.random.default_rng(0), batch, context, prefill)[0]  # type: ignore[attr-defined]


def test_one_pool_is_the_aggregated_engine_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    reqs = LlmRequests(np.sort(rng.uniform(0, 2, 200)), rng.integers(16, 900, 200), rng.integers(1, 40, 200))
    model = synthetic_model(spread=0.2)
    pd = simulate_pd(reqs, Pool(model, CFG, 3, "least-outstanding"), None, None, seed=9)
    agg = simulate(reqs, model, CFG, 3, "least-outstanding", seed=9)
    assert np.array_equal(pd.trace.first_s, agg.first_s) and np.array_equal(pd.trace.finish_s, agg.finish_s)
    assert list(pd.trace.itl_ms) == list(agg.itl_ms) and pd.trace.steps == agg.steps


def test_a_lone_requests_ttft_is_its_prefill_its_link_and_the_decode_sides_first_step() -> None:
    model = synthetic_model()  # no spread: every step its median
    reqs = LlmRequests(np.zeros(1), np.array([256]), np.array([5]))
    pd = simulate_pd(reqs, Pool(model, CFG, 1), Pool(model, CFG, 1), LINK)
    transfer = 0.002 + 256 * 131_072 / 1e9
    first = (_ms(model, 0, 0, 256) + _ms(model, 0, 0, 1)) / 1000 + transfer
    assert pd.link_s[0] == pytest.approx(transfer, abs=1e-12)
    assert pd.trace.first_s[0] == pytest.approx(first, abs=1e-12)
    assert pd.prefill is not None and pd.prefill.first_s[0] == pytest.approx(_ms(model, 0, 0, 256) / 1000)
    # four decode steps of one sequence over the 256-token prompt and what it generated
    decode = sum(_ms(model, 1, c, 0) for c in (256, 257, 258, 259)) / 1000
    assert pd.trace.finish_s[0] == pytest.approx(first + decode, abs=1e-12)
    assert pd.trace.prefill_tokens == 1 and pd.prefill.prefill_tokens == 256  # the decode side computed one


def test_ttft_moves_by_exactly_the_transfer_time_and_one_link_sends_one_kv_at_a_time() -> None:
    model = synthetic_model()
    one = LlmRequests(np.zeros(1), np.array([512]), np.array([3]))
    slow = KvLink(0.1, 2.0, 131_072, "stated")
    a = simulate_pd(one, Pool(model, CFG, 1), Pool(model, CFG, 1), LINK)
    b = simulate_pd(one, Pool(model, CFG, 1), Pool(model, CFG, 1), slow)
    assert b.trace.first_s[0] - a.trace.first_s[0] == pytest.approx(slow.seconds(512) - LINK.seconds(512))
    two = LlmRequests(np.zeros(2), np.array([256, 256]), np.array([3, 3]))
    pd = simulate_pd(two, Pool(model, CFG, 1), Pool(model, CFG, 2), slow)
    # prefilled in one step, the second KV waits for the first on the prefill replica's link
    assert pd.link_s.tolist() == pytest.approx([slow.seconds(256), 2 * slow.seconds(256)])


def test_a_prefill_replica_holds_a_kv_until_its_transfer_ends() -> None:
    """Room for one 256-token prompt (16 blocks of 16 in 20): the second prefill waits for the first KV to cross
    a slow link, as vLLM's connectors free the prefill side's blocks once the decode side has read them; with
    room for both it prefills at once."""
    model, slow = synthetic_model(), KvLink(0.1, 2.0, 131_072, "stated")
    two = LlmRequests(np.array([0.0, 0.001]), np.array([256, 256]), np.array([3, 3]))
    tight = EngineConfig(max_num_seqs=64, max_num_batched_tokens=256, kv_blocks=20)
    held = simulate_pd(two, Pool(model, tight, 1), Pool(model, CFG, 1), slow)
    roomy = simulate_pd(two, Pool(model, CFG, 1), Pool(model, CFG, 1), slow)
    assert held.prefill is not None and roomy.prefill is not None
    prefill_s = _ms(model, 0, 0, 256) / 1000
    first_sent = held.prefill.first_s[0] + slow.seconds(256)
    assert held.prefill.first_s[1] == pytest.approx(first_sent + prefill_s, abs=1e-12)
    assert roomy.prefill.first_s[1] < first_sent


def test_pools_size_their_own_work_and_bad_links_are_refused() -> None:
    rng = np.random.default_rng(3)
    reqs = LlmRequests(np.sort(rng.uniform(0, 1, 300)), rng.integers(16, 600, 300), rng.integers(1, 30, 300))
    model = synthetic_model(spread=0.1)
    pd = simulate_pd(reqs, Pool(model, CFG, 2), Pool(model, CFG, 3, "least-kv"), LINK, seed=1)
    assert np.isfinite(pd.trace.finish_s).all() and (pd.trace.first_s >= pd.link_s + reqs.arrival_s).all()
    assert pd.prefill is not None and pd.prefill.prefill_tokens == int(reqs.prompt.sum())
    assert pd.trace.prefill_tokens == 300 + int(sum(reqs.prompt[pd.trace.preempted > 0]))
    for bad in ({"gb_per_s": 0.0}, {"latency_ms": -1.0}, {"kv_bytes_per_token": 0.0}):
        with pytest.raises(EngineError):
            KvLink(**{"gb_per_s": 1.0, "latency_ms": 0.0, "kv_bytes_per_token": 1.0, "source": "x", **bad})  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="needs the KV link"):
        simulate_pd(reqs, Pool(model, CFG, 1), Pool(model, CFG, 1), None)


def test_fleetwise_simulate_disaggregates_on_a_shipped_run_and_refuses_a_link_without_pools() -> None:
    """tiny-chat on the shipped vLLM run: one prefill and one decode replica against one aggregated replica;
    decode steps no longer carry prefill chunks, so TPOT's tail falls, and TTFT pays the link."""
    import json

    from typer.testing import CliRunner

    from fleetwise_cli.main import app
    from tests.conftest import REPO

    run = str(REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json")
    base = ["simulate", "--run", run, "--scenario", str(REPO / "scenarios" / "llm" / "tiny-chat.yaml"),
            "--kv-blocks", "8192", "--block-size", "128", "--router", "least-outstanding", "--requests", "800",
            "--json"]  # fmt: skip
    agg = json.loads(CliRunner().invoke(app, base).output)
    res = CliRunner().invoke(
        app, [*base, "--decode-replicas", "1", "--kv-link-gbps", "50", "--kv-bytes-per-token", "8192"]
    )
    assert res.exit_code == 0, res.output
    pd = json.loads(res.output)
    assert pd["inputs"]["decode_replicas"] == 1 and pd["inputs"]["kv_link"]["gb_per_s"] == 50
    assert pd["tpot_ms"]["p99"] < agg["tpot_ms"]["p99"] and pd["ttft_ms"]["p50"] > agg["ttft_ms"]["p50"]
    assert any(w.startswith("disaggregated: 1 prefill and 1 decode") for w in pd["warnings"])
    for extra, said in (
        (["--kv-link-gbps", "5"], "give --decode-replicas"),
        (["--decode-replicas", "1"], "--kv-link-gbps"),
        (["--decode-replicas", "1", "--kv-link-gbps", "5"], "does not record KV bytes per token"),
    ):
        bad = CliRunner().invoke(app, [*base, *extra])
        assert bad.exit_code == 2 and said in bad.output, bad.output


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 10),
    seed=st.integers(0, 10_000),
    budget=st.sampled_from([64, 128, 512]),
    kv_blocks=st.integers(30, 80),
    gbps=st.floats(0.001, 10.0),
    latency_ms=st.floats(0.0, 5.0),
)
def test_one_prefill_and_one_decode_replica_follow_a_plain_reference_of_the_same_rules(
    n: int, seed: int, budget: int, kv_blocks: int, gbps: float, latency_ms: float
) -> None:
    """The plain reference scheduler (test_llm_engine.reference) run twice: the prefill replica on one-token
    requests, each holding its blocks until its KV's turn on the link (first come, first served) has ended, then
    the decode replica on requests that arrive then with all but their last prompt token computed. Same first
    tokens and finishes, to the float."""
    from tests.planner.llm.test_llm_engine import reference

    model = synthetic_model()
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, 0.05, n)).tolist()
    prompt = rng.integers(1, 120, n).tolist()
    output = rng.integers(1, 30, n).tolist()
    cfg = EngineConfig(max_num_seqs=4, max_num_batched_tokens=budget, block_size=8, kv_blocks=kv_blocks)
    if any(cfg.check(p, o) for p, o in zip(prompt, output, strict=True)):
        return
    link = KvLink(gbps, latency_ms, 4096, "stated")
    pd = simulate_pd(
        LlmRequests(np.array(arrival), np.array(prompt), np.array(output)),
        Pool(model, cfg, 1),
        Pool(model, cfg, 1),
        link,
    )
    sent, link_free = [0.0] * n, [0.0]

    def on_link(i: int, done: float) -> float:  # a finished prefill's KV joins the link's queue; blocks held
        link_free[0] = max(link_free[0], done) + link.seconds(prompt[i])
        sent[i] = link_free[0]
        return sent[i]

    pre: dict[str, list[float]] = {}
    reference(arrival, prompt, [1] * n, model, cfg, times=pre, hold=on_link)
    done = pre["finish"]
    order = sorted(range(n), key=lambda i: sent[i])
    dec: dict[str, list[float]] = {}
    reference([sent[i] for i in order], [prompt[i] for i in order], [output[i] for i in order], model, cfg,
              done0=[prompt[i] - 1 for i in order], times=dec)  # fmt: skip
    assert pd.prefill is not None and pd.prefill.finish_s.tolist() == pytest.approx(done, abs=1e-12)
    for k, i in enumerate(order):
        assert pd.trace.first_s[i] == pytest.approx(dec["first"][k], abs=1e-12)
        assert pd.trace.finish_s[i] == pytest.approx(dec["finish"][k], abs=1e-12)


def test_the_prefill_pool_finds_prefixes_as_an_aggregated_replica_does_and_sends_the_whole_prompt() -> None:
    """Requests a second apart sharing 20 of 21 blocks in 4 families: the prefill replica's cache finds exactly the
    blocks an aggregated replica finds, its link carries every prompt token, and a decode pool's own cache is
    refused (not modelled)."""
    ids = tuple((*(100 * (i % 4) + j for j in range(20)), 10_000 + i) for i in range(24))
    reqs = LlmRequests(np.arange(24.0), np.full(24, 21 * 16), np.full(24, 4), ids, 16)
    model = synthetic_model()
    cached = EngineConfig(max_num_seqs=64, max_num_batched_tokens=2048, kv_blocks=10_000, prefix_caching=True)
    agg = simulate(reqs, model, cached, 1, "prefix-aware")
    pd = simulate_pd(reqs, Pool(model, cached, 1, "prefix-aware"), Pool(model, CFG, 1), LINK)
    assert pd.prefill is not None and pd.prefill.cached_tokens is not None and agg.cached_tokens is not None
    assert pd.prefill.cached_tokens.tolist() == agg.cached_tokens.tolist() == [0] * 4 + [320] * 20
    assert pd.prefill.prefill_tokens == 24 * 336 - 20 * 320  # only the uncached suffixes were prefilled
    assert pd.link_s[0] == pytest.approx(LINK.seconds(336))  # the whole prompt's KV crosses the link
    with pytest.raises(EngineError, match="decode pool's prefix cache"):
        simulate_pd(reqs, Pool(model, cached, 1), Pool(model, cached, 1), LINK)
