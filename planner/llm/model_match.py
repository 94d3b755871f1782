"""Evidence matches the question: a generative scenario that names its model takes runs and benchmarks of that
model only.

A parameter count, where both sides know one, decides (within PARAMETER_TOLERANCE). Otherwise the names do: a
scenario name (lower case) must appear in the last path component of what the evidence calls its model (a
served name, a Hugging Face id, a local folder, a preset). Evidence that says nothing about its model does not
match a scenario that names one. `--any-model` keeps mismatched evidence, labelled "another model" wherever it
is shown.
"""

from __future__ import annotations

from measure.run import Run
from planner.evidence.engine_benchmark import EngineBenchmark
from planner.llm.roofline import LlmProfile
from planner.traffic.scenario import ModelSpec

PARAMETER_TOLERANCE = 0.10  # a 10% difference in parameters is another model size, not a rounding


def _leaf(name: str) -> str:
    return name.strip().removeprefix("preset:").rstrip("/").rsplit("/", 1)[-1].lower()


def run_model(run: Run) -> tuple[list[str], int | None]:
    """What a run says about its model: names (preset, config name, served model) and parameter count."""
    names: list[str] = []
    params = None
    if run.llm is not None and run.llm.shape is not None:
        names.append(run.llm.shape.name)
        params = run.llm.shape.parameters
    if run.llm is not None and run.llm.engine is not None:
        names.append(run.llm.engine.model)
    model = run.workload.parameters.get("model")
    if isinstance(model, str):
        names.append(model)
    return list(dict.fromkeys(n for n in names if n)), params


def _verdict(
    spec: ModelSpec, names: list[str], params: int | None, what: str, verb: str = "measured"
) -> str | None:
    if spec.parameters is not None and params is not None:
        if abs(params - spec.parameters) <= PARAMETER_TOLERANCE * spec.parameters:
            return None
        return f"{what} {verb} a model of {params:.3g} parameters; the scenario is for {spec.label()}"
    leaves = [_leaf(n) for n in names]
    if spec.names and any(want.lower() in leaf for want in spec.names for leaf in leaves):
        return None
    if not names and params is None:
        return f"{what} does not say which model it measured; the scenario is for {spec.label()}"
    said = ", ".join(repr(n[:80]) for n in names) or f"{params:.3g} parameters"
    return f"{what} {verb} {said}; the scenario is for {spec.label()}"


def run_mismatch(spec: ModelSpec | None, run: Run) -> str | None:
    """Why the run is evidence of another model than the scenario's, or None (also when no model is named)."""
    if spec is None:
        return None
    names, params = run_model(run)
    return _verdict(spec, names, params, f"run {run.short_id()}")


def benchmark_mismatch(spec: ModelSpec | None, b: EngineBenchmark) -> str | None:
    """Why the benchmark is of another model than the scenario's, or None."""
    if spec is None:
        return None
    names = [] if b.model.startswith("unknown") else [b.model]
    return _verdict(spec, names, None, f"benchmark {b.short_id()}")


def profile_mismatch(spec: ModelSpec | None, p: LlmProfile) -> str | None:
    """Why the assumed profile is of another model than the scenario's, or None."""
    if spec is None:
        return None
    return _verdict(
        spec, [p.shape.name, *p.shape.names], p.shape.parameters(), f"assumed profile {p.name}", "describes"
    )
