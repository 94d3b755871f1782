"""Mutation fuzzing of the shipped runs and scenarios, imported engine benchmarks (vllm bench serve, GuideLLM,
AIPerf), LLM validation files and generative scenarios: the engine shared by the CI fuzz test and the longer
benchmark (benchmarks/fuzz_inputs.py). A mutated file must either be rejected with the format's own error or
give a result; any other exception is a crash, reported with the mutation that caused it."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from typer.testing import CliRunner

from fleetwise_cli.main import app
from fleetwise_cli.render.run import summary_table
from measure.run import Run, RunFileError, load_run, parse_run
from planner.evidence.bench_import import convert
from planner.evidence.catalog import run_curves
from planner.evidence.engine_benchmark import BenchmarkFileError
from planner.fleet.levels import levels
from planner.llm.bench_check import check_benchmark
from planner.llm.engine import EngineConfig, EngineError
from planner.llm.simulation import run_llm_simulation
from planner.llm.steps import StepModelError, step_model
from planner.serving.profiles import load_profile
from planner.serving.service import ServiceError
from planner.serving.service_from import from_profile, from_run
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


LLM_SIM_REQUESTS = 300
FIXTURES = ROOT / "tests" / "fixtures" / "benchmarks"
_LLM_RUN: list[Run] = []


def llm_run() -> Run:
    """The shipped engine run whose step model replays the LLM kinds (read once)."""
    if not _LLM_RUN:
        _LLM_RUN.append(load_run(next((ROOT / "data" / "runs").glob("llm-engine-cpu-*be0a55eb155d.json"))))
    return _LLM_RUN[0]


def benchmark_dicts() -> list[dict[str, Any]]:
    """One result of each tool: AIPerf and GuideLLM as they wrote them (GuideLLM's records trimmed to 12), and a
    detailed vllm bench serve result."""
    gl = json.loads((FIXTURES / "guidellm-0.8.1-benchmarks.json").read_text())
    for b in gl["benchmarks"]:
        b["requests"] = {k: v[:12] if isinstance(v, list) else v for k, v in b["requests"].items()}
    n = 12
    vllm = {
        "backend": "vllm", "model_id": "m", "request_rate": 4.0, "burstiness": 1.0, "completed": n, "failed": 0,
        "duration": 3.0, "request_throughput": 4.0, "output_throughput": 80.0, "total_input_tokens": 100 * n,
        "total_output_tokens": 20 * n, "mean_ttft_ms": 20.0, "median_ttft_ms": 20.0, "p99_ttft_ms": 30.0,
        "mean_tpot_ms": 5.0, "median_tpot_ms": 5.0, "p99_tpot_ms": 6.0, "input_lens": [100] * n,
        "output_lens": [20] * n, "ttfts": [0.02] * n, "itls": [[0.005] * 19] * n, "errors": [""] * n,
        "start_times": [0.25 * i for i in range(n)],
    }  # fmt: skip
    return [json.loads((FIXTURES / "aiperf-0.13.0-profile_export_aiperf.json").read_text()), gl, vllm]


def check_benchmark_file(data: Any) -> str:
    """'rejected' or 'accepted'; an accepted result is converted and every level replayed on the engine model."""
    raw = json.dumps(data, allow_nan=False).encode()
    try:
        b = convert(data, raw, "fuzz machine", "fuzzed")
        run = llm_run()
        check_benchmark(b, run, "fp32", step_model(run, "fp32"), EngineConfig(kv_blocks=100_000))
    except (BenchmarkFileError, EngineError, StepModelError):
        return "rejected"
    return "accepted"


def llm_validation_dicts() -> list[dict[str, Any]]:
    """The shipped LLM validation, its request records trimmed to 40 a level (mutation walks every node)."""
    files = sorted((ROOT / "data" / "validations").glob("llm-validation-be0a55eb155d-*Z.json"))  # of its run
    v = json.loads(files[0].read_text())
    for lv in v["levels"]:
        lv["requests_sent"] = lv["requests_sent"][:40]
    return [v]


def check_llm_validation(data: Any) -> str:
    """Through the command line, as a user would: `validate --recheck` exits 0 (accepted) or 2 (rejected)."""
    run = next((ROOT / "data" / "runs").glob("llm-engine-cpu-*be0a55eb155d.json"))
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "v.json"
        f.write_text(json.dumps(data, allow_nan=False))
        res = CliRunner().invoke(app, ["validate", "--recheck", str(f), "--run", str(run), "--out", tmp])
    if res.exit_code == 2:
        return "rejected"
    if res.exit_code != 0 or (res.exception is not None and not isinstance(res.exception, SystemExit)):
        raise RuntimeError(
            f"validate --recheck ended with {res.exit_code}: {res.exception!r} {res.output[-300:]}"
        )
    return "accepted"


def llm_scenario_dicts() -> list[dict[str, Any]]:
    """Every shipped generative scenario."""
    return [
        load_scenario(p).model_dump(mode="json") for p in sorted((ROOT / "scenarios" / "llm").glob("*.yaml"))
    ]


def check_llm_scenario(data: Any) -> str:
    """'rejected' or 'accepted'; an accepted scenario's requests are drawn and simulated on the engine model."""
    run = llm_run()
    try:
        sc = parse_scenario(data, "fuzzed", ROOT / "scenarios" / "llm")
        requests = min(sc.requests or LLM_SIM_REQUESTS, LLM_SIM_REQUESTS)
        run_llm_simulation(
            sc, step_model(run, "fp32"), EngineConfig(kv_blocks=100_000), 1, "round-robin", run, requests
        )
    except (ScenarioError, EngineError, StepModelError):
        return "rejected"
    return "accepted"


CHECKS: dict[str, tuple[Callable[[], list[dict[str, Any]]], Callable[[Any], str]]] = {
    "run": (shipped_run_dicts, check_run),
    "scenario": (shipped_scenario_dicts, check_scenario),
    "benchmark": (benchmark_dicts, check_benchmark_file),
    "llm-validation": (llm_validation_dicts, check_llm_validation),
    "llm-scenario": (llm_scenario_dicts, check_llm_scenario),
}
