"""Where an LLM option's step times come from: a measured LLM run, or an assumed LLM profile (a roofline for
hardware you do not own). One set of accessors so sizing, the SLO explorer and the simulation treat both alike
and label the second ASSUMED everywhere."""

from __future__ import annotations

from pathlib import Path

from measure.run import ONE_DEVICE, ReplicaShape, Run
from planner.fleet.prices import DevicePrice, PriceBook
from planner.llm.engine import kv_blocks_from_run
from planner.llm.roofline import LlmProfile, is_llm_profile, kv_tokens, load_llm_profile, roofline_step_model
from planner.llm.steps import StepModel, step_model
from planner.workers import load_run_cached

Source = Run | LlmProfile


def load_source(path: str | Path) -> Source:
    """The run or assumed LLM profile in the file (each read bounded by its own reader)."""
    return load_llm_profile(path) if is_llm_profile(path) else load_run_cached(str(path))


def is_assumed(src: Source) -> bool:
    """An assumed profile, never evidence."""
    return isinstance(src, LlmProfile)


def source_step_model(src: Source, precision: str) -> StepModel:
    """The engine step model: measured curves, or the roofline."""
    return roofline_step_model(src) if isinstance(src, LlmProfile) else step_model(src, precision)


def source_kv_blocks(src: Source, precision: str, block_size: int, given: int | None) -> int:
    """KV blocks per replica: as given, else the run's memory facts or the profile's memory left by the weights."""
    if isinstance(src, LlmProfile):
        return given if given is not None else max(1, kv_tokens(src) // block_size)
    return kv_blocks_from_run(src, precision, block_size, given)[0]


def source_device(src: Source) -> str:
    """The device's name as tables show it."""
    return src.sheet.name if isinstance(src, LlmProfile) else src.stack.device_name


def source_shape(src: Source) -> ReplicaShape:
    """What one replica is."""
    if isinstance(src, LlmProfile):
        return src.replica()
    return (src.llm.replica if src.llm is not None else None) or ONE_DEVICE


def source_precisions(src: Source) -> list[str]:
    """The precisions it can time."""
    if isinstance(src, LlmProfile):
        return [src.precision]
    return sorted({p.precision for p in src.points if p.phase is not None and p.latency_ms is not None})


def source_price(book: PriceBook, src: Source) -> DevicePrice:
    """The price entry: a run's by its device, a profile's by its sheet's price key (else its name)."""
    if isinstance(src, LlmProfile):
        key = src.sheet.price_key
        return book.by_key(key) if key else book.for_hardware(src.sheet.name)
    return book.for_run(src)


def source_kv_bytes(src: Source, precision: str) -> tuple[float | None, str]:
    """KV bytes a token at the precision, and how known: the profile's shape, or the run's memory facts (an
    engine run measured through a client has none)."""
    if isinstance(src, LlmProfile):
        return float(src.shape.kv_bytes_per_token(precision)), "from the assumed profile's model shape"
    mem = next((m for m in src.llm.memory if m.precision == precision), None) if src.llm else None
    if mem is None:
        return None, f"run {src.short_id()} does not record KV bytes per token at {precision}"
    return float(mem.kv_bytes_per_token), f"from the run ({mem.kv_method})"
