"""Synthetic prefixes: equal block ids exactly where the prompts' tokens are equal, sessions that extend their
last prompt, the cap, refusals; and the engine with the cache reusing exactly what the construction shares."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.llm.engine import EngineConfig, simulate
from planner.llm.simulation import llm_requests
from planner.traffic.scenario import ScenarioError, parse_scenario
from tests.planner.llm.test_llm_engine import synthetic_model


def _scenario(
    system: dict | None, sessions: dict | None, n: int = 60, block: int = 16, rate: float = 1.0
) -> dict:  # type: ignore[type-arg]
    prefix: dict = {"block_tokens": block}  # type: ignore[type-arg]
    if system is not None:
        prefix["system"] = system
    if sessions is not None:
        prefix["sessions"] = sessions
    return {
        "name": "sessions",
        "arrivals": {"process": "poisson", "rate_rps": rate},
        "llm": {
            "prompt": {"dist": "uniform", "low": 5, "high": 40},
            "output": {"dist": "uniform", "low": 3, "high": 30},
            "prefix": prefix,
        },
        "requests": n,
    }


def _tokens(prompts: np.ndarray, turns: int, sys_of: list[int], sys_tokens: int) -> list[list[object]]:
    """The reference: each session's prompts as explicit token lists (sessions of `turns` consecutive requests:
    think times far below the gaps between arrivals), system prompt k's tokens ("sys", k, j), a session's own
    tokens ("s", session, j) for everything after it."""
    out: list[list[object]] = []
    for i, p in enumerate(prompts.tolist()):
        s = i // turns
        own = [("s", s, j) for j in range(p - sys_tokens)]
        out.append([("sys", sys_of[s], j) for j in range(sys_tokens)] + own)
    return out


@settings(max_examples=25, deadline=None)
@given(
    prompts=st.integers(1, 4),
    sys_tokens=st.integers(1, 70),
    turns=st.integers(1, 4),
    block=st.sampled_from([4, 16]),
    seed=st.integers(0, 10_000),
)
def test_equal_ids_are_exactly_equal_tokens(
    prompts: int, sys_tokens: int, turns: int, block: int, seed: int
) -> None:
    sc = parse_scenario(
        {
            **_scenario(
                {"prompts": prompts, "tokens": sys_tokens},
                {"turns": {"dist": "fixed", "value": turns}, "think_s": 1e-6},
                24,
                block,
            ),
            "seed": seed,
        }
    )
    r, _, notes = llm_requests(sc)
    assert r.prefix_ids is not None and r.prefix_block_tokens == block
    sys_blocks = sys_tokens // block
    # a session's turns extend its last prompt: prompt = last prompt + its answer + a message of 5..40 tokens
    for i in range(r.prompt.size):
        if i % turns:
            grew = int(r.prompt[i] - r.prompt[i - 1] - r.output[i - 1])
            assert 5 <= grew <= 40
        else:
            assert sys_tokens + 5 <= r.prompt[i] <= sys_tokens + 40
    sys_of = [(r.prefix_ids[s * turns][0] // sys_blocks) if sys_blocks else 0 for s in range(-(-24 // turns))]
    ref = _tokens(r.prompt, turns, sys_of, sys_tokens)
    for i in range(24):
        assert len(r.prefix_ids[i]) == -(-int(r.prompt[i]) // block)
        for j in range(i):
            full = min(r.prompt[i], r.prompt[j]) // block
            for b in range(full):
                same_ids = r.prefix_ids[i][b] == r.prefix_ids[j][b]
                assert same_ids == (ref[i][: (b + 1) * block] == ref[j][: (b + 1) * block]), (i, j, b)
    assert any("synthetic prefixes" in n for n in notes)


def test_the_engine_reuses_exactly_what_the_sessions_share() -> None:
    """One request at a time (arrivals 1 s apart, think times far shorter): a later turn finds every full block
    of its session's last prompt, a first turn the system prompt's full blocks once another session used it."""
    sc = parse_scenario(
        _scenario(
            {"prompts": 2, "tokens": 100},
            {"turns": {"dist": "fixed", "value": 3}, "think_s": 1e-3},
            60,
            16,
            rate=0.5,
        )
    )
    r, _, _ = llm_requests(sc)
    tr = simulate(r, synthetic_model(), EngineConfig(kv_blocks=100_000, block_size=16, prefix_caching=True))
    assert tr.cached_tokens is not None
    seen: set[int] = set()
    for i in range(r.prompt.size):
        p = int(r.prompt[i])
        if i % 3:
            expected = min(int(r.prompt[i - 1]) // 16, (p - 1) // 16) * 16
        else:
            k = r.prefix_ids[i][0] if r.prefix_ids else 0
            expected = 6 * 16 if k in seen else 0
            seen.add(k)
        assert tr.cached_tokens[i] == expected, i


def test_a_session_ends_before_a_turn_that_would_pass_the_cap() -> None:
    sc = parse_scenario(
        _scenario(
            None, {"turns": {"dist": "fixed", "value": 50}, "think_s": 1e-6, "max_prompt_tokens": 120}, 200
        )
    )
    r, _, notes = llm_requests(sc)
    assert r.prompt.max() <= 120 and any("ended before a turn that would pass 120" in n for n in notes)


def test_bad_prefix_models_are_refused() -> None:
    with pytest.raises(ValueError, match="system prompts, sessions or both"):
        parse_scenario(_scenario(None, None))
    bad = _scenario({"prompts": 2, "tokens": 10}, None)
    bad["llm"]["prompt"] = {"dist": "trace"}
    bad["arrivals"] = {"process": "trace", "path": "x.csv"}
    with pytest.raises(ValueError, match="draws each turn's tokens"):
        parse_scenario(bad)
    big = parse_scenario(_scenario({"prompts": 1, "tokens": 100_000}, None, 300, block=1))
    with pytest.raises(ScenarioError, match="more than 20,000,000 prefix blocks"):
        llm_requests(big)
