"""`fleetwise measure` for LLMs (in-process steps, or a running engine through --endpoint) and the LLM tables
`show` and `measure` print."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import EXIT_INTERRUPTED, err, fail, out, save_or_fallback, sigterm_as_interrupt
from measure.run import (
    PHASES,
    LlmGrid,
    Point,
    Run,
    RunFileError,
    Stack,
    Unavailable,
    check_output_dir,
    save_run,
)


@dataclass(frozen=True)
class LlmOptions:
    """The LLM options of `fleetwise measure`, as typed (comma lists unparsed)."""

    prefill_batch: str | None = None
    prompt_tokens: str | None = None
    decode_batch: str | None = None
    context: str | None = None
    mixed_batch: str | None = None
    mixed_context: int | None = None
    chunk: str | None = None
    memory_fraction: float = 0.9
    endpoint: str | None = None
    model: str | None = None
    concurrency: str | None = None
    output_tokens: int = 32
    requests: int = 48
    request_timeout: float = 60.0
    engine_param: tuple[str, ...] = ()


def _ints(text: str | None, what: str, default: list[int]) -> list[int]:
    from measure.core.parsing import parse_int_list

    return parse_int_list(text, what) if text else list(default)


def grid_from(opts: LlmOptions) -> LlmGrid:
    """The in-process grid: defaults where an option is not given; `--chunk 0` or `--context 0` is refused."""
    from measure.llm.plan import DEFAULT_GRID as d

    return LlmGrid(
        mode="in-process",
        prefill_batches=_ints(opts.prefill_batch, "prefill batch", d.prefill_batches),
        prompt_tokens=_ints(opts.prompt_tokens, "prompt tokens", d.prompt_tokens),
        decode_batches=_ints(opts.decode_batch, "decode batch", d.decode_batches),
        contexts=_ints(opts.context, "context", d.contexts),
        mixed_batches=_ints(opts.mixed_batch, "mixed batch", d.mixed_batches),
        mixed_context=opts.mixed_context or d.mixed_context,
        chunks=_ints(opts.chunk, "chunk", d.chunks),
    )


def _save(run: Run, out_dir: Path, interrupted: bool) -> None:
    if interrupted and not run.points:
        err.print("interrupted before any point finished; nothing written")
        raise typer.Exit(EXIT_INTERRUPTED)
    print_llm(run)
    path = save_or_fallback(lambda d: save_run(run, d), out_dir, "run")
    if interrupted:
        err.print(f"interrupted after {len(run.points)} points; saved an incomplete run", highlight=False)
        out.print(escape(str(path)), soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    out.print(escape(str(path)), soft_wrap=True, highlight=False)


def _guarded(work: Callable[[], tuple[Run, bool]], bad: tuple[type[Exception], ...]) -> tuple[Run, bool]:
    try:
        with sigterm_as_interrupt():  # kill or a service stop saves the points like Ctrl-C
            return work()
    except bad as exc:
        raise fail(str(exc)) from None


def measure_llm(request_kwargs: dict[str, object], opts: LlmOptions, out_dir: Path) -> None:
    """`-w llm | hf-config:PATH | hf:FOLDER`: prefill, decode and mixed steps in-process."""
    from fleetwise_cli.progress import RichProgress
    from measure.core.parsing import PrecisionError, SweepError
    from measure.device.target import DeviceError
    from measure.inprocess.plan import SweepRequest
    from measure.llm.plan import plan_llm_sweep
    from measure.llm.sweep import execute_llm_sweep

    bad = (SweepError, DeviceError, PrecisionError, RunFileError, ValueError)
    try:
        request = SweepRequest(**request_kwargs)  # type: ignore[arg-type]
        plan = plan_llm_sweep(
            request, grid_from(opts), opts.memory_fraction, command=["fleetwise", *sys.argv[1:]]
        )
        check_output_dir(out_dir)
    except bad as exc:
        raise fail(str(exc)) from None

    def work() -> tuple[Run, bool]:
        with RichProgress(err) as progress:
            result = execute_llm_sweep(plan, progress)
        return result.run, result.interrupted

    run, interrupted = _guarded(work, bad)
    _save(run, out_dir, interrupted)


def parse_engine_params(items: tuple[str, ...]) -> dict[str, str | int | float | bool]:
    """`--engine-param key=value` (engine, version, max_num_seqs, ...), values read as numbers where they are."""
    from measure.core.parsing import parse_param

    params = dict(parse_param(p) for p in items)
    if len(params) > 64:
        raise ValueError("at most 64 --engine-param")
    return params


def measure_engine(
    opts: LlmOptions, precision: str, device: str, ci_target: float, max_seconds: float, out_dir: Path
) -> None:
    """`--endpoint URL --model NAME`: a closed-loop sweep against a running streaming server."""
    from fleetwise_cli.progress import RichProgress
    from measure.core.parsing import PrecisionError, SweepError, WorkloadError, parse_precisions
    from measure.engine_client.closed_loop import (
        DEFAULT_CONCURRENCIES,
        DEFAULT_PROMPTS,
        EngineRequest,
        execute_engine,
        plan_engine,
        remote_stack,
    )
    from measure.engine_client.http import Endpoint, EndpointError

    # torch-free: measuring an engine is an HTTP client, and must work on a machine without torch
    bad = (EndpointError, SweepError, PrecisionError, WorkloadError, RunFileError, ValueError)
    try:
        if not opts.model:
            raise EndpointError("--model is required with --endpoint (the name the server serves)")
        precisions = parse_precisions(precision)
        if len(precisions) != 1:
            raise EndpointError(
                "an engine serves one precision: give exactly one --precision (what the engine runs)"
            )
        params = parse_engine_params(opts.engine_param)
        req = EngineRequest(
            url=opts.endpoint or "",
            model=opts.model,
            precision=precisions[0],
            prompt_tokens=tuple(_ints(opts.prompt_tokens, "prompt tokens", list(DEFAULT_PROMPTS))),
            concurrencies=tuple(_ints(opts.concurrency, "concurrency", list(DEFAULT_CONCURRENCIES))),
            output_tokens=opts.output_tokens,
            max_requests=opts.requests,
            min_requests=min(8, opts.requests),
            max_seconds=max_seconds,
            timeout_s=opts.request_timeout,
            ci_target=ci_target,
            params=params,
        )
        check_output_dir(out_dir)

        def stack(ep: Endpoint) -> Stack:
            if not ep.loopback:
                return remote_stack(params)
            try:  # the engine runs here: record this machine's stack, when torch is here to read it
                from measure.device.target import parse_device
                from measure.sensors.stack import capture_stack
            except ImportError:
                return remote_stack(params)
            return capture_stack(parse_device(device), "engine (served on this machine)")

        plan = plan_engine(req, stack, ["fleetwise", *sys.argv[1:]])
    except bad as exc:
        raise fail(str(exc)) from None

    def work() -> tuple[Run, bool]:
        with RichProgress(err) as progress:
            return execute_engine(plan, progress)

    run, interrupted = _guarded(work, bad)
    _save(run, out_dir, interrupted)


# ------------------------------------------------------------------------------------------------ tables


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _phase_table(run: Run, phase: str, points: list[Point]) -> Table:
    engine = points[0].source == "engine"
    size = {"prefill": "prompt tokens", "decode": "context", "mixed": "context + chunk"}[phase]
    batch = "concurrency" if engine else "batch"
    what = {
        "prefill": "TTFT" if engine else "prefill step",
        "decode": "inter-token gap" if engine else "decode step",
    }
    t = Table(
        title=escape(
            f"{phase}: {what.get(phase, 'mixed step')} latency ({run.workload.name}, {run.stack.device_name})"
        )
    )
    for col in (
        "precision",
        batch,
        size,
        "status",
        "n",
        "p50 ms",
        "p99 ms [95% CI]",
        "mean ±CI",
        "tokens/s",
        "mJ/token",
        "notes",
    ):
        t.add_column(col, overflow="fold")
    for p in points:
        where = {
            "prefill": str(p.seq_len),
            "decode": str(p.context_tokens),
            "mixed": f"{p.context_tokens} + {p.chunk_tokens}",
        }[phase]
        notes = [*p.flags, *([p.reason] if p.reason else [])]
        if p.engine is not None and (p.engine.early_ends or p.engine.failed):
            notes.append(f"{p.engine.early_ends} early ends, {p.engine.failed} failed of {p.engine.requests}")
        if p.latency_ms is None:
            t.add_row(
                p.precision,
                str(p.batch_size),
                where,
                p.status,
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                escape("; ".join(notes)),
            )
            continue
        lat = p.latency_ms
        ci = "n/a" if lat.mean_ci95_halfwidth_rel is None else f"±{lat.mean_ci95_halfwidth_rel:.1%}"
        energy = "-"
        tel = p.telemetry
        if tel is not None and not isinstance(tel, Unavailable) and not isinstance(tel.energy, Unavailable):
            per = tel.energy.energy_per_unit_j
            energy = _f(per * 1000 if per is not None else None)
        t.add_row(
            p.precision,
            str(p.batch_size),
            where,
            p.status,
            str(p.measured_iterations),
            _f(lat.median),
            f"{_f(lat.p99)} [{_f(lat.p99_ci95_low)}, {_f(lat.p99_ci95_high)}]",
            ci,
            _f(p.throughput_units_per_s, 4),
            energy,
            escape("; ".join(notes)),
        )
    return t


def print_llm(run: Run) -> None:
    """The three step tables, the memory facts, energy per phase and the engine's self-description."""
    for phase in PHASES:
        mine = [p for p in run.points if p.phase == phase]
        if mine:
            out.print(_phase_table(run, phase, mine))
    facts = run.llm
    if facts is None:
        return
    if facts.shape is not None:
        s = facts.shape
        out.print(
            escape(
                f"model {s.name}: {s.num_hidden_layers} layers, hidden {s.hidden_size}, {s.num_attention_heads} heads / "
                f"{s.num_key_value_heads} KV heads, {s.parameters / 1e6:.1f}M parameters; {facts.weights_note}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if facts.memory:
        t = Table(title=f"memory at {facts.memory_fraction:g} of device memory")
        for col in (
            "precision",
            "KV bytes/token",
            "weights MiB",
            "activation peak MiB",
            "KV tokens that fit",
            "how",
        ):
            t.add_column(col, overflow="fold")
        for m in facts.memory:
            act = (
                "n/a"
                if isinstance(m.activation_peak_bytes, Unavailable)
                else f"{m.activation_peak_bytes / 2**20:.1f}"
            )
            fit = (
                m.kv_tokens_fit.unavailable
                if isinstance(m.kv_tokens_fit, Unavailable)
                else f"{m.kv_tokens_fit:,}"
            )
            t.add_row(
                m.precision,
                f"{m.kv_bytes_per_token:,}",
                f"{m.weight_bytes / 2**20:.1f}",
                act,
                escape(fit),
                escape(m.kv_tokens_fit_method),
            )
        out.print(t)
    if facts.energy and not facts.energy_note:
        cells = [
            f"{e.precision} {e.phase}: "
            + (
                e.j_per_token.unavailable
                if isinstance(e.j_per_token, Unavailable)
                else f"{e.j_per_token * 1000:.3g} mJ/token"
            )
            for e in facts.energy
        ]
        out.print(
            escape("energy per phase (median over points): " + "; ".join(cells)),
            highlight=False,
            soft_wrap=True,
        )
    elif facts.energy_note:
        out.print(escape(facts.energy_note), highlight=False, soft_wrap=True)
    if facts.engine is not None:
        e = facts.engine
        served = (
            e.served_models.unavailable
            if isinstance(e.served_models, Unavailable)
            else ", ".join(e.served_models)
        )
        version = e.version.unavailable if isinstance(e.version, Unavailable) else e.version
        params = ", ".join(f"{k}={v}" for k, v in e.params.items()) or "none given"
        out.print(
            escape(
                f"engine {e.url} model {e.model}; serves: {served}; version: {version}; engine params: {params}"
            ),
            highlight=False,
            soft_wrap=True,
        )
