"""An LLM fleet over a day: hours sized, device-hours as the policy runs them, start-up time through the ramps;
replicas that join a running engine pool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from fleetwise_cli.commands.day import _print
from fleetwise_cli.common import out
from fleetwise_cli.main import app
from measure.run import EngineStartup, load_run, save_run
from planner.fleet.plan import Question, make_plan
from planner.llm.day import DayError, LlmDay, plan_day
from planner.llm.day_request import startups_from
from planner.llm.engine import EngineConfig, LlmRequests, simulate
from planner.llm.steps import step_model
from planner.traffic.scenario import parse_scenario
from tests.conftest import REPO, make_run
from tests.planner.fleet.test_sizing import book, profile
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


def test_fleetwise_day_under_an_autoscaler(tmp_path: Path) -> None:
    """The shipped vLLM run on tiny-chat-day's shape at 4 req/s peak, in 330 s windows: a day for each start-up
    time beside the schedule, its misses counted; a policy out of range is one line and exit 2."""
    sc = yaml.safe_load((REPO / "scenarios" / "llm" / "tiny-chat-day.yaml").read_text())
    sc["arrivals"]["peak_rate_rps"] = 4
    path = tmp_path / "day.yaml"
    path.write_text(yaml.safe_dump(sc))
    run = REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
    args = ["day", "--scenario", str(path), "--run", str(run), "--kv-blocks", "8192", "--block-size", "128",
            "--max-num-batched-tokens", "2048", "--startup-s", "0,60", "--cooldown-s", "120",
            "--autoscale", "concurrency:auto", "--window-s", "330"]  # fmt: skip
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert [a["policy"]["startup_s"] for a in d["autoscaled"]] == [0, 60]
    # auto: what the peak hour's sized replica holds in flight (4 req/s x tens of ms: well under one request)
    target = d["autoscaled"][0]["policy"]["target"]
    assert 0.01 < target < 1 and any(f"{target:.3g} requests in flight" in n for n in d["notes"])
    for a in d["autoscaled"]:
        assert len(a["hours"]) == 24 and a["window_s"] == 330 and a["device_hours_per_day"] >= 24
        assert a["requests_per_day"] == pytest.approx(4 * sum(sc["arrivals"]["hourly_multipliers"]) * 3600)
        assert max(h["mean_replicas"] for h in a["hours"]) > min(h["mean_replicas"] for h in a["hours"])
    with out.capture() as cap:  # the table the command prints, from the same day
        _print(LlmDay.model_validate(d))
    assert (
        "the day under the autoscaler" in cap.get()
        and f"requests in flight per replica -> {target:.3g}" in cap.get()
    )
    for extra, why in ((["--autoscale", "nope:1"], "METRIC:TARGET"), (["--window-s", "100"], "window")):
        bad = CliRunner().invoke(app, [*args, *extra])
        assert bad.exit_code == 2 and why in bad.output, bad.output


def test_the_llm_day_and_the_batch_planner_agree_on_a_day_both_can_express(tmp_path: Path) -> None:
    """One request at a time, 10 ms each: a batch profile at max_batch 1, and an engine that runs one sequence
    whose single token takes one 10 ms prefill step. Both planners size the same diurnal day (0, 25, 250 and
    125 req/s, p99 latency <= 200 ms) with their own simulators and searches; with no start-up and no cooldown
    the LLM day's device-hours are the batch planner's autoscaled ones, hour for hour."""
    mult = [0.0] * 6 + [0.1] * 6 + [1.0] * 6 + [0.5] * 6
    arrivals = {"process": "diurnal", "peak_rate_rps": 250, "hourly_multipliers": mult}
    batch_sc = parse_scenario(
        {
            "name": "day",
            "arrivals": arrivals,
            "duration_s": 86_400,
            "slo": [{"percentile": 99, "threshold_ms": 200}],
        }
    )
    path = profile(tmp_path, "det", {"dist": "deterministic", "ms": 10})
    q = Question(scenario=batch_sc, runs=(), profiles=(path,), max_batches=(1,), max_delays_ms=(0.0,))
    (batch,) = make_plan(q, book(det=2.0)).options
    llm_sc = parse_scenario(
        {
            "name": "day",
            "arrivals": arrivals,
            "llm": {"prompt": {"dist": "fixed", "value": 64}, "output": {"dist": "fixed", "value": 1}},
            "slo": [{"metric": "e2e", "percentile": 99, "threshold_ms": 200}],
            "requests": 4000,
        }
    )
    steps = [_point("prefill", 1, 10.0, seq=s) for s in (16, 64, 256)]
    steps += [_point("decode", 1, 10.0, ctx=c) for c in (64, 512)]
    run = make_run(steps)
    cfg = EngineConfig(max_num_seqs=1, max_num_batched_tokens=256, kv_blocks=1000)
    d = plan_day(llm_sc, run, step_model(run), cfg, "least-outstanding", (0.0,), cooldown_s=0, requests=4000)
    assert (
        [h.replicas for h in d.hours]
        == [h.replicas for h in batch.hourly]
        == [0] * 6 + [1] * 6 + [3] * 6 + [2] * 6
    )
    assert d.device_hours_per_day["0"] == batch.device_hours_per_day_autoscaled == 36


def test_the_day_takes_the_start_up_the_run_timed(tmp_path: Path) -> None:
    shipped = REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
    r = load_run(shipped)
    assert r.llm is not None and r.llm.engine is not None
    timed = EngineStartup(seconds=42.5, answered_after_s=40.0, how="process 7: a test's figure")
    llm = r.llm.model_copy(update={"engine": r.llm.engine.model_copy(update={"startup": timed})})
    path = save_run(r.model_copy(update={"llm": llm}).with_id(), tmp_path)
    sc = yaml.safe_load((REPO / "scenarios" / "llm" / "tiny-chat-day.yaml").read_text())
    sc["arrivals"]["peak_rate_rps"] = 4
    (tmp_path / "day.yaml").write_text(yaml.safe_dump(sc))
    args = ["day", "--scenario", str(tmp_path / "day.yaml"), "--kv-blocks", "8192", "--block-size", "128",
            "--max-num-batched-tokens", "2048", "--startup-s", "0,run", "--json", "--run"]  # fmt: skip
    res = CliRunner().invoke(app, [*args, str(path)])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["startup_s"] == [0, 42.5] and any("timed by run" in n for n in d["notes"])
    bad = CliRunner().invoke(app, [*args, str(shipped)])
    assert bad.exit_code == 2 and "no timed start-up (it was measured without --engine-pid)" in bad.output


def test_a_day_of_chat_sessions_needs_fewer_replicas_with_the_prefix_cache(tmp_path: Path) -> None:
    """tiny-chat-sessions' shared system prompts and multi-turn sessions over a day peaking at its 40 req/s: with
    the prefix cache (routed prefix-aware) the peak hours need fewer replicas than without, on the shipped vLLM
    run; the ramp's requests carry the sessions' prefixes too."""
    sc = yaml.safe_load((REPO / "scenarios" / "llm" / "tiny-chat-sessions.yaml").read_text())
    sc["arrivals"] = {
        "process": "diurnal",
        "peak_rate_rps": 40,
        "hourly_multipliers": [0.25] * 8 + [1.0] * 16,
    }
    path = tmp_path / "sessions-day.yaml"
    path.write_text(yaml.safe_dump(sc))
    run = REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
    args = ["day", "--scenario", str(path), "--run", str(run), "--kv-blocks", "8192", "--block-size", "128",
            "--max-num-batched-tokens", "2048", "--startup-s", "0", "--json"]  # fmt: skip
    days = {}
    for cache in (False, True):
        extra = ["--prefix-caching", "--router", "prefix-aware"] if cache else []
        res = CliRunner().invoke(app, [*args, *extra])
        assert res.exit_code == 0, res.output
        days[cache] = json.loads(res.output)
    peak = {c: d["hours"][12]["replicas"] for c, d in days.items()}
    assert peak[True] < peak[False], peak
    assert days[True]["device_hours_per_day"]["0"] < days[False]["device_hours_per_day"]["0"]
    bad = CliRunner().invoke(app, [*args, "--router", "prefix-aware"])
    assert bad.exit_code == 2 and "needs the prefix cache" in bad.output


def test_start_up_times_are_bounded_in_number_and_length() -> None:
    """Each start-up time is a day of simulations: a form or a command line cannot ask for a thousand."""
    r = load_run(REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json")
    assert startups_from("0, 30,90", r) == ((0.0, 30.0, 90.0), None)
    for text in ("", " , ", ",".join(["1"] * 9), "1" * 2000):
        with pytest.raises(DayError, match="1 to 8 start-up times"):
            startups_from(text, r)
