"""`fleetwise schema <format>`: the JSON Schema of every file format fleetwise reads."""

from __future__ import annotations

import typer

from fleetwise_cli.common import write_json
from measure.run import (
    run_json_schema,
)

schema_app = typer.Typer(no_args_is_help=True, help="Print the JSON Schema of a file format.")


@schema_app.command("scenario")
def schema_scenario() -> None:
    """JSON Schema of the scenario file (planner/traffic/scenario.py)."""
    from planner.traffic.scenario import scenario_json_schema

    write_json(scenario_json_schema(), indent=2)


@schema_app.command("price-book")
def schema_price_book() -> None:
    """JSON Schema of the price-book file (planner/fleet/prices.py)."""
    from planner.fleet.prices import price_book_json_schema

    write_json(price_book_json_schema(), indent=2)


@schema_app.command("engine-benchmark")
def schema_engine_benchmark() -> None:
    """JSON Schema of the engine benchmark evidence file (planner/evidence/engine_benchmark.py)."""
    from planner.evidence.engine_benchmark import EngineBenchmark

    write_json(EngineBenchmark.model_json_schema(), indent=2)


@schema_app.command("llm-validation")
def schema_llm_validation() -> None:
    """JSON Schema of the LLM live validation file (planner/evidence/llm_validation.py)."""
    from planner.evidence.llm_validation import LlmValidation

    write_json(LlmValidation.model_json_schema(), indent=2)


@schema_app.command("profile")
def schema_profile() -> None:
    """JSON Schema of the assumed-profile file (planner/serving/service.py)."""
    from planner.serving.profiles import profile_json_schema

    write_json(profile_json_schema(), indent=2)


@schema_app.command("run")
def schema_run() -> None:
    """JSON Schema of the run file (measure/run/)."""
    write_json(run_json_schema(), indent=2)


@schema_app.command("llm-profile")
def schema_llm_profile() -> None:
    """JSON Schema of the assumed LLM profile file (planner/llm/roofline.py)."""
    from planner.llm.roofline import LlmProfile

    write_json(LlmProfile.model_json_schema(), indent=2)


@schema_app.command("plan")
def schema_plan() -> None:
    """JSON Schema of the saved plan file (planner/question/saved.py)."""
    from planner.question.saved import SavedPlan

    write_json(SavedPlan.model_json_schema(), indent=2)
