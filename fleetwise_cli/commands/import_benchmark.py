"""`fleetwise import` (engine benchmark results from vllm bench serve, GuideLLM, AIPerf) and
`fleetwise validate --benchmark` (such a result predicted from an LLM run's curves)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from fleetwise_cli.common import out, write_json
from fleetwise_cli.errors import fail
from fleetwise_cli.render.benchmark import print_benchmark, print_check
from measure.run import RunFileError, check_output_dir, load_run
from planner.evidence.bench_import import import_file
from planner.evidence.engine_benchmark import BenchmarkFileError, replica_shape, save_benchmark
from planner.llm.bench_check import check_benchmark
from planner.llm.engine import EngineConfig, EngineError, kv_blocks_from_run
from planner.llm.steps import StepModelError, step_model


def import_cmd(
    file: Path = typer.Argument(..., help="a vllm bench serve, GuideLLM or AIPerf result JSON"),
    out_dir: Path = typer.Option(Path("data/benchmarks"), "--out", help="folder for the evidence file"),
    hardware: str = typer.Option(
        None,
        help="what one replica of the engine ran on (results rarely say): e.g. 'NVIDIA H200' or '8x NVIDIA H200'",
    ),
    devices_per_replica: int = typer.Option(
        None,
        "--devices-per-replica",
        help="devices one engine replica used (default: the count in --hardware, else 1)",
    ),
    tp: int = typer.Option(
        None, "--tp", help="tensor-parallel size of the engine (vLLM tensor_parallel_size)"
    ),
    pp: int = typer.Option(None, "--pp", help="pipeline-parallel size (vLLM pipeline_parallel_size)"),
    dp: int = typer.Option(
        None, "--dp", help="data-parallel ranks inside one replica (vLLM data_parallel_size)"
    ),
    as_json: bool = typer.Option(False, "--json", help="the evidence file as JSON on stdout"),
) -> None:
    """Convert a load generator's result into a fleetwise engine benchmark (evidence), with the tool's names.

    Cost is replicas x devices per replica x the price per device-hour, so say what one replica was."""
    try:
        check_output_dir(out_dir)
        replica = replica_shape(hardware, devices_per_replica, tp, pp, dp)
        b = import_file(file, hardware, replica)
        path = save_benchmark(b, out_dir)
    except (BenchmarkFileError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write into {out_dir}: {exc.strerror or exc}") from None
    if as_json:
        write_json(b.model_dump(mode="json"))
        return
    print_benchmark(b)
    out.print(escape(f"written: {path}"), highlight=False, soft_wrap=True)


def validate_benchmark(
    benchmark: Path,
    run: Path,
    precision: str | None,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    chunked_prefill: bool,
    block_size: int,
    kv_blocks: int | None,
    as_json: bool,
) -> None:
    """Predict an imported (or importable) benchmark from the run's curves and print the error per metric."""
    try:
        bench = import_file(benchmark)
        r = load_run(run)
        if not r.is_llm:
            raise StepModelError(
                f"run {r.short_id()} is a batch run: a benchmark of an LLM engine needs an LLM run"
            )
        have = sorted({p.precision for p in r.points if p.phase is not None and p.latency_ms})
        prec = precision or (have[0] if len(have) == 1 else "")
        if prec not in have:
            raise StepModelError(f"--precision: the run has LLM points at {', '.join(have)}; name one")
        model = step_model(r, prec)
        blocks, _ = kv_blocks_from_run(r, prec, block_size, kv_blocks)
        cfg = EngineConfig(max_num_seqs, max_num_batched_tokens, chunked_prefill, block_size, blocks)
        check = check_benchmark(bench, r, prec, model, cfg)
    except (BenchmarkFileError, RunFileError, StepModelError, EngineError, ValueError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        write_json(check.model_dump(mode="json"))
        return
    print_check(check)
