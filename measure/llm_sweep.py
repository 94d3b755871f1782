"""LLM step sweeps in-process: prefill, decode and mixed (chunked-prefill) steps of a decoder, per precision.

Each point goes through `measure.sweep.measure_point`, the discipline every batch point gets (warm-up
detection, CI stopping, tail CIs, telemetry and energy, contention). A timed iteration is one forward of the
decoder over a preallocated KV cache whose length is reset before each iteration, so every iteration of a
point measures the same state. OOM at a batch ends that row (the larger batches are not attempted).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from measure import llm_model as lm
from measure import quality as qproxy
from measure.device import Device, is_oom
from measure.engine import Step
from measure.llm_facts import llm_facts, meminfo_bytes, memory_facts
from measure.precision import Prepared, swap_linears_to_fp8, unsupported_reason
from measure.run import (
    LlmGrid,
    MemoryFacts,
    Point,
    Quality,
    QualityProxy,
    Run,
    SweepSpec,
    unavailable,
)
from measure.run import Workload as WorkloadRecord
from measure.sweep import (
    FLEETWISE_VERSION,
    Progress,
    SweepError,
    SweepPlan,
    SweepRequest,
    SweepResult,
    _first_line,
    _not_run,
    idle_power_for,
    measure_point,
    plan_sweep,
    point_meter,
)
from measure.workloads import BuiltWorkload, ParamValue

DEFAULT_GRID = LlmGrid(
    mode="in-process",
    prefill_batches=[1, 4],
    prompt_tokens=[32, 128, 512],
    decode_batches=[1, 4, 16],
    contexts=[128, 512, 2048],
    mixed_batches=[4],
    mixed_context=512,
    chunks=[64, 256],
)
DEFAULT_MEMORY_FRACTION = 0.9  # vLLM's gpu_memory_utilization default
HOST_MEMORY_SHARE = 0.8  # building a model that needs more of the host's free memory than this is refused
LLM_NOTES = [
    "LLM steps are device-compute: token ids already on the device, logits of the last position stay there",
    "prefill: batch prompts of seq_len random tokens into an empty cache; decode: one token for each of batch "
    "sequences over a cache holding context_tokens each; mixed: a decode batch plus chunk_tokens of a new "
    "prompt in one forward (projections and MLP over the packed tokens, attention per sequence)",
    "the KV cache is preallocated for the step and its length reset before every iteration",
    "throughput_units_per_s = tokens per step / mean step time (prefill: batch x prompt, decode: batch, "
    "mixed: batch + chunk); energy_per_unit_j is joules per token of that step",
]


def is_llm_workload(name: str | None) -> bool:
    """`llm`, `hf-config:<config.json>` or `hf:<local folder>`: workloads this module measures."""
    return name is not None and (name == "llm" or name.startswith(("hf-config:", "hf:")))


@dataclass(frozen=True)
class LlmSource:
    """Where the decoder comes from: a preset or a config (random weights) or a local folder (loaded)."""

    model: str
    shape: lm.DecoderShape
    weights: str
    weights_note: str
    quality_skip: str | None = None
    hf_folder: Path | None = None


RANDOM_NOTE = "random weights (N(0, 0.02), seeded): a dense decoder's speed does not depend on its weights"


def llm_source(workload: str, params: dict[str, ParamValue]) -> LlmSource:
    """Resolve `-w llm -p preset=...`, `-w hf-config:PATH` or `-w hf:FOLDER`; files are read as data only."""
    try:
        if workload == "llm":
            unknown = sorted(set(params) - {"preset"})
            if unknown:
                raise SweepError(f"unknown parameter(s) {', '.join(unknown)} for llm: use preset")
            preset = str(params.get("preset", "tiny"))
            return LlmSource(f"preset:{preset}", lm.shape_for(preset), "random", RANDOM_NOTE)
        if params:
            raise SweepError(f"{workload.split(':')[0]} takes no --param (its sizes come from the config)")
        if workload.startswith("hf-config:"):
            path = Path(workload.removeprefix("hf-config:"))
            return LlmSource(
                f"hf-config:{path.name}",
                lm.shape_from_hf_config(path),
                "random",
                RANDOM_NOTE + "; the architecture comes from the config",
                quality_skip="random weights for a real model's architecture: a numeric proxy would describe "
                "random weights, not that model (measure its loaded weights with hf:<folder>)",
            )
        folder = Path(workload.removeprefix("hf:"))
        if not folder.is_dir():
            raise SweepError(f"model folder {folder} does not exist or is not a folder")
        if not any(folder.glob("*.safetensors")):
            raise SweepError(f"{folder} has no .safetensors weights (pickled .bin weights are never loaded)")
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise SweepError("hf:<folder> needs the 'llm' extra (transformers)") from None
        return LlmSource(
            f"hf:{folder.name}",
            lm.shape_from_hf_config(folder / "config.json"),
            "loaded",
            "weights loaded from the folder's safetensors through transformers (no code from the folder runs)",
            hf_folder=folder,
        )
    except lm.ShapeError as exc:
        raise SweepError(str(exc)) from None


def check_grid(grid: LlmGrid, shape: lm.DecoderShape) -> None:
    """Refuse a grid that cannot run on this model before anything is measured."""
    if not grid.prompt_tokens and not grid.contexts and not grid.chunks:
        raise SweepError("the LLM grid is empty: give prompt tokens, contexts or chunks")
    limit = shape.max_position_embeddings
    if grid.prompt_tokens and not grid.prefill_batches:
        raise SweepError("prefill prompt tokens given without prefill batch sizes")
    if grid.contexts and not grid.decode_batches:
        raise SweepError("decode contexts given without decode batch sizes")
    if grid.chunks and (not grid.mixed_batches or grid.mixed_context is None):
        raise SweepError("mixed chunks need mixed batch sizes and a mixed context")
    for what, values, extra in (
        ("prompt tokens", grid.prompt_tokens, 0),
        ("context", grid.contexts, 1),
        ("mixed context", [grid.mixed_context] if grid.chunks and grid.mixed_context else [], 1),
        ("chunk", grid.chunks, 0),
    ):
        for v in values:
            if v + extra > limit:
                raise SweepError(f"{what} {v} does not fit the model's {limit}-token context")


def check_fits_host(shape: lm.DecoderShape, device: Device, precisions: Sequence[str]) -> None:
    """A CPU model that cannot be built in host memory is refused with its size, not killed by the OOM killer."""
    if device.kind != "cpu":
        return
    widest = 4 if any(p in ("fp32", "tf32", "int8") for p in precisions) else 2
    need, free = shape.parameters() * widest, meminfo_bytes("MemAvailable")[0]
    if free is not None and need > HOST_MEMORY_SHARE * free:
        raise SweepError(
            f"{shape.name} needs {need / 2**30:.1f} GiB of weights at {widest} bytes per parameter; this machine "
            f"has {free / 2**30:.1f} GiB available"
        )


def _meta_module(shape: lm.DecoderShape) -> nn.Module:
    with torch.device("meta"):
        return lm.Decoder(shape)


def built_workload(src: LlmSource, default_prompt: int) -> BuiltWorkload:
    """The run's workload record and the inputs of the quality proxy (prompts of random token ids)."""
    shape = src.shape
    gen = torch.Generator().manual_seed(1234)
    return BuiltWorkload(
        name="llm",
        source="builtin",
        description=f"Llama-style decoder ({src.model}): {shape.num_hidden_layers} layers, hidden "
        f"{shape.hidden_size}, {shape.num_attention_heads} heads / {shape.num_key_value_heads} KV heads, "
        f"{shape.parameters() / 1e6:.1f}M parameters; {src.weights} weights",
        parameters={
            "model": src.model,
            "num_hidden_layers": shape.num_hidden_layers,
            "hidden_size": shape.hidden_size,
            "num_attention_heads": shape.num_attention_heads,
            "num_key_value_heads": shape.num_key_value_heads,
            "intermediate_size": shape.intermediate_size,
            "vocab_size": shape.vocab_size,
        },
        unit="tokens",
        microbenchmark=False,
        has_seq_len=True,
        module=_meta_module(shape),
        build_input=lambda b, s: torch.randint(0, shape.vocab_size, (b, s or default_prompt), generator=gen),
        units_per_item_fn=lambda s: float(s or default_prompt),
        default_seq_len=default_prompt,
        classifier=True,  # next-token logits: the proxy adds top-1 (greedy next token) agreement
    )


