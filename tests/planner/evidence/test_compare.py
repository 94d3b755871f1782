"""Run-vs-run comparison: comparability first, then differences tested against the noise."""

from __future__ import annotations

import numpy as np

from measure.run import Point, Run
from planner.evidence.compare import compare_runs
from tests.conftest import make_run, ok_point, summary_of


def scaled(p: Point, factor: float, seed: int) -> Point:
    rng = np.random.default_rng(seed)
    base = np.asarray(p.raw_latencies_ms)
    samples = (base * factor * (1 + 0.01 * rng.standard_normal(base.size))).tolist()
    return p.model_copy(
        update={
            "raw_latencies_ms": samples,
            "latency_ms": summary_of(samples),
            "throughput_items_per_s": p.batch_size * 1000 / float(np.mean(samples)),
        }
    )


def variant(run: Run, factor: float, seed: int, **stack: object) -> Run:
    return make_run([scaled(p, factor, seed + i) for i, p in enumerate(run.points)], **stack)


def test_a_clear_slowdown_is_significant_and_named() -> None:
    a = make_run([ok_point("fp32", 1), ok_point("fp32", 4, 3.0)])
    b = variant(a, 1.25, 7, device_name="Other CPU")
    c = compare_runs(a, b)
    assert c.comparable and not c.differences
    assert [d.field for d in c.context] == ["stack.device_name"]
    assert all(p.significant and p.verdict == "A faster" for p in c.points)
    assert all(p.throughput_diff_pct < -15 for p in c.points)


def test_a_difference_inside_the_noise_is_not_called_a_win() -> None:
    a = make_run([ok_point("fp32", 1), ok_point("fp32", 4, 3.0)])
    b = variant(a, 1.0, 9)  # same distribution, different draws
    c = compare_runs(a, b)
    assert c.comparable
    assert not any(p.significant for p in c.points)
    assert {p.verdict for p in c.points} == {"no significant difference"}


def test_different_workloads_are_not_comparable_and_the_fields_are_listed() -> None:
    a = make_run()
    other = a.workload.model_copy(update={"name": "cnn", "parameters": {"width": 16}})
    b = a.model_copy(update={"workload": other}).with_id()
    c = compare_runs(a, b)
    assert not c.comparable
    assert {d.field for d in c.differences} == {"workload.name", "workload.parameters"}
    assert all(p.verdict == "not comparable" and not p.significant for p in c.points)


def test_p_values_are_printed_with_two_digits_and_a_floor() -> None:
    from planner.evidence.compare import p_value_text

    assert p_value_text(None) == "-"
    assert p_value_text(0.0123) == "0.012"
    assert p_value_text(3e-37) == "< 1e-06"
