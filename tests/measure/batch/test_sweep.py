"""Tiny real sweeps on the CPU: statuses, OOM handling, unsupported precisions, interrupt and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from measure.batch.resume import request_from_run
from measure.batch.sweep import run_sweep
from measure.core.parsing import Progress, SweepError, parse_int_list, powers_of_two
from measure.core.steady_state import SamplingConfig
from measure.inprocess.plan import SweepRequest
from measure.run import Point, load_run, save_run

FAST = SamplingConfig(
    ci_target=0.05, min_iterations=10, min_seconds=0.05, max_seconds=0.5, check_interval_s=0.02
)
TINY_MLP = {"in_features": 16, "width": 16, "layers": 1, "classes": 16}


def request(**kw: object) -> SweepRequest:
    base: dict[str, object] = dict(
        workload="mlp", params=TINY_MLP, device="cpu", precisions=["fp32"], batch_sizes=[1, 2], sampling=FAST
    )
    base.update(kw)
    return SweepRequest(**base)  # type: ignore[arg-type]


def test_tiny_sweep_measures_every_point_and_round_trips(tmp_path: Path) -> None:
    res = run_sweep(request(precisions=["fp32", "bf16"]), command=["test"])
    run = res.run
    assert not res.interrupted and run.sweep.complete
    assert [p.key[:3] for p in run.points] == [
        ("fp32", 1, None),
        ("fp32", 2, None),
        ("bf16", 1, None),
        ("bf16", 2, None),
    ]
    for p in run.points:
        assert p.status in ("ok", "unstable")
        assert p.latency_ms is not None and p.latency_ms.n == p.measured_iterations
        assert p.throughput_items_per_s == pytest.approx(p.batch_size * 1000 / p.latency_ms.mean)
        assert p.warmup_iterations_excluded >= FAST.min_warmup
        assert 0 < len(p.raw_latencies_ms) <= 2000
        assert p.flops_per_item == pytest.approx(2 * (16 * 16 + 16 * 16))
        assert p.clocks is not None  # a clock summary, or unavailable with the reason (VMs hide cpufreq)
    assert run.stack.device_kind == "cpu" and run.stack.device_uuid.unavailable  # type: ignore[union-attr]
    assert run.methodology.timer == "perf_counter_ns+synchronize"
    assert load_run(save_run(run, tmp_path)) == run


def test_oom_is_recorded_and_larger_batches_are_skipped_while_the_sweep_goes_on() -> None:
    req = request(
        workload="tests.measure.fake_workloads:oom_above",
        params={"limit": 2},
        precisions=["fp32", "bf16"],
        batch_sizes=[1, 2, 4, 8],
    )
    run = run_sweep(req).run
    points = {p.key[:3]: p for p in run.points}
    # the quality proxy's reference batch ran out of memory too, and fell back to fewer items
    assert run.quality is not None and [(q.status, q.items) for q in run.quality.entries] == [("ok", 1)] * 2
    for prec in ("fp32", "bf16"):
        assert points[(prec, 2, None)].status in ("ok", "unstable")
        oom = points[(prec, 4, None)]
        assert oom.status == "oom" and "out of memory" in (oom.reason or "") and oom.latency_ms is None
        skipped = points[(prec, 8, None)]
        assert (
            skipped.status == "oom"
            and "not-attempted" in skipped.flags
            and "batch 4" in (skipped.reason or "")
        )


@pytest.mark.parametrize(
    ("workload", "params", "precision", "why"),
    [
        ("mlp", TINY_MLP, "tf32", "tensor-core"),
        ("mlp", TINY_MLP, "fp8", "fp8 matrix units"),
        (
            "cnn",
            {"width": 4, "stages": 1, "blocks": 1, "image_size": 8, "classes": 4},
            "int8",
            "convolutions",
        ),
    ],
)
def test_unsupported_precision_is_recorded_with_its_reason(
    workload: str, params: dict, precision: str, why: str
) -> None:  # type: ignore[type-arg]
    run = run_sweep(
        request(workload=workload, params=params, precisions=[precision, "fp32"], batch_sizes=[1])
    ).run
    bad, good = run.points
    assert bad.status == "unsupported" and why in (bad.reason or "") and bad.latency_ms is None
    assert good.status in ("ok", "unstable")


def test_int8_runs_dynamic_quantization_on_the_cpu_and_says_so() -> None:
    p = run_sweep(request(precisions=["int8"], batch_sizes=[2])).run.points[0]
    assert p.status in ("ok", "unstable")
    assert "dynamic int8" in (p.precision_notes or "")


class StopAfter(Progress):
    def __init__(self, n: int) -> None:
        self.n = n
        self.done = 0

    def point_done(self, point: Point) -> None:
        self.done += 1
        if self.done == self.n:
            raise KeyboardInterrupt


def test_interrupt_keeps_finished_points_and_resume_completes_the_run() -> None:
    req = request(batch_sizes=[1, 2, 4])
    first = run_sweep(req, StopAfter(2))
    assert first.interrupted and not first.run.sweep.complete
    assert [p.batch_size for p in first.run.points] == [1, 2]
    again = request_from_run(first.run)
    assert again.batch_sizes == [1, 2, 4] and again.sampling.max_seconds == FAST.max_seconds
    second = run_sweep(again, resume=first.run)
    assert second.run.sweep.complete and [p.batch_size for p in second.run.points] == [1, 2, 4]
    assert second.run.points[:2] == first.run.points[:2]  # kept as measured, not re-measured
    assert second.run.id != first.run.id


def test_resume_refuses_a_different_stack() -> None:
    first = run_sweep(request(batch_sizes=[1, 2]), StopAfter(1)).run
    foreign = first.model_copy(update={"stack": first.stack.model_copy(update={"cpu_model": "Other CPU"})})
    with pytest.raises(SweepError, match="cpu_model"):
        run_sweep(request_from_run(foreign), resume=foreign)


def test_bad_requests_fail_before_measuring() -> None:
    with pytest.raises(SweepError, match="no sequence length"):
        run_sweep(request(seq_lens=[128]))
    with pytest.raises(SweepError, match="iteration scope"):
        run_sweep(request(scope="kernel-only"))
    with pytest.raises(ValueError, match="unknown device"):
        run_sweep(request(device="tpu"))
    with pytest.raises(ValueError, match="CUDA is not available"):
        run_sweep(request(device="cuda:0"))


def test_int_lists_parse_strictly() -> None:
    assert parse_int_list("1, 4,4,16", "batch") == [1, 4, 16]
    for bad, msg in [("1,x", "not an integer"), ("0", "positive"), ("-2", "positive"), (",", "empty")]:
        with pytest.raises(SweepError, match=msg):
            parse_int_list(bad, "batch")
    assert powers_of_two(100) == [1, 2, 4, 8, 16, 32, 64]


def test_transformer_points_carry_tokens_per_item_and_seq_len() -> None:
    params = {"layers": 1, "width": 32, "heads": 2, "ffn": 64, "vocab": 50, "max_seq": 64, "classes": 2}
    run = run_sweep(
        request(workload="transformer-encoder", params=params, seq_lens=[16, 32], batch_sizes=[1])
    ).run
    assert [(p.seq_len, p.units_per_item) for p in run.points] == [(16, 16.0), (32, 32.0)]
    p = run.points[1]
    assert p.throughput_units_per_s == pytest.approx(p.throughput_items_per_s * 32)  # type: ignore[operator]
    assert run.workload.unit == "tokens" and run.sweep.seq_lens == [16, 32]


def test_a_point_too_slow_for_two_samples_is_unstable_with_no_invented_ci() -> None:
    from measure.core.steady_state import sample_point
    from measure.device.precision import prepare
    from measure.device.target import parse_device
    from measure.inprocess.point import build_point
    from measure.workloads.builtin import build
    from tests.measure.core.test_engine import ScriptedDevice

    dev = ScriptedDevice(np.full(100, 6000.0))  # 6 s per batch against a 10 s budget
    sampled = sample_point(lambda: None, dev.timer, SamplingConfig(max_seconds=10.0), clock=dev.clock)
    built = build("mlp", TINY_MLP)
    point = build_point(
        "fp32", 1, None, built, prepare("fp32", built.module, parse_device("cpu")), sampled, None
    )
    assert point.status == "unstable" and point.latency_ms is not None
    assert point.latency_ms.n == 1 and point.latency_ms.mean_ci95_halfwidth is None
    assert point.latency_ms.p99_ci95_high is None


def test_flops_per_item_match_the_analytic_count_including_attention() -> None:
    from measure.workloads.builtin import build

    w = build("transformer-encoder", {"preset": "bert-base"})
    s, d, layers, ffn = 128, 768, 12, 3072
    linear = layers * 2 * s * (4 * d * d + 2 * d * ffn)
    attention = layers * 2 * 2 * s * s * d  # QK^T and AV
    head = 2 * d * 2  # pooled classification head, 2 classes
    assert w.flops_per_item(s) == pytest.approx(linear + attention + head)
    assert build("gemm", {"k": 64, "n": 32}).flops_per_item(None) == 2 * 64 * 32


def test_device_compute_scope_on_the_cpu_is_recorded_and_explained() -> None:
    run = run_sweep(request(scope="device-compute", batch_sizes=[2])).run
    assert run.methodology.iteration_scope == "device-compute"
    assert any("forward pass only" in n for n in run.methodology.notes)
    assert run.points[0].status in ("ok", "unstable")


def test_threads_are_applied_and_recorded() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        run = run_sweep(request(threads=1, batch_sizes=[1])).run
        assert run.stack.torch_num_threads == 1
    finally:
        torch.set_num_threads(before)


def test_l2_flush_is_refused_on_the_cpu_before_measuring() -> None:
    with pytest.raises(ValueError, match="CUDA devices only"):
        run_sweep(request(l2_flush=True))


def test_builtin_weights_are_reproducible_and_building_leaves_the_global_rng_alone() -> None:
    import torch

    from measure.workloads.builtin import build

    state = torch.get_rng_state()
    a, b = build("mlp", TINY_MLP), build("mlp", TINY_MLP)
    assert torch.equal(torch.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
