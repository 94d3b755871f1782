"""The engine's own counters: vLLM's /metrics read around every setting, their differences recorded in the run,
an engine without them named; parsed bounded by prometheus_client's parser."""

from __future__ import annotations

import pytest

from measure.engine_client.closed_loop import execute_engine
from measure.engine_client.metrics import counters_between, parse_metrics
from measure.engine_client.session import EngineRequest, plan_engine
from tests.conftest import REPO
from tests.measure.engine_client.test_endpoint import Script, _stack, server  # noqa: F401 (the fixture)

FIXTURES = REPO / "tests" / "fixtures" / "engine"


def test_two_real_vllm_pages_give_the_counters_of_the_requests_between_them() -> None:
    """Captured from vLLM 0.32.0 (CPU) around three sequential requests of 12 prompt and 8 output tokens."""
    before = parse_metrics((FIXTURES / "vllm-0.32.0-metrics-before.txt").read_text())
    after = parse_metrics((FIXTURES / "vllm-0.32.0-metrics-after.txt").read_text())
    c = counters_between(before, after, requests_sent=3)
    assert c is not None and c.source == "vllm /metrics"
    assert (c.prompt_tokens, c.generation_tokens, c.steps) == (36, 24, 24)  # one token a step, one at a time
    assert c.step_tokens == 60 and c.preemptions == 0 and c.running_at_end == 0
    assert c.step_tokens_histogram["+Inf"] == 24 and c.step_tokens_histogram["1.0"] <= 24


def test_a_restarted_engine_gives_no_difference_and_says_why() -> None:
    after = parse_metrics((FIXTURES / "vllm-0.32.0-metrics-before.txt").read_text())
    before = parse_metrics((FIXTURES / "vllm-0.32.0-metrics-after.txt").read_text())  # counters went down
    c = counters_between(before, after, requests_sent=3)
    assert c is not None and c.generation_tokens is None and any("restarted" in n for n in c.notes)
    assert counters_between("GET /metrics: HTTP 404", after, 3) is None


def test_malformed_metrics_text_is_refused_by_the_parser() -> None:
    with pytest.raises(ValueError):
        parse_metrics('vllm:prompt_tokens_total{engine="0" 12\n')


@pytest.mark.parametrize("exposed", [True, False])
def test_every_setting_records_the_engines_counters_or_the_run_says_there_are_none(
    server: str,  # noqa: F811
    exposed: bool,
) -> None:
    Script.metrics = exposed
    req = EngineRequest(url=server, model="fake-model", prompt_tokens=(16,), concurrencies=(1, 2),
                        output_tokens=6, max_requests=8, min_requests=4, max_seconds=20)  # fmt: skip
    run, _ = execute_engine(plan_engine(req, _stack, ["test"]))
    notes = run.methodology.notes
    for p in run.points:
        assert p.engine is not None
        c = p.engine.counters
        if not exposed:
            assert c is None
            continue
        # read over the steady window: every steady request's tokens are in it, and those of the streams in
        # flight at its edges partly; a prompt is counted as it arrives (what usage said a prompt is), so
        # the window holds about the prompts sent in it (a send while a reading is taken may fall either side)
        e = p.engine
        assert c is not None and c.seconds is not None and 0 < c.seconds <= e.steady_s + 0.5
        assert c.requests_sent >= e.requests and e.edge_excluded is not None
        assert e.requests * 6 <= c.generation_tokens <= (c.requests_sent + e.concurrency) * 6
        assert abs(c.prompt_tokens / e.prompt_tokens_reported - c.requests_sent) <= e.concurrency
    said = next(n for n in notes if n.startswith("engine counters"))
    assert ("HTTP 404" in said) == (not exposed)


def test_prefill_behind_a_cached_prefix_is_measured_and_its_cost_fitted(server: str) -> None:  # noqa: F811
    """The scripted engine computes only what its cache misses, and each computed token costs ATTEND_MS more per
    cached token: the run holds the prefills with and without the prefix, the engine's counters show every
    measured request found it, and the step model's fitted cost per cached token is the engine's."""
    from planner.llm.steps import step_model
    from tests.measure.engine_client.test_endpoint import ATTEND_MS

    Script.metrics = True
    req = EngineRequest(url=server, model="fake-model", prompt_tokens=(16, 64), concurrencies=(1, 2),
                        output_tokens=4, max_requests=12, min_requests=6, max_seconds=20,
                        cached_prefixes=(256, 1024), cached_suffix=32)  # fmt: skip
    run, _ = execute_engine(plan_engine(req, _stack, ["test"]))
    behind = {p.cached_tokens: p for p in run.points if p.cached_tokens is not None}
    assert sorted(behind) == [0, 256, 1024] and run.sweep.complete
    for c, p in behind.items():
        assert p.phase == "prefill" and p.seq_len == 32 and p.engine is not None
        assert p.engine.prompt_tokens == c + 32 and p.status != "failed"
        counters = p.engine.counters
        assert counters is not None and counters.prefix_cache_hits == c * counters.requests_sent
    model = step_model(run)
    assert model.cached_attend_ms == pytest.approx(ATTEND_MS, rel=0.35)
    assert any("behind a cached prefix" in n for n in model.notes)
    # the uncached curves are the run's own: the prefixed points are not prefill points of 288 or 1056 tokens
    assert model.prefill.xs.max() <= 64
