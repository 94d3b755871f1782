"""Assumed LLM profiles: a roofline of a model shape on a device sheet, labelled ASSUMED wherever it is sized,
outranked by a measured run of its device, refused with one line when it cannot be used."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fleetwise_cli.main import app
from measure.run import load_run
from planner.fleet.prices import load_prices
from planner.llm.roofline import (
    LlmProfile,
    LlmProfileError,
    decode_ms,
    kv_tokens,
    load_llm_profile,
    prefill_ms,
    shipped_devices,
    shipped_models,
    weights_gb,
)
from planner.llm.roofline_check import profile_error
from tests.conftest import REPO

PROFILES = REPO / "profiles" / "llm"
H200_70B = PROFILES / "h200-llama-3.1-70b-tp8.yaml"
SCENARIO = REPO / "scenarios" / "llm" / "llama-70b-chat.yaml"


def test_the_model_shapes_count_the_parameters_and_kv_bytes_the_shipped_run_measured() -> None:
    models = shipped_models()
    assert models["Llama-3.1-8B"].parameters() == pytest.approx(8.03e9, rel=0.005)
    assert models["Llama-3.1-70B"].parameters() == pytest.approx(70.55e9, rel=0.005)
    run = load_run(next((REPO / "data" / "runs").glob("llm-cpu-*.json")))
    assert run.llm is not None and run.llm.shape is not None
    assert models["tiny"].parameters() == run.llm.shape.parameters
    (mem,) = [m for m in run.llm.memory if m.precision == "fp32"]
    assert models["tiny"].kv_bytes_per_token("fp32") == mem.kv_bytes_per_token


def test_decode_at_batch_one_reads_the_weights_and_long_prefill_is_compute_bound() -> None:
    p = load_llm_profile(H200_70B)
    sheet, eff = p.sheet, p.efficiency
    read = p.shape.parameters() * 2 + 1 * 16 * p.shape.kv_bytes_per_token("bf16")
    bound = read / (sheet.memory_bandwidth_gbps * 1e9 * eff.memory_bandwidth * 8) * 1e3
    assert decode_ms(p, 1, 16) == pytest.approx(
        bound + 2 * 80 * (2 * 7 / 8 * 8192 * 2 / (450e9 * 0.7) * 1e3 + 0.01)
    )
    faster = p.model_copy(
        update={"device": sheet.model_copy(update={"memory_bandwidth_gbps": sheet.memory_bandwidth_gbps * 2})}
    )
    assert decode_ms(faster, 1, 16) < decode_ms(p, 1, 16)
    assert (
        prefill_ms(p, 32768) / prefill_ms(p, 16384) > 1.9
    )  # compute: twice the tokens, about twice the time
    assert kv_tokens(p) == int((141 * 8 * 0.9 - weights_gb(p)) * 1e9 // p.shape.kv_bytes_per_token("bf16"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"device": "NVIDIA H300"}, "is not a shipped sheet"),
        ({"tensor_parallel": 1, "device": "NVIDIA L40S"}, "does not fit"),
        ({"tensor_parallel": 3}, "do not split over tensor_parallel 3"),
        ({"device": "AMD EPYC 2-vCPU VM", "precision": "fp32"}, "needs the sheet's interconnect_gbps"),
        ({"precision": "fp32", "device": "NVIDIA B200"}, "states no peak FLOPS at fp32"),
    ],
)
def test_a_profile_that_cannot_be_used_is_refused_with_one_line(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = {**yaml.safe_load(H200_70B.read_text()), **change}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(LlmProfileError, match=message) as got:
        load_llm_profile(f)
    assert "\n" not in str(got.value)


def test_an_assumed_h200_plan_for_llama_70b_is_priced_per_gpu_and_labelled_assumed(tmp_path: Path) -> None:
    report = tmp_path / "plan.md"
    args = ["size", "--scenario", str(SCENARIO), "--profiles", str(H200_70B), "--max-num-seqs", "256",
            "--max-num-batched-tokens", "8192"]  # fmt: skip
    out = CliRunner().invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)
    (o,) = plan["options"]
    assert o["source"] == "assumed" and o["meets_slo"] and plan["answer"].startswith("ASSUMED")
    h200 = load_prices(REPO / "data" / "prices.yaml").by_key("nvidia-h200").price("on_demand").usd_per_hour
    assert o["devices_deployed"] == o["replicas_deployed"] * 8
    assert o["monthly_cost_usd"] == pytest.approx(o["devices_deployed"] * h200 * 730)
    assert o["warnings"][0].startswith("ASSUMED roofline: Llama-3.1-70B on 8x NVIDIA H200")
    table = CliRunner().invoke(app, [*args, "--report", str(report)])
    assert table.exit_code == 0 and "│ ASSUMED" in table.output  # the device cell of the table
    text = report.read_text()
    assert "**ASSUMED** profile `h200-llama-3.1-70b-tp8`" in text and "| ASSUMED NVIDIA H200 |" in text


def test_a_profile_of_another_model_is_left_out_with_the_reason() -> None:
    out = CliRunner().invoke(app, ["size", "--scenario", str(REPO / "scenarios" / "llm" / "tiny-chat.yaml"),
                                   "--profiles", str(H200_70B), "--json"])  # fmt: skip
    assert out.exit_code == 2 and "assumed profile h200-llama-3.1-70b-tp8" in out.output
    assert "the scenario is for" in out.output


def test_a_measured_run_of_the_device_outranks_its_roofline() -> None:
    run = next((REPO / "data" / "runs").glob("llm-cpu-*.json"))
    out = CliRunner().invoke(app, ["size", "--scenario", str(REPO / "scenarios" / "llm" / "tiny-chat.yaml"),
                                   "--runs", str(run), "--profiles", str(PROFILES / "cpu-tiny-fp32.yaml"),
                                   "--max-num-seqs", "64", "--max-num-batched-tokens", "2048", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)
    sources = {o["source"]: o for o in plan["options"]}
    assert set(sources) == {"measured", "assumed"}
    assert not plan["answer"].startswith("ASSUMED")
    assert sources["assumed"][
        "meets_slo"
    ]  # the roofline is faster than the measured steps: it would win on cost
    assert any("outranks the assumed profile" in n for n in plan["notes"])


def test_the_roofline_error_is_computed_from_every_measured_step() -> None:
    p = load_llm_profile(PROFILES / "cpu-tiny-fp32.yaml")
    run = load_run(next((REPO / "data" / "runs").glob("llm-cpu-*.json")))
    e = profile_error(p, run)
    measured = [
        pt
        for pt in run.points
        if pt.phase in ("prefill", "decode") and pt.latency_ms and pt.precision == "fp32"
    ]
    assert len(e.steps) == len(measured)
    for s in e.steps:
        assert s.error_pct == pytest.approx((s.roofline_ms - s.measured_ms) / s.measured_ms * 100)
    assert set(e.median_error_pct) == {"prefill", "decode"}


def test_every_shipped_sheet_and_profile_loads_and_cites_a_source() -> None:
    assert {"NVIDIA H100 SXM", "NVIDIA H200", "NVIDIA B200", "NVIDIA L40S", "AMD Instinct MI300X"} <= set(
        shipped_devices()
    )
    for f in PROFILES.glob("*.yaml"):
        p = load_llm_profile(f)
        assert (
            isinstance(p, LlmProfile)
            and p.sheet.source
            and p.shape.source
            and math.isfinite(decode_ms(p, 8, 1024))
        )


def test_owned_gpus_pay_for_their_power_and_reserved_3y_is_a_pricing(tmp_path: Path) -> None:
    """Buy vs rent: an owned replica costs capex amortised + hosting + energy (the sheet's board power, an upper
    bound, x PUE at the electricity price); a 3-year reservation is priced from its own entry."""
    book = load_prices(REPO / "data" / "prices.yaml")
    h200 = book.by_key("nvidia-h200")
    args = ["size", "--scenario", str(SCENARIO), "--profiles", str(H200_70B), "--max-num-seqs", "256",
            "--max-num-batched-tokens", "8192", "--json", "--pricing"]  # fmt: skip
    plans = {}
    for pricing in ("owned", "reserved_3y"):
        out = CliRunner().invoke(app, [*args, pricing])
        assert out.exit_code == 0, out.output
        (plans[pricing],) = json.loads(out.output)["options"]
    owned, r3 = plans["owned"], plans["reserved_3y"]
    n = owned["devices_deployed"]
    energy = n * 700 * 730 / 1000 * book.electricity.pue * book.electricity.usd_per_kwh
    assert owned["energy_usd_per_month"] == pytest.approx(energy)
    assert owned["monthly_cost_usd"] == pytest.approx(n * h200.price("owned").usd_per_hour * 730 + energy)
    assert "board power" in owned["energy_cost_note"] and any("upper bound" in w for w in owned["warnings"])
    assert r3["monthly_cost_usd"] == pytest.approx(
        r3["devices_deployed"] * h200.price("reserved_3y").usd_per_hour * 730
    )
    assert r3["energy_usd_per_month"] is None  # a rental pays for its power


def test_the_shipped_profiles_validate_against_the_schema_the_cli_prints() -> None:
    import jsonschema

    out = CliRunner().invoke(app, ["schema", "llm-profile"])
    assert out.exit_code == 0
    schema = json.loads(out.stdout)
    for f in PROFILES.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(f.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**yaml.safe_load(H200_70B.read_text()), "tensor_parallel": 0}, schema)


def test_a_profiles_kv_blocks_follow_the_block_size_asked() -> None:
    from planner.llm.sources import source_kv_blocks

    p = load_llm_profile(H200_70B)
    assert source_kv_blocks(p, "bf16", 16, None) == kv_tokens(p) // 16
    assert source_kv_blocks(p, "bf16", 128, None) == kv_tokens(p) // 128  # vLLM's CPU and many GPU blocks
    assert source_kv_blocks(p, "bf16", 16, 4000) == 4000  # as given
