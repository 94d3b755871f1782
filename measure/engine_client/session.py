"""One engine, as a client sees it: the request settings checked, the engine's self-description and stack,
and the words-to-tokens calibration its prompts are built with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from measure.engine_client.http import Endpoint, EndpointError, prompt_text, stream_completion
from measure.run import (
    MAX_DEVICES_PER_REPLICA,
    EngineInfo,
    ParamScalar,
    ReplicaShape,
    Stack,
    Unavailable,
    unavailable,
)

DEFAULT_CONCURRENCIES = (1, 2, 4, 8)
DEFAULT_PROMPTS = (64, 256)
DEFAULT_OUTPUT = 32


CALIBRATION_WORDS = (16, 64)


@dataclass(frozen=True)
class EngineRequest:
    """An engine sweep as asked for."""

    url: str
    model: str
    precision: str = "fp32"
    prompt_tokens: tuple[int, ...] = DEFAULT_PROMPTS
    concurrencies: tuple[int, ...] = DEFAULT_CONCURRENCIES
    output_tokens: int = DEFAULT_OUTPUT
    max_requests: int = 48
    min_requests: int = 8
    max_seconds: float = 60.0
    timeout_s: float = 60.0
    ci_target: float = 0.05
    params: dict[str, ParamScalar] = field(default_factory=dict)
    cached_prefixes: tuple[
        int, ...
    ] = ()  # prefill behind these cached prefix lengths (0 measured beside them)
    cached_suffix: int = 64  # the tokens each of those prefills computes


def check_request(req: EngineRequest) -> Endpoint:
    """Bounds on every option, before any traffic."""
    ep = Endpoint.parse(req.url)
    if not req.model.strip() or len(req.model) > 500:
        raise EndpointError("--model must name the served model (1..500 characters)")
    if not 1 <= req.output_tokens <= 65_536:
        raise EndpointError(f"output tokens must be in 1..65536, got {req.output_tokens}")
    if not req.prompt_tokens or any(not 1 <= p <= 1_048_576 for p in req.prompt_tokens):
        raise EndpointError("prompt tokens must be in 1..1048576")
    if not req.concurrencies or any(not 1 <= c <= 4096 for c in req.concurrencies):
        raise EndpointError("concurrency must be in 1..4096")
    if not 2 <= req.min_requests <= req.max_requests <= 100_000:
        raise EndpointError("need 2 <= min requests <= max requests <= 100000")
    if not (0 < req.timeout_s <= 3600 and 0 < req.max_seconds <= 86_400 and 0 < req.ci_target < 1):
        raise EndpointError("time-out in (0, 3600] s, max seconds in (0, 86400], CI target in (0, 1)")
    if any(not 1 <= c <= 1_048_576 for c in req.cached_prefixes) or not 1 <= req.cached_suffix <= 1_048_576:
        raise EndpointError("cached prefix and suffix tokens must be in 1..1048576")
    if len(req.cached_prefixes) > 16:
        raise EndpointError(f"at most 16 cached prefix lengths, got {len(req.cached_prefixes)}")
    util = req.params.get("gpu_memory_utilization")
    if util is not None and (
        isinstance(util, bool) or not isinstance(util, int | float) or not 0 < util <= 1
    ):
        raise EndpointError(f"engine param gpu_memory_utilization must be in (0, 1], got {util!r}")
    replica_from_params(req.params)
    return ep


PARALLEL_PARAMS = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")  # vLLM's names


def replica_from_params(params: Mapping[str, ParamScalar]) -> ReplicaShape:
    """What one replica of the engine is, from the parallel sizes the user gave with --engine-param (the engine
    was started with them; a client cannot see its devices): devices = tp x pp x dp, else one device."""
    sizes: list[int | None] = []
    for key in PARALLEL_PARAMS:
        v = params.get(key)
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DEVICES_PER_REPLICA
        ):
            raise EndpointError(
                f"engine param {key} must be an integer in 1..{MAX_DEVICES_PER_REPLICA}, got {v!r}"
            )
        sizes.append(v if isinstance(v, int) else None)
    given = [n for n in sizes if n is not None]
    if not given:
        return ReplicaShape(
            devices=1, source="one device: no tensor/pipeline/data parallel size given (--engine-param)"
        )
    devices = 1
    for n in given:
        devices *= n
    if devices > MAX_DEVICES_PER_REPLICA:
        raise EndpointError(
            f"engine parallel sizes make {devices} devices a replica, over {MAX_DEVICES_PER_REPLICA}"
        )
    named = ", ".join(f"{k}={n}" for k, n in zip(PARALLEL_PARAMS, sizes, strict=True) if n is not None)
    return ReplicaShape(
        devices=devices,
        tensor_parallel=sizes[0] or 1,
        pipeline_parallel=sizes[1] or 1,
        data_parallel=sizes[2] or 1,
        source=f"the engine parameters given: {named}",
    )


def remote_stack(params: dict[str, ParamScalar]) -> Stack:
    """A remote engine's stack from what the user says (a client cannot read another machine's hardware)."""
    kind, name = params.get("device_kind"), params.get("device_name")
    if kind not in ("cpu", "cuda") or not isinstance(name, str) or not name.strip():
        raise EndpointError(
            "a remote engine's hardware cannot be read from here: pass --engine-param device_kind=cuda "
            "--engine-param device_name='NVIDIA H100 80GB HBM3' (what the engine runs on)"
        )
    why = unavailable("remote engine: not readable from the client")
    unknown = "unknown (remote engine)"
    return Stack(
        device=f"{kind} (remote engine)",
        device_kind=kind,
        device_name=name[:256],
        device_uuid=why,
        compute_capability=why,
        device_memory_bytes=why,
        driver_version=why,
        cuda_runtime=why,
        cudnn_version=why,
        torch_version=unknown,
        torch_build=unknown,
        torch_num_threads=0,
        compile_mode="engine",
        python_version=unknown,
        numpy_version=unknown,
        os=unknown,
        kernel=unknown,
        hostname=unknown,
        cpu_model=unknown,
        cpu_count_logical=0,
        cpu_count_usable=0,
        cpu_flags=[],
        cpu_governor=why,
        gpu_power_limit_w=why,
        gpu_persistence_mode=why,
        gpu_ecc_mode=why,
        gpu_mig_mode=why,
        gpu_app_clock_sm_mhz=why,
        gpu_app_clock_mem_mhz=why,
        environment={},
    )


def engine_info(ep: Endpoint, req: EngineRequest) -> EngineInfo:
    """What the server says about itself: /v1/models must answer (else the engine is unreachable)."""
    models = ep.get_json("/v1/models")
    ids: list[str] | Unavailable
    data = models.get("data") if isinstance(models, dict) else None
    if isinstance(data, list):
        ids = [str(m["id"])[:200] for m in data[:200] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    else:
        ids = unavailable("GET /v1/models answered without a data list")
    version: str | Unavailable
    try:
        v = ep.get_json("/version", timeout_s=5.0)
        version = str(v.get("version") if isinstance(v, dict) and "version" in v else v)[:200]
    except EndpointError as exc:
        version = unavailable(f"no version endpoint ({exc})")
    return EngineInfo(
        url=ep.url, model=req.model, served_models=ids, version=version, params=dict(req.params)
    )


def calibrate(ep: Endpoint, req: EngineRequest) -> tuple[float, float]:
    """Tokens per prompt word and the fixed tokens a prompt gets (BOS, template), from the server's usage."""
    counts = []
    for i, words in enumerate(CALIBRATION_WORDS):
        r = stream_completion(ep, req.model, prompt_text(words, 10_000 + i), 1, req.timeout_s)
        if r.error is not None:
            raise EndpointError(f"the endpoint did not complete a calibration request: {r.error}")
        if r.prompt_tokens is None:
            raise EndpointError(
                "the endpoint reports no usage.prompt_tokens; prompt lengths cannot be checked"
            )
        counts.append(r.prompt_tokens)
    (w0, w1), (t0, t1) = CALIBRATION_WORDS, counts
    per_word = (t1 - t0) / (w1 - w0)
    if per_word <= 0:
        raise EndpointError(
            f"prompt token counts do not grow with the prompt ({t0} then {t1}); cannot size prompts"
        )
    return per_word, t0 - per_word * w0


def words_for(plan: EnginePlan, tokens: int) -> int:
    """Prompt words that make about `tokens` of the engine's tokens."""
    return max(1, round((tokens - plan.token_offset) / plan.tokens_per_word))


@dataclass
class EnginePlan:
    """A reachable engine and how many prompt words make how many of its tokens."""

    request: EngineRequest
    endpoint: Endpoint
    info: EngineInfo
    stack: Stack
    tokens_per_word: float
    token_offset: float
    command: list[str]


def plan_engine(req: EngineRequest, stack: Callable[[Endpoint], Stack], command: list[str]) -> EnginePlan:
    """Validate, reach the engine and calibrate prompt lengths: every input error before the sweep."""
    ep = check_request(req)
    info = engine_info(ep, req)
    st = stack(ep)
    per_word, offset = calibrate(ep, req)
    return EnginePlan(req, ep, info, st, per_word, offset, command)