def prepare_llm(precision: str, src: LlmSource, device: Device) -> Prepared:
    """The decoder at `precision`, built in place on the device (never a full fp32 copy first)."""
    dev = device.torch_device

    def load(dtype: torch.dtype, on: torch.device) -> nn.Module:
        if src.hf_folder is not None:
            from measure.llm_hf import load_hf_decoder

            return load_hf_decoder(src.hf_folder, src.shape, dtype, on)
        return lm.Decoder.build(src.shape, dtype, on)

    if precision in ("fp32", "tf32"):
        mode = "tf32 tensor-core matmuls" if precision == "tf32" else "strict fp32 (tf32 disabled)"
        return Prepared(load(torch.float32, dev), torch.float32, f"fp32 weights and KV cache; {mode}")
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return Prepared(load(dtype, dev), dtype, f"weights, activations and KV cache in {precision}")
    if precision == "int8":
        module = load(torch.float32, dev)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao prints a migration notice on every call
            torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return Prepared(
            module,
            torch.float32,
            "dynamic int8 (torch.ao quantize_dynamic, per-tensor qint8 weights) for every Linear layer; "
            "embeddings, norms, attention and the KV cache in fp32",
        )
    if precision == "fp8":
        module = load(torch.bfloat16, dev)
        converted, kept = swap_linears_to_fp8(module)
        return Prepared(
            module,
            torch.bfloat16,
            f"fp8 e4m3 (torch._scaled_mm, per-tensor scales) for {converted} Linear layers; {kept} Linear "
            "layers, attention and the KV cache in bf16",
        )
    raise SweepError(f"unknown precision {precision!r}")


