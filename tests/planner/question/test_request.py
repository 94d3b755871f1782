"""The sizing question typed once: the scenario decides batch or generative in the planner, an option of the
other kind is refused by name, and `answer` gives what the kind's own sizing gives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from planner.fleet.options import SizingError
from planner.fleet.plan import Plan, make_plan
from planner.fleet.prices import load_prices
from planner.llm.sizing import LlmPlan, size_llm
from planner.question.request import SizingRequest, answer
from planner.traffic.scenario import load_scenario
from tests.conftest import REPO, shipped_files

BOOK = load_prices(REPO / "data" / "prices.yaml")
BATCH = load_scenario(REPO / "scenarios" / "steady-api.yaml")
CHAT = load_scenario(REPO / "scenarios" / "llm" / "tiny-chat.yaml")


@pytest.mark.parametrize(
    ("field", "value"),
    [("router", "round-robin"), ("rank_by", "cost_per_1k"), ("max_batches", (4,)), ("service_scale", 1.2),
     ("exclude_throttled", True), ("full_length", True)],
)  # fmt: skip
def test_a_batch_option_on_a_generative_scenario_is_refused_by_the_name_the_front_end_uses(
    field: str, value: object
) -> None:
    req = replace(SizingRequest(CHAT, runs=("x.json",)), **{field: value})
    with pytest.raises(SizingError, match=f"--{field} does not apply to a generative"):
        req.check({field: f"--{field}"})
    with pytest.raises(SizingError, match=f"{field} does not apply"):
        req.check()  # the app names fields as they are


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_num_seqs", (8,)),
        ("max_num_batched_tokens", (512,)),
        ("chunked_prefill", (False,)),
        ("kv_blocks", 9),
    ],
)
def test_an_llm_option_on_a_batch_scenario_is_refused(field: str, value: object) -> None:
    req = replace(SizingRequest(BATCH, runs=("x.json",)), **{field: value})
    with pytest.raises(SizingError, match=f"{field} does not apply to a batch scenario"):
        req.check()


def test_bounds_are_the_kinds_own() -> None:
    with pytest.raises(SizingError, match=r"requests must be in 1000\.\.2000000"):
        SizingRequest(BATCH, runs=("x",), requests=500).check()
    SizingRequest(CHAT, runs=("x",), requests=500).check()  # 500 requests per count is a fine LLM sizing
    with pytest.raises(SizingError, match=r"requests must be in 100\.\.1000000 for a generative"):
        SizingRequest(CHAT, runs=("x",), requests=50).check()
    with pytest.raises(SizingError, match="router 'least-kv' does not apply to batch serving"):
        SizingRequest(BATCH, runs=("x",), router="least-kv").check()
    with pytest.raises(SizingError, match="not an assumed LLM profile"):
        SizingRequest(CHAT, runs=("x",), profiles=("p.yaml",)).check()


def test_answer_is_the_kinds_own_sizing() -> None:
    cnn = next(str(f) for f in shipped_files() if f.name.startswith("cnn-cpu-"))
    req = SizingRequest(BATCH, runs=(cnn,), max_batches=(1, 4), max_delays_ms=(0.0,), requests=2000)
    got = answer(req, BOOK)
    assert isinstance(got, Plan)
    assert got.model_dump(exclude={"sized_at"}) == make_plan(req.batch_question(), BOOK).model_dump(
        exclude={"sized_at"}
    )
    llm = next(str(f) for f in shipped_files() if f.name.startswith("llm-cpu-"))
    req = SizingRequest(CHAT, runs=(llm,), precisions=("fp32",), max_num_seqs=(64,), requests=600)
    plan = answer(req, BOOK)
    assert isinstance(plan, LlmPlan)
    direct = size_llm(CHAT, [llm], ["fp32"], (64,), (2048, 8192), (True,), BOOK, "on_demand", requests=600)
    assert plan.model_dump() == direct.model_dump()
