"""vLLM itself, serving the tiny model on 127.0.0.1 (benchmarks/vllm_engine.py; its own venv, which .ci/run
builds): `fleetwise measure --endpoint` measures it and reads its /metrics around every setting, and the
counters say what an engine serving one request at a time must do: one step a generated token. Skipped, with
the reason, where the vLLM venv is not built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.vllm_engine import VENV, ready, served
from fleetwise_cli.main import app
from measure.run import load_run
from planner.llm.engine import EngineConfig
from planner.llm.engine_counters import check_counters

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not ready(), reason=f"no vLLM venv at {VENV} (python benchmarks/vllm_engine.py build)"
    ),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    pytest.importorskip("transformers")
    from benchmarks.tiny_llm import build

    folder = build(tmp_path_factory.mktemp("vllm") / "tiny")
    log_path = tmp_path_factory.mktemp("log") / "vllm.log"
    with log_path.open("wb") as log:
        try:
            with served(folder, log) as url:
                yield url, folder
        except RuntimeError as exc:
            pytest.fail(f"vLLM did not start ({exc}): {log_path.read_text(errors='replace')[-3000:]}")


def test_vllm_is_measured_and_counts_one_step_a_token_for_a_lone_stream(
    engine: tuple[str, Path], tmp_path: Path
) -> None:
    url, folder = engine
    out = CliRunner().invoke(app, [
        "measure", "--endpoint", url, "--model", str(folder), "--prompt-tokens", "64", "--concurrency", "1,4",
        "--output-tokens", "16", "--max-seconds-per-point", "5", "--out", str(tmp_path),
    ])  # fmt: skip
    assert out.exit_code == 0, out.output
    (path,) = tmp_path.glob("llm-engine-*.json")
    run = load_run(path)
    assert run.llm is not None and run.llm.engine is not None and "0.32" in str(run.llm.engine.version)
    alone = [p for p in run.points if p.engine is not None and p.engine.concurrency == 1]
    # 5 s a setting may stop before the CI target (unstable): measured all the same, never failed
    assert alone and all(p.status != "failed" for p in run.points)
    for p in run.points:
        assert p.engine is not None and p.engine.counters is not None
        c = p.engine.counters
        e = p.engine  # read over the steady window: its requests whole, those in flight at its edges in part
        assert (
            c.seconds is not None
            and e.requests * 16 <= c.generation_tokens <= (c.requests_sent + e.concurrency) * 16
        )
        assert c.running_at_end is not None and c.running_at_end <= e.concurrency
    c1 = alone[0].engine.counters  # type: ignore[union-attr]
    assert c1 is not None and c1.steps == c1.generation_tokens  # alone: every step yields its one token
    ((one, *_),) = [
        [x for x in check_counters(run, "fp32", EngineConfig(kv_blocks=10**6)) if x.concurrency == 1]
    ]
    # one stream: both the engine and the model yield one token a step over the same steady seconds
    assert one.window_s is not None and one.engine_mean_batch == 1.0
    # a step across an edge counts on one side
    assert one.simulated_mean_batch == pytest.approx(1.0, abs=0.02)
