"""Every shipped scenario runs against the shipped CPU run and the example profile; expected outputs pin
the simulator's results for the profile so that a change in them is a visible, deliberate diff.

Regenerate after an intended change with: FLEETWISE_REGENERATE=1 pytest tests/planner/fleet/test_shipped_scenarios.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from measure.run import load_run
from planner.serving.profiles import load_profile
from planner.serving.service_from import from_profile, from_run
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import run_simulation
from planner.traffic.scenario import load_scenario
from tests.conftest import shipped_run

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = ROOT / "tests" / "expected"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
PINNED = (
    "stable",
    "requests_measured",
    "latency_ms",
    "queue_ms",
    "utilization",
    "mean_batch_size",
    "energy_j_per_request",
    "rejected",
)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_shipped_scenario_against_the_example_profile_matches_its_expected_output(path: Path) -> None:
    model = from_profile(load_profile(ROOT / "profiles" / "example-accelerator.yaml"))
    sc = load_scenario(path)
    r = run_simulation(sc, model, 8, "central", BatchPolicy(8, 0.005), requests=20_000)
    assert r.source == "assumed" and r.warnings[0].startswith("assumed, not measured")
    got = {k: v for k, v in r.model_dump(mode="json").items() if k in PINNED}
    target = EXPECTED / f"{path.stem}--example-accelerator.json"
    if os.environ.get("FLEETWISE_REGENERATE"):
        target.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(target.read_text())
    assert got.keys() == want.keys()
    for k in PINNED:
        assert got[k] == (pytest.approx(want[k], rel=1e-9) if isinstance(want[k], float) else want[k]), k


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_shipped_scenario_runs_against_the_shipped_cpu_runs(path: Path) -> None:
    sc = load_scenario(path)
    run = load_run(shipped_run("transformer-encoder" if sc.size.seq_len else "mlp"))
    model = from_run(run, "fp32")
    r = run_simulation(sc, model, 2, "jsq", BatchPolicy(16, 0.002), requests=20_000)
    assert r.source == "measured" and r.evidence == f"run:{run.id}"
    assert r.stable and r.latency_ms is not None and r.latency_ms.p99 >= r.latency_ms.p50 > 0
    assert r.energy_j_per_request is None and "unavailable" in r.energy_note  # this VM has no RAPL
    assert len(r.slo) == len(sc.slo)