class StepMaker(Protocol):
    """A decoder that is not the built-in one (a transformers model) and makes its own steps."""

    def prefill_step(self, batch: int, prompt_tokens: int, device: Any) -> Step: ...

    def decode_step(self, batch: int, context: int, device: Any) -> Step: ...


def make_llm_step(
    module: nn.Module, phase: str, batch: int, seq: int | None, ctx: int | None, chunk: int | None, dev: Any
) -> Step:
    """The timed iteration of one point kind."""
    if isinstance(module, lm.Decoder):
        if phase == "prefill" and seq is not None:
            return lm.prefill_step(module, batch, seq, dev)
        if phase == "decode" and ctx is not None:
            return lm.decode_step(module, batch, ctx, dev)
        if phase == "mixed" and ctx is not None and chunk is not None:
            return lm.mixed_step(module, batch, ctx, chunk, dev)
        raise SweepError(f"a {phase} point without its sizes")
    maker = cast(StepMaker, module)
    if phase == "prefill" and seq is not None:
        return maker.prefill_step(batch, seq, dev)
    if phase == "decode" and ctx is not None:
        return maker.decode_step(batch, ctx, dev)
    raise SweepError("mixed steps need the built-in decoder (packed attention); use hf-config: for its shape")


def step_flops(step: Step) -> float | None:
    """FLOPs of one call of the step, counted by torch (math attention, so the counter sees it)."""
    try:
        with torch.inference_mode(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc:
            step()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        return None
    flops = fc.get_total_flops()
    return float(flops) if flops > 0 else None


@dataclass(frozen=True)
class LlmKey:
    """One LLM point of the grid."""

    phase: str
    batch: int
    seq: int | None = None
    context: int | None = None
    chunk: int | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "context_tokens": self.context,
            "chunk_tokens": self.chunk,
            "source": "in-process",
        }

    @property
    def tokens(self) -> int:
        return {"prefill": self.batch * (self.seq or 0), "decode": self.batch}.get(
            self.phase, self.batch + (self.chunk or 0)
        )


