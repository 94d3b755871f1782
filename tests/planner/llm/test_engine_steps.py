"""Decode steps of an engine run: from the engine's counters over each steady window where it has them, from
the heuristic share of the gaps where it has not, and every model says which it used."""

from __future__ import annotations

import numpy as np
import pytest

from measure.run import EngineCounters, Point, load_run
from planner.llm.engine_steps import FLOOR_SHARE, decode_samples, ttft_line
from planner.llm.steps import step_model
from tests.conftest import REPO

OLD_RUN = REPO / "data" / "runs" / "llm-engine-cpu-20261129T142232Z-be0a55eb155d.json"


def points() -> tuple[Point, Point]:
    """A concurrency-1 decode point and one above it at the same prompt, from the shipped (schema-5) run."""
    run = load_run(OLD_RUN)
    dec = [p for p in run.points if p.phase == "decode" and p.engine is not None]
    alone = next(p for p in dec if p.engine.concurrency == 1)  # type: ignore[union-attr]
    many = next(
        p
        for p in dec
        if p.engine.concurrency > 1 and p.engine.prompt_tokens == alone.engine.prompt_tokens  # type: ignore[union-attr]
    )
    return alone, many


def windowed(p: Point, seconds: float | None, steps: float, prompt_tokens: float) -> Point:
    c = EngineCounters(
        source="test", seconds=seconds, requests_sent=10, steps=steps, prompt_tokens=prompt_tokens
    )
    return p.model_copy(update={"engine": p.engine.model_copy(update={"counters": c})})  # type: ignore[union-attr]


def test_a_steady_window_gives_the_mean_decode_step_less_the_prompt_tokens_it_carried() -> None:
    alone, many = points()
    # 200 steps in 1 s: 5 ms a step; 2,000 prompt tokens over them at 0.01 ms/token: 0.1 ms a step
    x, counted = decode_samples(windowed(many, 1.0, 200, 2000), alone, 0.01)
    assert counted and float(np.mean(x)) == pytest.approx(4.9)
    shape = np.asarray(alone.raw_latencies_ms)
    assert np.allclose(x / shape, x[0] / shape[0])  # the concurrency-1 gaps' spread, scaled
    # prompts that would leave nothing of the step: the decode step keeps a floor share of it
    x, _ = decode_samples(windowed(many, 1.0, 200, 10**6), alone, 0.01)
    assert float(np.mean(x)) == pytest.approx(FLOOR_SHARE * 5.0)


def test_without_windowed_counters_the_heuristic_share_of_the_gaps_is_used() -> None:
    alone, many = points()
    for p in (many, windowed(many, None, 200, 2000)):  # none, or read over the whole setting (schema 6)
        x, counted = decode_samples(p, alone, 0.01)
        gaps = np.sort(np.asarray(p.raw_latencies_ms))
        assert not counted and x.size < gaps.size and np.array_equal(x, gaps[: x.size])
    x, counted = decode_samples(alone, None, None)  # one stream: every gap is a decode step
    assert counted and np.array_equal(x, np.asarray(alone.raw_latencies_ms))


def test_the_model_says_which_decode_points_came_from_where() -> None:
    run = load_run(OLD_RUN)
    assert any("heuristic" in n for n in step_model(run).notes)
    alone = {
        p.engine.prompt_tokens: p
        for p in run.points
        if p.phase == "decode" and p.engine is not None and p.engine.concurrency == 1
    }
    pts = [
        windowed(p, 1.0, 100, 0) if p.phase == "decode" and p.engine and p.engine.concurrency > 1 else p
        for p in run.points
    ]
    model = step_model(run.model_copy(update={"points": pts}))
    n = sum(1 for p in pts if p.phase == "decode" and p.engine and p.engine.concurrency > 1)
    assert any(note.startswith(f"engine run: {n} decode point(s)") for note in model.notes)
    assert not any("heuristic" in note for note in model.notes)
    # 10 ms a step and no prompt: every decode median above one stream is 10 ms x the c=1 shape's median/mean
    for a in alone.values():
        shape = np.asarray(a.raw_latencies_ms)
        assert a.context_tokens is not None
        ctx = a.context_tokens
        want = 10.0 * float(np.median(shape) / np.mean(shape))
        assert float(model.decode[ctx].medians[-1]) == pytest.approx(want, rel=1e-6)


def test_ttft_is_split_only_when_it_grows_with_the_prompt() -> None:
    run = load_run(OLD_RUN)
    line = ttft_line(run.points)
    assert isinstance(line, tuple) and line[0] > 0 and line[1] > 0
    one = [p for p in run.points if p.phase == "prefill"][:1]
    assert isinstance(ttft_line(one), str)
