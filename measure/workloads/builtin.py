"""Representative workloads: built-in models with random weights, and the user-model protocol.

Nothing is downloaded. A user's own model is named `package.module:factory`; the factory takes the
`--param` values as keyword arguments and returns a `UserWorkload` or a `(module, build_input, unit)`
tuple, where `build_input(batch, seq_len)` returns the input tensor (or a tuple of them) on the CPU.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from measure.core.parsing import ParamValue, WorkloadError

InputBuilder = Callable[[int, int | None], Any]


@dataclass
class UserWorkload:
    """What a user factory returns when it needs more than the plain (module, build_input, unit) tuple."""

    module: nn.Module
    build_input: InputBuilder
    unit: str = "samples"
    units_per_item: float | Callable[[int | None], float] = 1.0
    has_seq_len: bool = False
    default_seq_len: int | None = None
    description: str = "user workload"
    classifier: bool = False  # output rows are class logits: the quality proxy adds top-1 agreement


@dataclass
class BuiltWorkload:
    """A ready-to-measure workload: an fp32 CPU module, its input builder and its unit of work."""

    name: str
    source: str
    description: str
    parameters: dict[str, ParamValue]
    unit: str
    microbenchmark: bool
    has_seq_len: bool
    module: nn.Module
    build_input: InputBuilder
    units_per_item_fn: Callable[[int | None], float]
    default_seq_len: int | None = None
    classifier: bool = False
    _flops: dict[int | None, float | None] = field(default_factory=dict)

    def inputs(self, batch: int, seq_len: int | None) -> tuple[torch.Tensor, ...]:
        """The inputs for one batch, always as a tuple of CPU tensors."""
        x = self.build_input(batch, seq_len)
        return tuple(x) if isinstance(x, tuple | list) else (x,)

    def units_per_item(self, seq_len: int | None) -> float:
        return float(self.units_per_item_fn(seq_len))

    def flops_per_item(self, seq_len: int | None) -> float | None:
        """Matmul/convolution/attention FLOPs of one item, counted by torch's FlopCounterMode at batch 1."""
        if seq_len not in self._flops:
            # The math attention backend decomposes into matmuls the counter sees; fused CPU attention kernels
            # are invisible to it and would drop the attention FLOPs.
            with (
                torch.inference_mode(),
                sdpa_kernel([SDPBackend.MATH]),
                FlopCounterMode(display=False) as counter,
            ):
                self.module.eval()(*self.inputs(1, seq_len))
            total = counter.get_total_flops()
            self._flops[seq_len] = float(total) if total > 0 else None
        return self._flops[seq_len]


# ---------------------------------------------------------------- built-in models


class MLP(nn.Module):
    """A plain multilayer perceptron with a classification head."""

    def __init__(self, in_features: int, width: int, layers: int, classes: int) -> None:
        super().__init__()
        dims = [in_features] + [width] * layers
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            blocks += [nn.Linear(a, b), nn.GELU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(dims[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class EncoderLayer(nn.Module):
    """A pre-norm transformer encoder layer written with explicit Linear layers (so fp8/int8 can swap them)."""

    def __init__(self, width: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ff1 = nn.Linear(width, ffn)
        self.ff2 = nn.Linear(ffn, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, d)
        x = x + self.proj(attn)
        return x + self.ff2(F.gelu(self.ff1(self.norm2(x))))


class Encoder(nn.Module):
    """BERT-like encoder: token and position embeddings, N layers, pooled classification head."""

    def __init__(self, vocab: int, max_seq: int, width: int, heads: int, ffn: int, layers: int, classes: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(max_seq, width)
        self.layers = nn.ModuleList(EncoderLayer(width, heads, ffn) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(pos)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x)[:, 0])


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm and a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.down(x))


class ResNetLike(nn.Module):
    """ResNet-style CNN: stem, stages of basic blocks doubling width and halving resolution, linear head."""

    def __init__(self, width: int, stages: int, blocks: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        cin = width
        for s in range(stages):
            cout = width * 2**s
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if (b == 0 and s > 0) else 1))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).mean(dim=(2, 3)))


# ---------------------------------------------------------------- registry

ENCODER_PRESETS: dict[str, dict[str, int]] = {
    "small": {"layers": 4, "width": 256, "heads": 4, "ffn": 1024},
    "bert-base": {"layers": 12, "width": 768, "heads": 12, "ffn": 3072},
    "bert-large": {"layers": 24, "width": 1024, "heads": 16, "ffn": 4096},
}

DEFAULTS: dict[str, dict[str, ParamValue]] = {
    "mlp": {"in_features": 1024, "width": 1024, "layers": 4, "classes": 1000},
    "transformer-encoder": {"preset": "small", "vocab": 30522, "max_seq": 512, "classes": 2},
    "cnn": {"width": 32, "stages": 4, "blocks": 2, "classes": 1000, "image_size": 64},
    "gemm": {"k": 1024, "n": 1024},
}
_ENCODER_OVERRIDES = ("layers", "width", "heads", "ffn")
DEFAULT_SEQ_LEN = 128


def builtin_names() -> list[str]:
    """Names of the built-in workloads."""
    return list(DEFAULTS)


def _merge(name: str, given: dict[str, ParamValue]) -> dict[str, ParamValue]:
    allowed = set(DEFAULTS[name]) | (set(_ENCODER_OVERRIDES) if name == "transformer-encoder" else set())
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise WorkloadError(
            f"unknown parameter(s) {', '.join(unknown)} for {name}: use {', '.join(sorted(allowed))}"
        )
    params = {**DEFAULTS[name], **given}
    if name == "transformer-encoder":
        preset = str(params["preset"])
        if preset not in ENCODER_PRESETS:
            raise WorkloadError(f"unknown preset {preset!r}: choose from {', '.join(ENCODER_PRESETS)}")
        params = {**DEFAULTS[name], **ENCODER_PRESETS[preset], **given}
    for k, v in params.items():
        if k != "preset" and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
            raise WorkloadError(f"parameter {k} of {name} must be a positive integer, got {v!r}")
    if name == "transformer-encoder" and int(params["width"]) % int(params["heads"]):
        raise WorkloadError("transformer-encoder: width must be divisible by heads")
    return params


