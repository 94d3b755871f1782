"""Checking the LLM engine model: closed-loop replay (against theory), predicting an imported benchmark (a
benchmark made from the model's own replay is predicted exactly), and the live validation's comparison,
verdict and file (errors, lag, instability, the judged loads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from planner.evidence.engine_benchmark import BenchLevel, BenchRequest, Stat
from planner.evidence.llm_validation import (
    LATE_MS,
    EngineKnobs,
    LlmLevel,
    LlmValidation,
    llm_level,
    load_llm_validation,
    save_llm_validation,
    scan_llm_validations,
    verdict,
)
from planner.evidence.validation import ValidationFileError
from planner.llm.bench_check import check_level
from planner.llm.engine import EngineConfig, LlmRequests, simulate
from tests.conftest import REPO, shipped_files
from tests.planner.llm.test_llm_engine import PREFILL_MS_PER_TOKEN, synthetic_model


def test_a_closed_loop_of_one_sends_each_request_as_the_last_ends() -> None:
    model = synthetic_model()
    n = 12
    reqs = LlmRequests(np.zeros(n), np.full(n, 256), np.full(n, 5))
    tr = simulate(reqs, model, EngineConfig(), concurrency=1)
    assert tr.sent_s is not None
    assert tr.sent_s[1:] == pytest.approx(tr.finish_s[:-1])  # the next leaves when the last one ends
    assert (tr.first_s - tr.sent_s) * 1000 == pytest.approx(2 + PREFILL_MS_PER_TOKEN * 256)  # alone: prefill
    four = simulate(reqs, model, EngineConfig(), concurrency=4)
    assert four.sent_s is not None and (four.sent_s[:4] == 0).all() and four.sent_s[4] > 0


def _level_from_replay(traffic: str, concurrency: int | None = None) -> BenchLevel:
    """A 'benchmark' whose numbers are the model's own replay of known traffic (what a perfect model gives)."""
    model = synthetic_model(spread=0.0)
    rng = np.random.default_rng(7)
    n = 300
    prompt, output = rng.integers(32, 512, n), rng.integers(2, 40, n)
    arrival = np.cumsum(rng.exponential(0.05, n)) if concurrency is None else np.zeros(n)
    tr = simulate(
        LlmRequests(arrival - arrival[0], prompt, output),
        model,
        EngineConfig(),
        seed=1,
        concurrency=concurrency,
    )
    sent = tr.sent_s if tr.sent_s is not None else arrival - arrival[0]
    ttft, e2e = (tr.first_s - sent) * 1000, (tr.finish_s - sent) * 1000

    def pct(x: np.ndarray) -> Stat:
        return Stat(mean=float(x.mean()), p50=float(np.percentile(x, 50)), p99=float(np.percentile(x, 99)))

    return BenchLevel(
        label="replay", traffic=traffic, arrivals="poisson" if concurrency is None else "unknown",  # type: ignore[arg-type]
        rate_rps=20.0 if concurrency is None else None, concurrency=concurrency, completed=n,
        ttft=pct(ttft), e2e=pct(e2e),
        requests=[
            BenchRequest(start_s=float(s) if concurrency is None else None, prompt_tokens=int(p), output_tokens=int(o),
                         ttft_ms=float(a), e2e_ms=float(b), ok=True)
            for s, p, o, a, b in zip(sent, prompt, output, ttft, e2e, strict=True)
        ],
        fields={},
    )  # fmt: skip


@pytest.mark.parametrize(("traffic", "concurrency"), [("rate", None), ("concurrency", 6)])
def test_a_benchmark_of_the_models_own_replay_is_predicted_exactly(
    traffic: str, concurrency: int | None
) -> None:
    got = check_level(
        _level_from_replay(traffic, concurrency), synthetic_model(spread=0.0), EngineConfig(), seed=1
    )
    assert got.skipped is None and set(got.error_pct) >= {"ttft.p50", "ttft.p99", "e2e.mean"}
    assert max(abs(v) for v in got.error_pct.values()) < 1e-6, got.error_pct
    # the same traffic on a slower engine (twice the prefill) is predicted slower than reported: the check can fail
    slow = check_level(
        _level_from_replay(traffic, concurrency),
        synthetic_model(spread=0.0),
        EngineConfig(max_num_seqs=1),
        seed=1,
    )
    assert slow.error_pct["e2e.p99"] > 10


