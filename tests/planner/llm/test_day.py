"""An LLM fleet over a day: hours sized, device-hours as the policy runs them, start-up time through the ramps;
replicas that join a running engine pool."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from planner.llm.day import DayError, plan_day
from planner.llm.engine import EngineConfig, LlmRequests, simulate
from planner.traffic.scenario import parse_scenario
from tests.conftest import REPO, make_run
from tests.planner.llm.test_llm_engine import _point, synthetic_model

MULTS = [0.2] * 8 + [1.0] * 10 + [0.2] * 6  # night, a ten-hour peak, evening


def _day(peak: float) -> dict:  # type: ignore[type-arg]
    return {
        "name": "day",
        "arrivals": {"process": "diurnal", "peak_rate_rps": peak, "hourly_multipliers": MULTS},
        "llm": {
            "prompt": {"dist": "uniform", "low": 64, "high": 256},
            "output": {"dist": "uniform", "low": 8, "high": 32},
        },
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 60}],
        "requests": 1000,
    }


def test_hours_are_sized_and_a_slow_start_up_misses_slos_through_the_ramp() -> None:
    model = synthetic_model()
    run = make_run([_point("prefill", 1, 5, seq=64)])  # a Source for labels only: the model times the steps
    cfg = EngineConfig(max_num_seqs=64, max_num_batched_tokens=2048, kv_blocks=10_000)
    sc = parse_scenario(_day(300.0))
    d = plan_day(
        sc, run, model, cfg, "least-outstanding", (0.0, 90.0), cooldown_s=600, requests=800, ramp_s=180
    )
    night, peak = d.hours[0].replicas, d.hours[8].replicas
    assert peak > night >= 1 and all(h.replicas == (peak if 8 <= h.hour < 18 else night) for h in d.hours)
    # device-hours: every hour's replicas and the surplus through the cooldown; a reactive start-up is inside its
    # hour, a pre-warmed one runs that long ahead of it
    base = 10 * peak + 14 * night + (peak - night) * 600 / 3600
    assert d.device_hours_per_day["0"] == d.device_hours_per_day["90"] == pytest.approx(base)
    assert d.prewarmed_device_hours_per_day["0"] == pytest.approx(base)
    assert d.prewarmed_device_hours_per_day["90"] == pytest.approx(base + (peak - night) * 90 / 3600)
    (r0,) = [r for r in d.ramps if r.startup_s == 0]
    (r90,) = [r for r in d.ramps if r.startup_s == 90]
    assert r0.into_hour == r90.into_hour == 8 and r0.requests == r90.requests > 0
    assert r90.missed > r0.missed and r90.missed_share > 0.01


def test_a_day_needs_diurnal_arrivals_and_bounded_start_up_times() -> None:
    model = synthetic_model()
    run = make_run([_point("prefill", 1, 5, seq=64)])
    cfg = EngineConfig(kv_blocks=10_000)
    flat = parse_scenario({**_day(10.0), "arrivals": {"process": "poisson", "rate_rps": 10}})
    with pytest.raises(DayError, match="diurnal arrivals"):
        plan_day(flat, run, model, cfg, "round-robin", (0.0,))
    with pytest.raises(DayError, match="start-up times"):
        plan_day(parse_scenario(_day(10.0)), run, model, cfg, "round-robin", (4000.0,))


def test_replicas_that_join_serve_the_requests_after_them() -> None:
    """An overload on one replica: with a second joining at 1 s, the requests after it wait less; before it,
    nothing changes (the pool is the same until then)."""
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 3, 900))
    reqs = LlmRequests(t, rng.integers(64, 256, 900), rng.integers(8, 32, 900))
    model, cfg = synthetic_model(), EngineConfig(max_num_seqs=64, kv_blocks=10_000)
    alone = simulate(reqs, model, cfg, 1, "least-outstanding")
    joined = simulate(reqs, model, cfg, 1, "least-outstanding", scale_ups=((1.0, 1),))
    early, late = t < 0.5, t > 1.5
    assert np.array_equal(alone.first_s[early], joined.first_s[early])
    assert np.median((joined.first_s - t)[late]) < np.median((alone.first_s - t)[late])


def test_fleetwise_day_on_the_shipped_vllm_run() -> None:
    run = REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
    args = ["day", "--scenario", str(REPO / "scenarios" / "llm" / "tiny-chat-day.yaml"), "--run", str(run),
            "--kv-blocks", "8192", "--block-size", "128", "--max-num-batched-tokens", "2048", "--json"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert set(d["device_hours_per_day"]) == {"0", "90"} and len(d["hours"]) == 24
    slow = sum(r["missed"] for r in d["ramps"] if r["startup_s"] == 90)
    fast = sum(r["missed"] for r in d["ramps"] if r["startup_s"] == 0)
    assert slow > fast
    bad = CliRunner().invoke(app, [*args[:2], str(REPO / "scenarios" / "llm" / "tiny-chat.yaml"), *args[3:]])
    assert bad.exit_code == 2 and "diurnal arrivals" in bad.output, bad.output
