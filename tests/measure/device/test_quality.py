"""The numeric-quality proxy: metrics against known perturbations, and per-precision entries in a sweep."""

from __future__ import annotations

import pytest
import torch

from measure.batch.sweep import run_sweep
from measure.core.steady_state import SamplingConfig
from measure.device.quality import compare
from measure.inprocess.plan import SweepRequest

FAST = SamplingConfig(
    ci_target=0.05, min_iterations=10, min_seconds=0.05, max_seconds=0.3, check_interval_s=0.02
)


def test_a_scaled_output_has_that_relative_error_and_perfect_cosine() -> None:
    ref = torch.randn(16, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = compare("bf16", None, ref * 1.01, ref, classifier=True)
    assert q.status == "ok" and q.rel_l2_error == pytest.approx(0.01)
    assert q.cosine_similarity_mean == pytest.approx(1.0) and q.top1_agreement == 1.0
    assert q.max_abs_error == pytest.approx(float((ref * 0.01).abs().max()))


def test_flipped_rows_lose_top1_and_cosine() -> None:
    ref = torch.eye(4, dtype=torch.float64)
    out = ref.clone()
    out[0] = -out[0]  # one item of four now points the other way
    q = compare("fp8", None, out, ref, classifier=True)
    assert q.top1_agreement == pytest.approx(0.75) and q.cosine_similarity_min == pytest.approx(-1.0)
    assert q.cosine_similarity_mean == pytest.approx(0.5)
    assert compare("fp8", None, out, ref, classifier=False).top1_agreement is None


def test_nonfinite_outputs_are_a_finding_not_a_number() -> None:
    ref = torch.ones(2, 3, dtype=torch.float64)
    out = ref.clone()
    out[1, 2] = float("inf")
    q = compare("fp16", None, out, ref, classifier=True)
    assert q.status == "nonfinite" and "1 of 6" in (q.reason or "") and q.rel_l2_error is None


def test_a_sweep_stores_the_proxy_for_every_precision_and_unsupported_ones_say_why() -> None:
    req = SweepRequest(
        workload="mlp",
        params={"in_features": 32, "width": 64, "layers": 2, "classes": 10},
        device="cpu",
        precisions=["fp32", "bf16", "int8", "fp8"],
        batch_sizes=[2],
        sampling=FAST,
    )
    run = run_sweep(req, command=["test"]).run
    assert run.quality is not None
    by = {q.precision: q for q in run.quality.entries}
    assert list(by) == ["fp32", "bf16", "int8", "fp8"]
    assert by["fp32"].status == "ok" and by["fp32"].rel_l2_error == 0.0 and by["fp32"].top1_agreement == 1.0
    bf16 = by["bf16"]
    assert bf16.status == "ok" and 1e-4 < (bf16.rel_l2_error or 0) < 0.05 and bf16.items == 32
    assert by["int8"].status == "ok" and (by["int8"].rel_l2_error or 0) > 0
    assert by["fp8"].status == "unsupported" and by["fp8"].reason  # no fp8 kernels on a CPU