def test_a_level_without_lengths_is_not_predicted_and_says_why() -> None:
    lv = BenchLevel(label="x", traffic="rate", arrivals="poisson", rate_rps=2.0, completed=10, fields={})
    got = check_level(lv, synthetic_model(), EngineConfig(), seed=0)
    assert got.skipped is not None and "token lengths" in got.skipped


def test_fleetwise_validate_predicts_an_imported_guidellm_result_from_the_engine_run() -> None:
    run = next(f for f in shipped_files() if f.name.startswith("llm-engine-"))
    fixture = REPO / "tests" / "fixtures" / "benchmarks" / "guidellm-0.8.1-benchmarks.json"
    res = CliRunner().invoke(
        app, ["validate", "--benchmark", str(fixture), "--run", str(run), "--kv-blocks", "8192", "--json"]
    )
    assert res.exit_code == 0, res.output
    import json

    check = json.loads(res.output)
    assert check["tool"] == "guidellm" and check["levels"]
    assert all({"ttft.p50", "ttft.p99", "tpot.p50"} <= set(lv["error_pct"]) for lv in check["levels"])
    batch = next(f for f in shipped_files() if f.name.startswith("cnn-"))
    bad = CliRunner().invoke(app, ["validate", "--benchmark", str(fixture), "--run", str(batch)])
    assert bad.exit_code == 2 and "batch run" in bad.output


