"""Shared fixtures: tiny run objects built without torch, and GPU-test skipping on CPU machines."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from measure.run import (
    LatencySummary,
    Methodology,
    Point,
    Run,
    Stack,
    StoppingRule,
    SweepSpec,
    WarmupPolicy,
    Workload,
    unavailable,
)

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def summary_of(samples: list[float]) -> LatencySummary:
    a = np.asarray(samples)
    return LatencySummary(
        n=a.size,
        mean=float(a.mean()),
        median=float(np.median(a)),
        p90=float(np.percentile(a, 90)),
        p95=float(np.percentile(a, 95)),
        p99=float(np.percentile(a, 99)),
        min=float(a.min()),
        max=float(a.max()),
        std=float(a.std(ddof=1)),
        mean_ci95_halfwidth=0.01,
        mean_ci95_halfwidth_rel=0.01,
        p99_ci95_low=float(a.min()),
        p99_ci95_high=None,
    )


def ok_point(precision: str = "fp32", batch: int = 1, mean_ms: float = 2.0) -> Point:
    rng = np.random.default_rng(batch)
    samples = (mean_ms * (1 + 0.05 * rng.standard_normal(50))).clip(0.1).tolist()
    return Point(
        precision=precision,
        batch_size=batch,
        status="ok",
        units_per_item=1.0,
        measured_iterations=50,
        latency_ms=summary_of(samples),
        throughput_items_per_s=batch * 1000 / mean_ms,
        raw_latencies_ms=samples,
    )


def make_run(points: list[Point] | None = None, **stack_overrides: object) -> Run:
    no_gpu = unavailable("CPU run: no GPU involved")
    stack = dict(
        device="cpu",
        device_kind="cpu",
        device_name="Test CPU",
        device_uuid=no_gpu,
        compute_capability=no_gpu,
        device_memory_bytes=no_gpu,
        driver_version=no_gpu,
        cuda_runtime=no_gpu,
        cudnn_version=no_gpu,
        torch_version="2.0",
        torch_build="CPU-only",
        torch_num_threads=2,
        compile_mode="eager",
        python_version="3.11",
        numpy_version="2",
        os="Linux",
        kernel="6",
        hostname="h",
        cpu_model="Test CPU",
        cpu_count_logical=2,
        cpu_count_usable=2,
        cpu_flags=["avx2"],
        cpu_governor=unavailable("no cpufreq"),
        gpu_power_limit_w=no_gpu,
        gpu_persistence_mode=no_gpu,
        gpu_ecc_mode=no_gpu,
        gpu_mig_mode=no_gpu,
        gpu_app_clock_sm_mhz=no_gpu,
        gpu_app_clock_mem_mhz=no_gpu,
        environment={},
    )
    stack.update(stack_overrides)
    pts = points if points is not None else [ok_point("fp32", 1), ok_point("fp32", 4, 3.0)]
    return Run(
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        fleetwise_version="test",
        command=["fleetwise", "measure"],
        methodology=Methodology(
            warmup=WarmupPolicy(min_excluded_iterations=3, compilation_excluded=True),
            stopping=StoppingRule(
                ci_target_relative=0.02,
                confidence=0.95,
                ci_method="t",
                min_iterations=30,
                max_iterations=1000,
                min_seconds=0.5,
                max_seconds=10,
            ),
            timer="perf_counter_ns+synchronize",
            iteration_scope="end-to-end",
            l2_flush=False,
            percentile_method="type 7",
            p99_ci_method="order statistics",
            drift_test="mk",
            raw_latency_policy="cap",
            inference_mode="inference_mode",
        ),
        stack=Stack.model_validate(stack),
        workload=Workload(
            name="mlp",
            source="builtin",
            description="test",
            parameters={"width": 8},
            unit="samples",
            microbenchmark=False,
            has_seq_len=False,
        ),
        sweep=SweepSpec(
            precisions=sorted({p.precision for p in pts}),
            batch_sizes=sorted({p.batch_size for p in pts}),
            complete=True,
        ),  # type: ignore[arg-type]
        points=pts,
    ).with_id()


@pytest.fixture
def run() -> Run:
    return make_run()


REPO = Path(__file__).resolve().parents[1]


def shipped_files() -> list[Path]:
    """The run files committed to the repository (runs a user measured locally, e.g. by `make run`, are not
    shipped evidence and must not change what the tests see)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "ls-files", "data/runs"], cwd=REPO, capture_output=True, text=True, check=True
        )
        files = [REPO / line for line in out.stdout.splitlines() if line.endswith(".json")]
    except (OSError, subprocess.CalledProcessError):
        files = []
    return files or sorted((REPO / "data" / "runs").glob("*.json"))


def shipped_run(workload: str) -> Path:
    """The shipped run file of a workload."""
    return next(p for p in shipped_files() if p.name.startswith(workload + "-cpu-"))