def grid_rows(grid: LlmGrid) -> list[list[LlmKey]]:
    """Rows of points in measuring order; an OOM ends its row (the larger batches are not attempted)."""
    rows = [[LlmKey("prefill", b, seq=s) for b in grid.prefill_batches] for s in grid.prompt_tokens]
    rows += [[LlmKey("decode", b, context=c) for b in grid.decode_batches] for c in grid.contexts]
    if grid.mixed_context is not None:
        rows += [
            [LlmKey("mixed", b, context=grid.mixed_context, chunk=k) for b in grid.mixed_batches]
            for k in grid.chunks
        ]
    return rows


@dataclass
class LlmPlan:
    """A validated in-process LLM sweep: source, grid, and the batch sweep plan it shares machinery with."""

    sweep: SweepPlan
    source: LlmSource
    grid: LlmGrid
    memory_fraction: float


def plan_llm_sweep(
    request: SweepRequest,
    grid: LlmGrid,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    *,
    command: Sequence[str] | None = None,
    nvml_module: Any | None = None,
    powercap_root: Path = Path("/sys/class/powercap"),
) -> LlmPlan:
    """Validate everything (source, grid, device, memory) before any measuring."""
    if request.pacing:
        raise SweepError("--pacing applies to batch workloads; an LLM engine's idle gaps are measured live")
    if not 0 < memory_fraction <= 1:
        raise SweepError(f"memory fraction must be in (0, 1], got {memory_fraction:g}")
    src = llm_source(request.workload, request.params)
    check_grid(grid, src.shape)
    default_prompt = grid.prompt_tokens[0] if grid.prompt_tokens else 128
    built = built_workload(src, min(default_prompt, src.shape.max_position_embeddings))
    req = replace(request, scope="device-compute", l2_flush=False, seq_lens=None)
    sweep = plan_sweep(
        req, command=command, nvml_module=nvml_module, built=built, powercap_root=powercap_root
    )
    check_fits_host(src.shape, sweep.device, req.precisions)
    notes = [n for n in sweep.methodology.notes if not n.startswith(("throughput_items_per_s", "inputs are"))]
    sweep.methodology = sweep.methodology.model_copy(
        update={
            "notes": [*notes, *LLM_NOTES],
            "inference_mode": f"torch.inference_mode() with module.eval(); {src.weights_note}",
        }
    )
    return LlmPlan(sweep, src, grid, memory_fraction)


def _quality(
    plan: LlmPlan, precision: str, prepared: Prepared | None, why: str | None, ref: Any
) -> QualityProxy:
    seq = plan.sweep.built.default_seq_len
    if plan.source.quality_skip or prepared is None or isinstance(ref, str):
        reason = plan.source.quality_skip or why or (ref if isinstance(ref, str) else "not prepared")
        return QualityProxy(precision=precision, seq_len=seq, status="unsupported", reason=reason, items=1)
    inputs, out = ref
    return qproxy.proxy(precision, seq, prepared, plan.sweep.device, inputs, out, True)


def _reference(plan: LlmPlan) -> tuple[tuple[torch.Tensor, ...], torch.Tensor] | str:
    """fp32 outputs of the same weights on fixed prompts (fewer items when memory is short)."""
    built, device = plan.sweep.built, plan.sweep.device
    error = "not computed"
    for items in qproxy.ITEM_FALLBACKS:
        try:
            ref = prepare_llm("fp32", plan.source, device)
            inputs = built.inputs(items, built.default_seq_len)
            try:
                return inputs, qproxy.forward(ref, inputs, device, "fp32")
            finally:
                del ref
                device.release_memory()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            device.release_memory()
            error = f"the fp32 reference failed at {items} items ({_first_line(exc)})"
            if not is_oom(exc):
                break
    return error