def _arrays(n: int, ttft: float, e2e: float, rate: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arr = np.arange(n) / rate
    rng = np.random.default_rng(0)
    jitter = rng.uniform(0.9, 1.1, n)
    return arr, arr + ttft * jitter, arr + e2e * jitter


def _level(load: float, pred_scale: float = 1.0, late_ms: float = 0.0, stable: bool = True) -> LlmLevel:
    n = 400
    arr, first, last = _arrays(n, 0.02, 0.2)
    tokens = np.full(n, 20)
    pfirst, plast = arr + (first - arr) * pred_scale, arr + (last - arr) * pred_scale
    return llm_level(
        load, 10.0, arr, first, last, tokens, np.full(n, late_ms), [None] * n, 0, pfirst, plast, stable,
        0.0, 0.1, 0.5, 2,
    )  # fmt: skip


def test_the_level_comparison_judges_errors_lag_and_instability() -> None:
    same = _level(0.5)
    assert same.error_pct is not None and max(abs(v) for v in same.error_pct.values()) < 1e-9
    assert same.within_target is True and same.diagnosis == []
    slow = _level(0.5, pred_scale=1.2)
    assert slow.within_target is False and slow.error_pct["ttft_p50"] == pytest.approx(20.0)
    assert any("Little's law" in d for d in slow.diagnosis)
    lag = _level(0.5, pred_scale=1.2, late_ms=LATE_MS * 2)
    assert lag.generator_flag and any("generator lag" in d for d in lag.diagnosis)
    above = _level(0.85, pred_scale=1.3)
    assert above.within_target is None  # reported, not judged
    gone = _level(0.3, stable=False)
    assert gone.predicted is None and gone.within_target is False
    assert any("unstable" in d for d in gone.diagnosis)
    v = verdict([same, above])
    assert v.startswith("prediction within") and "reported above 0.7" in v
    assert verdict([same, slow]).startswith("prediction OFF TARGET at load 0.5")


def _validation(
    run_id: str, lv: LlmLevel, max_num_seqs: int, kv_blocks: int, sustainable_rps: float, **more: float
) -> LlmValidation:
    """A validation file's content around one level, as `fleetwise validate` writes it."""
    from datetime import UTC, datetime

    from measure.run import EngineInfo

    return LlmValidation(
        run_id=run_id, precision="fp32", scenario="s", lengths="fixed",
        engine=EngineInfo(url="http://127.0.0.1:1", model="m", served_models=["m"], version="v"),
        knobs=EngineKnobs(max_num_seqs=max_num_seqs, max_num_batched_tokens=2048, chunked_prefill=True,
                          block_size=16, kv_blocks=kv_blocks, source="test"),
        sustainable_rps=sustainable_rps, sustainable_method="test", created_at=datetime.now(UTC),
        client="here", cpu_count=2, notes=[], targets="t", levels=[lv], verdict=verdict([lv]), **more,
    )  # fmt: skip


def test_the_validation_file_round_trips_and_a_broken_one_is_named(tmp_path: Path) -> None:

    v = _validation("sha256:" + "a" * 64, _level(0.5), 8, 100, 20.0, seconds=10.0)
    path = save_llm_validation(v, tmp_path)
    assert load_llm_validation(path) == v
    (tmp_path / f"llm-validation-{'a' * 12}-fp32-broken.json").write_text('{"kind": "llm-validation"}')
    found, broken = scan_llm_validations(v.run_id, tmp_path)
    assert found == [v] and len(broken) == 1 and "invalid" in broken[0][1]
    with pytest.raises(ValidationFileError):
        load_llm_validation(tmp_path / f"llm-validation-{'a' * 12}-fp32-broken.json")


def test_a_validation_is_rechecked_on_its_recorded_traffic_without_sending_anything(tmp_path: Path) -> None:

    from measure.run import load_run

    run_path = next(f for f in shipped_files() if f.name.startswith("llm-engine-"))
    run = load_run(run_path)
    n = 200
    arr, first, last = _arrays(n, 0.03, 0.3, rate=4.0)
    prompts = np.full(n, 200)
    lv = llm_level(
        0.5, 4.0, arr, first, last, np.full(n, 24), np.zeros(n), [None] * n, 0, first, last, True, 0.0, 0.4,
        None, 2, prompts,
    )  # fmt: skip
    assert len(lv.requests_sent) == n and lv.requests_sent[0].prompt_tokens == 200
    v = _validation(run.id, lv, 256, 8192, 8.0, seconds=50.0, warmup_fraction=0.4)
    src = save_llm_validation(v, tmp_path)
    res = CliRunner().invoke(
        app, ["validate", "--recheck", str(src), "--run", str(run_path), "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    (again,) = [p for p in tmp_path.glob("llm-validation-*-recheck-*.json")]
    w = load_llm_validation(again)
    assert w.recheck_of == src.name and w.predicted_at is not None and w.created_at == v.created_at
    m, m0 = w.levels[0].measured, lv.measured
    assert m is not None and m0 is not None
    for k in ("ttft", "tpot", "e2e"):  # the same measurements (kept to the microsecond), the same warm-up
        assert getattr(m, k).model_dump() == pytest.approx(getattr(m0, k).model_dump(), abs=1e-3)
    assert w.levels[0].predicted is not None and w.levels[0].predicted != lv.predicted  # a new prediction
    other = next(f for f in shipped_files() if f.name.startswith("llm-cpu-"))
    wrong = CliRunner().invoke(
        app, ["validate", "--recheck", str(src), "--run", str(other), "--out", str(tmp_path)]
    )
    assert wrong.exit_code == 2 and "validates run" in wrong.output
    # a level the canary kept from being judged stays unjudged when predicted again
    moved = "drift: the canary's TPOT moved (test)"
    drifted = _validation(
        run.id, lv.model_copy(update={"drift": moved}), 256, 8192, 8.0, seconds=50.0, warmup_fraction=0.4
    )
    out = tmp_path / "drifted"
    res = CliRunner().invoke(app, ["validate", "--recheck", str(save_llm_validation(drifted, tmp_path / "d")),
                                   "--run", str(run_path), "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    w = load_llm_validation(next(out.glob("*.json")))
    assert w.levels[0].drift == moved and moved in w.levels[0].diagnosis and "not judged" in w.verdict


def test_a_level_measured_while_the_canary_moved_is_flagged_and_not_judged() -> None:
    from planner.evidence.llm_validation import CanaryReading, drift_flags

    def r(mean: float, ci: float = 0.1) -> CanaryReading:
        return CanaryReading(
            tpot_mean_ms=mean, tpot_ci_half_ms=ci, ttft_median_ms=10.0, requests=12, failed=0
        )

    # steady, then a reading 20% up after the second level: the second level is flagged, the first is not
    flags = drift_flags([r(4.0), r(4.05), r(4.8)])
    assert flags[0] is None and flags[1] is not None and "4.8" in flags[1] and "not judged" in flags[1]
    # a move inside the CIs, or under 5%, is the same engine
    assert drift_flags([r(4.0, 0.5), r(4.6, 0.5)]) == [None]
    assert drift_flags([r(4.0, 0.01), r(4.15, 0.01)]) == [None]
    # no first reading: nothing to compare with, nothing flagged
    none = CanaryReading(requests=0, failed=12)
    assert drift_flags([none, r(9.0)]) == [None]
