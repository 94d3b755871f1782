"""An LLM sweep's plan: where the decoder comes from, the grid of steps, host-memory checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from measure.core.parsing import ParamValue, SweepError
from measure.device.target import Device
from measure.inprocess.plan import (
    SweepPlan,
    SweepRequest,
    plan_sweep,
)
from measure.llm.facts import meminfo_bytes
from measure.run import (
    LlmGrid,
)
from measure.workloads import decoder as lm
from measure.workloads import decoder_shape as shp
from measure.workloads.builtin import BuiltWorkload

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
    shape: shp.DecoderShape
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
            return LlmSource(f"preset:{preset}", shp.shape_for(preset), "random", RANDOM_NOTE)
        if params:
            raise SweepError(f"{workload.split(':')[0]} takes no --param (its sizes come from the config)")
        if workload.startswith("hf-config:"):
            path = Path(workload.removeprefix("hf-config:"))
            return LlmSource(
                f"hf-config:{path.name}",
                shp.shape_from_hf_config(path),
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
            shp.shape_from_hf_config(folder / "config.json"),
            "loaded",
            "weights loaded from the folder's safetensors through transformers (no code from the folder runs)",
            hf_folder=folder,
        )
    except shp.ShapeError as exc:
        raise SweepError(str(exc)) from None


def check_grid(grid: LlmGrid, shape: shp.DecoderShape) -> None:
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


def check_fits_host(shape: shp.DecoderShape, device: Device, precisions: Sequence[str]) -> None:
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


def _meta_module(shape: shp.DecoderShape) -> nn.Module:
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
class LlmSweepPlan:
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
) -> LlmSweepPlan:
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
    return LlmSweepPlan(sweep, src, grid, memory_fraction)