def execute_llm_sweep(
    plan: LlmPlan, progress: Progress | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> SweepResult:
    """Measure every point of the grid at every precision; Ctrl-C returns what was measured (incomplete)."""
    progress = progress or Progress()
    sweep, device = plan.sweep, plan.sweep.device
    request = sweep.request
    rows = grid_rows(plan.grid)
    total = len(request.precisions) * sum(len(r) for r in rows)
    progress.start(total)
    points: list[Point] = []
    quality: list[QualityProxy] = []
    memory: list[MemoryFacts] = []
    interrupted = False
    idle: Any = unavailable("not measured: interrupted before the sweep")
    try:
        idle = idle_power_for(sweep)
        ref = _reference(plan) if plan.source.quality_skip is None else "skipped"
        for precision in request.precisions:
            reason = unsupported_reason(precision, device, sweep.built.module)
            status = "unsupported"
            prepared: Prepared | None = None
            if reason is None:
                try:
                    prepared = prepare_llm(precision, plan.source, device)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:
                    device.release_memory()
                    reason = f"building the model at {precision} failed: {_first_line(exc)}"
                    status = "oom" if is_oom(exc) else "unsupported"
            quality.append(_quality(plan, precision, prepared, reason, ref))
            for row in rows:
                oom_at: int | None = None
                for key in row:
                    progress.point_started(precision, key.batch, key.seq or key.context)
                    if prepared is None:
                        point = _not_run(
                            precision, key.batch, key.seq, status, reason or "not prepared", [], key.fields()
                        )
                    elif oom_at is not None:
                        why = f"not attempted: batch {oom_at} already ran out of memory at {precision}"
                        point = _not_run(
                            precision, key.batch, key.seq, "oom", why, ["not-attempted"], key.fields()
                        )
                    else:
                        point = _measure(plan, prepared, precision, key, idle)
                        if point.status == "oom":
                            oom_at = key.batch
                    points.append(point)
                    progress.point_done(point)
            if prepared is not None:
                memory.append(memory_facts(plan, precision, prepared, points))
            del prepared
            device.release_memory()
    except KeyboardInterrupt:
        interrupted = True
    facts = llm_facts(plan, memory, points)
    entries = [q for q in quality if q is not None]
    batches = sorted({k.batch for row in rows for k in row})
    run = Run(
        created_at=now(),
        fleetwise_version=FLEETWISE_VERSION,
        command=sweep.command,
        methodology=sweep.methodology,
        stack=sweep.stack,
        workload=WorkloadRecord(
            name=sweep.built.name,
            source=sweep.built.source,
            description=sweep.built.description,
            parameters=sweep.built.parameters,
            unit="tokens",
            microbenchmark=False,
            has_seq_len=True,
        ),
        sweep=SweepSpec(
            precisions=request.precisions,
            batch_sizes=batches,
            seq_lens=list(plan.grid.prompt_tokens) or None,
            complete=not interrupted and len(points) == total,
            llm=plan.grid,
        ),
        points=points,
        idle_power=idle,
        quality=Quality(
            reference="fp32 with tf32 disabled, same device, same weights",
            inputs=f"up to {qproxy.QUALITY_ITEMS} prompts of {sweep.built.default_seq_len} random token ids; "
            "next-token logits of the last position",
            entries=entries,
        )
        if entries
        else None,
        llm=facts,
    ).with_id()
    return SweepResult(run, interrupted)


def _measure(plan: LlmPlan, prepared: Prepared, precision: str, key: LlmKey, idle: Any) -> Point:
    sweep, device = plan.sweep, plan.sweep.device
    flops: list[float | None] = []

    def make() -> Step:
        step = make_llm_step(
            prepared.module, key.phase, key.batch, key.seq, key.context, key.chunk, device.torch_device
        )
        if precision != "int8":  # quantized kernels are invisible to the counter: no number beats a wrong one
            flops.append(step_flops(step))
        return step

    per_item = key.tokens / key.batch
    built = replace(sweep.built, units_per_item_fn=lambda s: per_item, _flops={key.seq: None})
    point = measure_point(
        make,
        built,
        prepared,
        device,
        precision,
        key.batch,
        key.seq,
        sweep.request,
        sweep.probe,
        sweep.clock_source,
        point_meter(sweep, idle),
        sweep.sensor_reason,
        key.fields(),
    )
    f = flops[0] if flops else None
    if f is None or point.latency_ms is None:
        return point
    return point.model_copy(
        update={"flops_per_item": f / key.batch, "achieved_tflops": f * 1000.0 / point.latency_ms.mean / 1e12}
    )