def _int(params: dict[str, ParamValue], key: str) -> int:
    return int(params[key])


def _build_builtin(name: str, given: dict[str, ParamValue]) -> BuiltWorkload:
    p = _merge(name, given)
    gen = torch.Generator().manual_seed(1234)  # inputs: random but reproducible, no global seed touched
    common: dict[str, Any] = {
        "name": name,
        "source": "builtin",
        "parameters": p,
        "microbenchmark": False,
        "classifier": name != "gemm",
    }
    one_per_item: Callable[[int | None], float] = lambda s: 1.0  # noqa: E731
    # Weights are random but identical across runs (seeded inside a forked RNG, global state untouched).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if name == "mlp":
            features = _int(p, "in_features")
            return BuiltWorkload(
                **common,
                description=f"MLP {p['layers']}x{p['width']} with a {p['classes']}-way head",
                unit="samples",
                has_seq_len=False,
                module=MLP(features, _int(p, "width"), _int(p, "layers"), _int(p, "classes")),
                build_input=lambda b, s: torch.randn(b, features, generator=gen),
                units_per_item_fn=one_per_item,
            )
        if name == "transformer-encoder":
            max_seq, vocab = _int(p, "max_seq"), _int(p, "vocab")

            def ids(b: int, s: int | None) -> torch.Tensor:
                if s is None or s > max_seq:
                    raise WorkloadError(f"seq_len {s} is not in 1..{max_seq} (the workload's max_seq)")
                return torch.randint(0, vocab, (b, s), generator=gen)

            return BuiltWorkload(
                **common,
                description=f"BERT-like encoder ({p['preset']}): {p['layers']} layers, width {p['width']}, "
                f"{p['heads']} heads",
                unit="tokens",
                has_seq_len=True,
                module=Encoder(
                    vocab,
                    max_seq,
                    _int(p, "width"),
                    _int(p, "heads"),
                    _int(p, "ffn"),
                    _int(p, "layers"),
                    _int(p, "classes"),
                ),
                build_input=ids,
                units_per_item_fn=lambda s: float(s or 0),
                default_seq_len=DEFAULT_SEQ_LEN,
            )
        if name == "cnn":
            size = _int(p, "image_size")
            return BuiltWorkload(
                **common,
                description=f"ResNet-like CNN, {p['stages']} stages x {p['blocks']} blocks, {size}px images",
                unit="images",
                has_seq_len=False,
                module=ResNetLike(_int(p, "width"), _int(p, "stages"), _int(p, "blocks"), _int(p, "classes")),
                build_input=lambda b, s: torch.randn(b, 3, size, size, generator=gen),
                units_per_item_fn=one_per_item,
            )
        # gemm: one item is one row of the left operand: (batch x k) @ (k x n)
        k = _int(p, "k")
        return BuiltWorkload(
            **{**common, "microbenchmark": True},
            description=f"GEMM microbenchmark: (batch x {k}) @ ({k} x {p['n']}); not a served model",
            unit="rows",
            has_seq_len=False,
            module=nn.Linear(k, _int(p, "n"), bias=False),
            build_input=lambda b, s: torch.randn(b, k, generator=gen),
            units_per_item_fn=one_per_item,
        )


def _load_user(spec: str, params: dict[str, ParamValue]) -> BuiltWorkload:
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise WorkloadError(f"user workload {spec!r} must look like package.module:factory")
    cwd = os.getcwd()
    if cwd not in sys.path:  # as `python -m` would: a module next to the user is importable
        sys.path.insert(0, cwd)
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise WorkloadError(f"cannot load user workload {spec!r}: {exc}") from None
    try:
        made = factory(**params)
    except Exception as exc:  # user code: any failure becomes one readable line
        raise WorkloadError(f"user workload {spec!r} failed to build: {type(exc).__name__}: {exc}") from None
    if isinstance(made, tuple) and len(made) == 3:
        made = UserWorkload(module=made[0], build_input=made[1], unit=str(made[2]))
    if (
        not isinstance(made, UserWorkload)
        or not isinstance(made.module, nn.Module)
        or not callable(made.build_input)
    ):
        raise WorkloadError(
            f"user workload {spec!r} must return UserWorkload or (nn.Module, build_input(batch, seq_len), unit)"
        )
    upi = made.units_per_item
    if callable(upi):
        upi_fn = upi
    else:
        per_item = float(upi)

        def upi_fn(seq_len: int | None) -> float:
            return per_item

    return BuiltWorkload(
        name=attr,
        source=spec,
        description=made.description,
        parameters=dict(params),
        unit=made.unit,
        microbenchmark=False,
        has_seq_len=made.has_seq_len,
        module=made.module,
        build_input=made.build_input,
        units_per_item_fn=upi_fn,
        default_seq_len=made.default_seq_len,
        classifier=made.classifier,
    )


def build(name: str, params: dict[str, ParamValue] | None = None) -> BuiltWorkload:
    """A built-in workload by name, or a user workload given as `package.module:factory`."""
    params = params or {}
    if name in DEFAULTS:
        return _build_builtin(name, params)
    if ":" in name:
        return _load_user(name, params)
    raise WorkloadError(
        f"unknown workload {name!r}: choose from {', '.join(builtin_names())} or give package.module:factory"
    )
