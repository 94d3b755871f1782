"""Mutation fuzzing of the shipped runs and scenarios: the engine shared by the CI fuzz test and the longer
benchmark (benchmarks/fuzz_inputs.py). A mutated file must either be rejected with the format's own error or
give a result; any other exception is a crash, reported with the mutation that caused it."""

from __future__ import annotations

import copy
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from fleetwise_cli.main import summary_table
from measure.run import RunFileError, parse_run
from planner.evidence.catalog import run_curves
from planner.fleet.sizing import levels
from planner.serving.service import ServiceError, from_profile, from_run, load_profile
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import run_simulation
from planner.traffic.arrivals import generate
from planner.traffic.scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
SIM_REQUESTS = 3_000  # arrivals simulated per accepted scenario: the fuzz checks behaviour, not capacity

HOSTILE: list[Any] = [
    0,
    -1,
    1,
    0.5,
    1e-300,
    5e-324,
    1e308,
    -1e308,
    1e23,
    2**63,
    10**30,
    65_537,
    # at the edges of the accepted ranges: what validates must also simulate
    1e6,
    0.01,
    50.0,
    1e-3,
    1e7,
    1000.0,
    1_048_576,
    3.1e7,
    1e-6,
    3_600_000.0,
    "",
    "x" * 300,
    "<script>alert(1)</script>",
    "[/bold]![x](http://a.invalid/p.png)",
    "os:system",
    None,
    True,
    [],
    {},
    [1, 2, 3],
    {"a": 1},
    "2026-01-02T03:04:05",
    "9999-12-31T00:00:00+00:00",
    "1e999",
]


def paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of a JSON-like tree (the root excluded)."""
    out: list[tuple[Any, ...]] = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += paths(v, (*prefix, k))
    return out


def mutate(tree: Any, edits: list[tuple[int, int, int]]) -> Any:
    """Apply edits (path index, operation, value index): replace with a hostile value, delete, or duplicate a
    list item. Indices wrap, so any integers are a valid edit (hypothesis and a plain RNG both drive it)."""
    out = copy.deepcopy(tree)
    for path_i, op, value_i in edits:
        ps = paths(out)
        if not ps:
            break
        path = ps[path_i % len(ps)]
        parent = out
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op % 3 == 0:
            parent[key] = copy.deepcopy(HOSTILE[value_i % len(HOSTILE)])
        elif op % 3 == 1:
            del parent[key]
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key] = [parent[key], parent[key]]
    return out


def shipped_run_dicts() -> list[dict[str, Any]]:
    """The smaller shipped runs as dicts (the mlp run's raw samples make mutation slow without adding kinds)."""
    files = subprocess.run(
        ["git", "ls-files", "data/runs"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    found = [ROOT / f for f in files] or sorted((ROOT / "data" / "runs").glob("*.json"))
    small = sorted(found, key=lambda p: p.stat().st_size)[:2]
    return [json.loads(p.read_text()) for p in small]


def shipped_scenario_dicts() -> list[dict[str, Any]]:
    """Every shipped scenario as the dict its YAML holds."""
    return [load_scenario(p).model_dump(mode="json") for p in sorted((ROOT / "scenarios").glob("*.yaml"))]


def check_run(data: Any) -> str:
    """'rejected' or 'accepted'; raises on anything else. An accepted run is listed, tabled and modelled."""
    try:
        run = parse_run(json.dumps(data, allow_nan=False), verify_id=False)
    except RunFileError:
        return "rejected"
    run_curves(run)
    Console(file=io.StringIO(), width=200).print(summary_table(run))
    for prec in {p.precision for p in run.points if p.status == "ok"}:
        try:
            model = from_run(run, prec)
        except ServiceError:
            continue
        model.sustainable_items_per_s(model.max_batch, model.seq_lens[0] if model.seq_lens else None)
    return "accepted"


_PROFILE = None


def check_scenario(data: Any) -> str:
    """'rejected' or 'accepted'; raises on anything else. An accepted scenario is generated and simulated."""
    global _PROFILE
    if _PROFILE is None:
        _PROFILE = from_profile(load_profile(ROOT / "profiles" / "example-accelerator.yaml"))
    try:
        sc = parse_scenario(data, "fuzzed", ROOT / "scenarios")
        sc = sc.model_copy(
            update={"requests": min(sc.requests or SIM_REQUESTS, SIM_REQUESTS), "duration_s": None}
        )
        levels(sc, SIM_REQUESTS)
        traffic = generate(sc)
        if int(traffic.items.max()) > _PROFILE.max_batch:
            return "accepted"  # the simulator refuses such requests by design; generating them was the check
        run_simulation(sc, _PROFILE, 1, "central", BatchPolicy(_PROFILE.max_batch, 0.001), traffic=traffic)
    except ScenarioError:
        return "rejected"
    except ServiceError:
        return "rejected"
    return "accepted"


CHECKS: dict[str, tuple[Callable[[], list[dict[str, Any]]], Callable[[Any], str]]] = {
    "run": (shipped_run_dicts, check_run),
    "scenario": (shipped_scenario_dicts, check_scenario),
}
