"""Evidence matches the question: a scenario that names its model is sized on that model's evidence only."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from fleetwise_cli.main import app
from measure.run import load_run
from planner.evidence.bench_import import import_file
from planner.llm.model_match import benchmark_mismatch, run_mismatch
from planner.traffic.scenario import ModelSpec, load_scenario
from tests.conftest import REPO, shipped_files

LLAMA_8B = ModelSpec(names=["Llama-3.1-8B"], parameters=8_030_261_248)
TINY = load_scenario(REPO / "scenarios" / "llm" / "tiny-chat.yaml").llm.model  # type: ignore[union-attr]
AIPERF = REPO / "tests" / "fixtures" / "benchmarks" / "aiperf-0.13.0-profile_export_aiperf.json"


def test_a_run_matches_by_parameters_and_an_engine_run_by_its_served_name() -> None:
    tiny = load_run(next(f for f in shipped_files() if f.name.startswith("llm-cpu-")))
    engine = load_run(next(f for f in shipped_files() if f.name.startswith("llm-engine-")))
    assert TINY is not None and run_mismatch(TINY, tiny) is None and run_mismatch(TINY, engine) is None
    why = run_mismatch(LLAMA_8B, tiny)
    assert why is not None and "6.31e+05 parameters" in why and "Llama-3.1-8B" in why
    why = run_mismatch(ModelSpec(names=["Llama-3.1-70B"]), engine)
    assert why is not None and "tiny-llm" in why  # it says what it measured
    assert run_mismatch(None, tiny) is None  # a scenario that names no model takes any model's evidence
    assert run_mismatch(ModelSpec(parameters=650_000), tiny) is None  # within 10%
    assert run_mismatch(ModelSpec(parameters=800_000), tiny) is not None


def test_a_benchmark_that_does_not_say_its_model_is_not_evidence_of_a_named_one() -> None:
    b = import_file(AIPERF, "NVIDIA H200")
    assert benchmark_mismatch(None, b) is None
    got = benchmark_mismatch(LLAMA_8B, b)
    assert got is not None and ("does not say" in got or "measured" in got)


def test_sizing_leaves_another_models_run_out_unless_asked_and_then_labels_it(tmp_path: Path) -> None:
    sc = yaml.safe_load((REPO / "scenarios" / "llm" / "tiny-chat.yaml").read_text())
    sc["llm"]["model"] = {"names": ["Llama-3.1-8B"], "parameters": 8_030_261_248}
    sc["requests"] = 600
    path = tmp_path / "llama.yaml"
    path.write_text(yaml.safe_dump(sc))
    tiny = next(f for f in shipped_files() if f.name.startswith("llm-cpu-"))
    base = ["size", "--scenario", str(path), "--runs", str(tiny), "--precision", "fp32", "--max-num-seqs", "64",
            "--max-num-batched-tokens", "2048"]  # fmt: skip
    refused = CliRunner().invoke(app, base)
    assert refused.exit_code == 2 and "no evidence of the scenario's model" in refused.output
    assert "6.31e+05 parameters" in refused.output and "--any-model" in refused.output
    kept = CliRunner().invoke(app, [*base, "--any-model", "--json"])
    assert kept.exit_code == 0, kept.output
    plan = json.loads(kept.output)
    assert plan["options"] and all(o["another_model"] for o in plan["options"])
    assert all(o["warnings"][0].startswith("ANOTHER MODEL") for o in plan["options"])
    assert plan["answer"].startswith("ANOTHER MODEL") or "no option" in plan["answer"]
    # the shipped tiny-chat names the tiny model: its own runs are evidence, nothing is left out
    own = CliRunner().invoke(
        app, ["size", "--scenario", str(REPO / "scenarios" / "llm" / "tiny-chat.yaml"), "--runs", str(tiny),
              "--precision", "fp32", "--max-num-seqs", "64", "--max-num-batched-tokens", "2048", "--requests",
              "600", "--json"],
    )  # fmt: skip
    assert own.exit_code == 0, own.output
    mine = json.loads(own.output)
    assert (
        not [n for n in mine["notes"] if n.startswith("left out")] and not mine["options"][0]["another_model"]
    )
