"""Step times calibrated by simulation: the engine model replaying each measured closed loop reproduces its
median inter-token gap wherever the measured curve allows it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fleetwise_cli.main import app
from measure.run import load_run
from planner.evidence.llm_validation import load_llm_validation
from planner.llm.calibrate import TOLERANCE, calibrate
from planner.llm.engine import EngineConfig
from tests.conftest import REPO

RUN = REPO / "data" / "runs" / "llm-engine-cpu-20261129T142232Z-be0a55eb155d.json"
VALIDATION = REPO / "data" / "validations" / "llm-validation-be0a55eb155d-fp32-20261129T142710Z.json"


def knobs() -> EngineConfig:
    k = load_llm_validation(VALIDATION).knobs
    return EngineConfig(
        k.max_num_seqs, k.max_num_batched_tokens, k.chunked_prefill, k.block_size, k.kv_blocks
    )


def test_the_replayed_closed_loops_give_the_measured_median_gaps_where_the_curve_allows() -> None:
    run = load_run(RUN)
    model, fit = calibrate(run, "fp32", knobs())
    assert len(fit.settings) == sum(1 for p in run.points if p.phase == "decode")
    by_prompt: dict[int, list] = {}
    for f in fit.settings:
        by_prompt.setdefault(f.prompt_tokens, []).append(f)
    checked = 0
    for fits in by_prompt.values():
        fits.sort(key=lambda f: f.concurrency)
        for i, f in enumerate(fits):
            # a measured median below the one at a lower concurrency cannot be met by a non-decreasing curve
            if all(f.gap_median_ms >= g.gap_median_ms for g in fits[:i]):
                assert abs(f.gap_median_error_pct) <= TOLERANCE * 100 * 1.5, f
                checked += 1
    assert checked >= len(fit.settings) - 3
    assert model.source == "engine, calibrated" and any("calibrated by simulation" in n for n in model.notes)
    lone = [f for f in fit.settings if f.concurrency == 1]
    assert lone and all(f.ttft_median_ms is not None and f.simulated_ttft_median_ms is not None for f in lone)


def test_a_recorded_validation_is_rechecked_with_the_calibrated_model(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["validate", "--recheck", str(VALIDATION), "--run", str(RUN), "--calibrated",
                                   "--out", str(tmp_path), "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    (written,) = tmp_path.glob("*.json")
    v = load_llm_validation(written)
    assert any("calibrated by simulation" in n for n in v.notes) and any("residuals" in n for n in v.notes)
    alone = CliRunner().invoke(app, ["validate", "--run", str(RUN), "--calibrated"])
    assert alone.exit_code == 2 and "give --recheck FILE" in alone.output
