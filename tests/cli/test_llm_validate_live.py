"""LLM live validation against the scripted engine on 127.0.0.1: finished load levels survive SIGTERM, a
stream with more chunks than max_tokens is a failed request (not a file its loader refuses), and a request
count one file cannot hold is refused before any traffic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.served import patience
from fleetwise_cli.main import app
from planner.evidence.llm_validation import load_llm_validation
from tests.conftest import REPO
from tests.measure.engine_client.test_endpoint import Script, server  # noqa: F401  (server is a fixture)

LLM_RUN = next((REPO / "data" / "runs").glob("llm-engine-cpu-*be0a55eb155d.json"))
SCENARIO = REPO / "scenarios" / "llm" / "tiny-chat.yaml"
pytestmark = pytest.mark.slow


def args(server: str, out: Path, loads: str, seconds: str = "10") -> list[str]:  # noqa: F811
    return [
        "validate", "--run", str(LLM_RUN), "--scenario", str(SCENARIO), "--endpoint", server,
        "--model", "fake-model", "--load", loads, "--seconds", seconds, "--saturation-concurrency", "4",
        "--saturation-seconds", "5", "--kv-blocks", "100000", "--out", str(out),
    ]  # fmt: skip


def test_sigterm_keeps_the_finished_levels(server: str, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "v"
    exe = [sys.executable, "-m", "fleetwise_cli.main"]
    proc = subprocess.Popen(
        [*exe, *args(server, out, "0.9,0.95,0.99", seconds="10")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + patience(120.0)
    seen = ""
    assert proc.stderr is not None
    while time.monotonic() < deadline:  # the second level has started: the first is finished
        line = proc.stderr.readline()
        seen += line
        if line.startswith("load 0.95"):
            break
        if not line and proc.poll() is not None:
            break
    else:
        proc.kill()
    os.kill(proc.pid, signal.SIGTERM)
    _, rest = proc.communicate(timeout=patience(60.0))
    assert proc.returncode == 130, seen + rest
    (f,) = out.glob("llm-validation-*.json")
    v = load_llm_validation(f)
    assert [lv.load for lv in v.levels] == [0.9] and "interrupted after 1 of 3" in " ".join(v.notes)


def test_streams_longer_than_asked_are_failed_requests(server: str, tmp_path: Path) -> None:  # noqa: F811
    Script.mode = "extra"
    res = CliRunner().invoke(app, [*args(server, tmp_path / "v", "0.9"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    (level,) = data["levels"]
    assert level["failed"] == level["requests"] > 0
    assert any("text chunks for max_tokens" in r for r in level["failure_reasons"]), level["failure_reasons"]
    (f,) = (tmp_path / "v").glob("llm-validation-*.json")
    assert load_llm_validation(f).levels[0].failed == level["failed"]


def test_more_requests_than_a_file_holds_are_refused_before_sending(server: str, tmp_path: Path) -> None:  # noqa: F811
    res = CliRunner().invoke(app, args(server, tmp_path / "v", ",".join(["0.9"] * 8), seconds="3600"))
    assert res.exit_code == 2 and "over the 60,000 one validation file keeps" in res.output, res.output
    assert not list((tmp_path / "v").glob("*.json"))


def test_a_level_keeps_the_engines_counters_beside_the_models_steps(server: str, tmp_path: Path) -> None:  # noqa: F811
    """An engine with /metrics: each level records what it counted over the level (the generated tokens are the
    tokens the streams carried) and the simulated steps beside it; the canary is read before and after."""
    Script.metrics = True
    out = tmp_path / "v"
    res = CliRunner().invoke(app, args(server, out, "0.3"))
    assert res.exit_code == 0, res.output
    (f,) = out.glob("llm-validation-*.json")
    v = load_llm_validation(f)
    (lv,) = v.levels
    # the canary before the level and after it: measured, each with its CI
    assert v.canary is not None and [r.before_load for r in v.canaries] == [0.3, None]
    assert all(r.tpot_mean_ms and r.tpot_ci_half_ms is not None and r.requests >= 3 for r in v.canaries)
    c = lv.engine_counters
    assert c is not None and c.requests_sent == lv.requests
    assert c.generation_tokens == sum(r.output_tokens for r in lv.requests_sent)
    assert lv.simulated_steps and lv.simulated_mean_batch


def test_a_mooncake_replay_shares_the_blocks_its_trace_names_and_both_sides_count_the_hits(
    server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A trace of 8 system prompts (4 blocks of 32 tokens) each followed by a block of the request's own: the
    prompts go out as token ids, the engine's block cache (16 tokens) finds exactly the shared blocks after each
    system prompt's first use, the engine model with the cache finds the same share, and a recheck of the file
    finds it again from the ids it recorded."""
    Script.metrics = True
    rows = [
        {"timestamp": i * 50, "input_length": 5 * 32, "output_length": 4,
         "hash_ids": [(i % 8) * 100 + j for j in range(4)] + [10**6 + i]}
        for i in range(400)
    ]  # fmt: skip
    trace = tmp_path / "shared.jsonl"
    trace.write_text("\n".join(json.dumps(r) for r in rows))
    sc = tmp_path / "shared.yaml"
    sc.write_text(
        json.dumps(
            {
                "name": "shared-prefixes",
                "arrivals": {
                    "process": "trace",
                    "path": str(trace),
                    "format": "mooncake",
                    "block_tokens": 32,
                },
                "llm": {
                    "prompt": {"dist": "trace", "column": "input_length"},
                    "output": {"dist": "trace", "column": "output_length"},
                },
                "requests": 400,
            }
        )
    )
    out = tmp_path / "v"
    cmd = args(server, out, "0.3")
    cmd[cmd.index(str(SCENARIO))] = str(sc)
    res = CliRunner().invoke(app, [*cmd, "--prefix-caching", "--block-size", "16"])
    assert res.exit_code == 0, res.output
    (f,) = out.glob("llm-validation-*.json")
    v = load_llm_validation(f)
    (lv,) = v.levels
    n = lv.requests
    assert v.prefix_caching and lv.prefix_block_tokens == 32 and lv.prefix_salt is not None
    assert all(r.prompt_tokens == 160 for r in lv.requests_sent)  # token ids: the trace's lengths exactly
    assert [r.prefix_ids for r in lv.requests_sent[:2]] == [rows[0]["hash_ids"], rows[1]["hash_ids"]]
    expected = (n - 8) * 128 / (n * 160)
    assert lv.prefix_hit_share_engine == pytest.approx(expected)
    assert lv.prefix_hit_share_simulated == pytest.approx(expected)
    again = CliRunner().invoke(
        app, ["validate", "--run", str(LLM_RUN), "--recheck", str(f), "--out", str(tmp_path / "r"), "--json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["levels"][0]["prefix_hit_share_simulated"] == pytest.approx(expected)
