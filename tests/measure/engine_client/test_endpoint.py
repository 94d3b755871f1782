"""Engine-level measurement against a scripted streaming server on 127.0.0.1: what the client times, counts and
refuses. The server's step time grows with the streams in flight, so the decode points must show it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from benchmarks.served import patience
from fleetwise_cli.main import app
from measure.engine_client.closed_loop import execute_engine
from measure.engine_client.http import Endpoint, EndpointError, closed_loop, stream_completion
from measure.engine_client.session import EngineRequest, plan_engine, remote_stack
from measure.run import dump_run, load_run, parse_run

STEP_MS = 4.0  # per-token time of one stream alone; each further stream in flight adds half of it
PREFILL_MS_PER_TOKEN = 0.1
ATTEND_MS = 2e-4  # what a computed token adds per cached token before it (token-id prompts only)


class Script:
    """How the fake engine misbehaves (set per test)."""

    mode = "ok"
    active = 0
    lock = threading.Lock()
    metrics = False  # serve vLLM-named counters at /metrics (else 404, as transformers serve does)
    prompted = generated = steps = 0
    # a token-id prompt's full blocks of CACHE_BLOCK tokens, remembered by their prefix (never evicted), and the
    # tokens looked up and found, counted as vLLM counts them (at most (prompt - 1) // block blocks found)
    CACHE_BLOCK = 16
    cached: ClassVar[set[tuple[int, ...]]] = set()
    queried = hits = 0


def _look_up(ids: list[int]) -> int:
    """The prompt's tokens found cached (whole blocks), after counting the query and caching its blocks."""
    b = Script.CACHE_BLOCK
    full = [tuple(ids[: (k + 1) * b]) for k in range(len(ids) // b)]
    with Script.lock:
        found = 0
        while found < (len(ids) - 1) // b and full[found] in Script.cached:
            found += 1
        Script.queried += len(ids)
        Script.hits += found * b
        Script.cached.update(full)
    return found * b


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "fake-model"}]})
        elif self.path == "/metrics" and Script.metrics:
            with Script.lock:
                page = (
                    "# TYPE vllm:prompt_tokens counter\n"
                    f'vllm:prompt_tokens_total{{engine="0",model_name="fake-model"}} {Script.prompted}.0\n'
                    "# TYPE vllm:generation_tokens counter\n"
                    f'vllm:generation_tokens_total{{engine="0",model_name="fake-model"}} {Script.generated}.0\n'
                    "# TYPE vllm:prefix_cache_queries counter\n"
                    f'vllm:prefix_cache_queries_total{{engine="0",model_name="fake-model"}} {Script.queried}.0\n'
                    "# TYPE vllm:prefix_cache_hits counter\n"
                    f'vllm:prefix_cache_hits_total{{engine="0",model_name="fake-model"}} {Script.hits}.0\n'
                    "# TYPE vllm:num_requests_running gauge\n"
                    f'vllm:num_requests_running{{engine="0",model_name="fake-model"}} {Script.active}.0\n'
                )
            data = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json(404, {"detail": "Not Found"})

    def _json(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Script.mode == "refuse":
            self._json(422, {"detail": "ignore_eos is not supported"})
            return
        prefill_ms = 0.0
        if isinstance(body["prompt"], list):  # token ids: as they are, through the prefix cache
            prompt = len(body["prompt"])
            hit = _look_up(body["prompt"])
            prefill_ms = (prompt - hit) * (PREFILL_MS_PER_TOKEN + ATTEND_MS * hit)
        else:
            prompt = len(body["prompt"].split()) + 1  # one token per word plus BOS
            prefill_ms = prompt * PREFILL_MS_PER_TOKEN
        n = body["max_tokens"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        with Script.lock:
            Script.active += 1
            Script.prompted += prompt
        try:
            time.sleep(prefill_ms / 1000)
            produced = n if Script.mode != "early" else max(1, n // 2)
            produced += 3 if Script.mode == "extra" else 0  # more chunks than max_tokens asked for
            for i in range(produced):
                with Script.lock:
                    k = Script.active
                time.sleep(STEP_MS * (1 + 0.5 * (k - 1)) / 1000)
                if Script.mode == "garbage" and i == 2:
                    self.wfile.write(b"data: {not json\n\n")
                    self.wfile.flush()
                    return
                with Script.lock:
                    Script.generated += 1
                chunk = {"choices": [{"text": f" t{i}", "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            finish = "length" if produced >= n else "stop"
            last = {
                "choices": [{"text": "", "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": 5_000_000 if Script.mode == "huge-usage" and prompt > 100 else prompt,
                    "completion_tokens": produced + (Script.mode == "mismatch"),
                },
            }
            self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
        finally:
            with Script.lock:
                Script.active -= 1


@pytest.fixture
def server() -> Iterator[str]:
    Script.mode = "ok"
    Script.metrics = False
    Script.cached = set()
    Script.queried = Script.hits = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _stack(ep: Endpoint) -> Any:
    return remote_stack({"device_kind": "cpu", "device_name": "scripted test engine"})


def test_a_stream_is_timed_token_by_token_and_counted_against_usage(server: str) -> None:
    ep = Endpoint.parse(server + "/v1")
    r = stream_completion(ep, "fake-model", "a b c", 8, 10)
    assert r.error is None and r.text_chunks == 8 and r.completion_tokens == 8 and r.prompt_tokens == 4
    assert r.ttft_ms is not None and r.tpot_ms is not None and len(r.gaps_ms) == 7
    # the server sleeps STEP_MS before each of the 7 tokens after the first: the stream lasts at least that
    # long from the send, whenever the client got to read the first token
    assert r.ttft_ms + 7 * r.tpot_ms >= 7 * STEP_MS * 0.9
    if patience(1.0) == 1.0:  # on a busy machine a late first read compresses the gaps after it
        assert r.tpot_ms >= STEP_MS * 0.9


@pytest.mark.parametrize(
    ("mode", "expect"),
    [("refuse", "HTTP 422"), ("garbage", "malformed stream")],
)
def test_refusals_and_malformed_streams_end_the_request_with_a_reason(
    server: str, mode: str, expect: str
) -> None:
    Script.mode = mode
    r = stream_completion(Endpoint.parse(server), "fake-model", "a b", 8, 10)
    assert r.error is not None and expect in r.error


def test_unreachable_and_bad_endpoints_are_refused_before_any_traffic() -> None:
    with pytest.raises(EndpointError, match="connection refused"):
        Endpoint.parse("http://127.0.0.1:1").get_json("/v1/models", timeout_s=2)
    for bad in ("ftp://host", "http://user:pw@host", "http://host/?q=1", "localhost:8000"):
        with pytest.raises(EndpointError):
            Endpoint.parse(bad)


def test_a_closed_loop_judges_only_requests_served_among_all_its_streams() -> None:
    """The steady requests ran from send to end with every stream in flight: none began among the warm-up's
    and none ended in the drain, however many streams were left then."""
    from measure.engine_client.http import StreamResult

    in_flight, peak = [0], [0]
    lowest: dict[int, int] = {}  # request -> fewest streams in flight during its life
    lock = threading.Lock()
    edges: list[int] = []

    def send(n: int) -> Any:
        r = StreamResult(sent=time.perf_counter())
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            lowest[n] = in_flight[0]
        for _ in range(4):
            time.sleep(0.003 + 0.002 * (n % 3))
            with lock:
                lowest[n] = min(lowest[n], in_flight[0])
                r.token_times.append(time.perf_counter())
        r.ended = time.perf_counter()
        r.completion_tokens = n  # which request it was
        with lock:
            in_flight[0] -= 1
        return r

    loop = closed_loop(send, 3, 12, 30.0, lambda rs: False, warmup=3, at_edge=lambda: edges.append(1))
    steady = loop.steady
    assert len(steady) == 12 and loop.warmup == 3 and peak[0] == 3 and loop.stop_reason == "max requests"
    assert all(lowest[r.completion_tokens] == 3 for r in steady)
    drained = [r for r in loop.results[loop.warmup :] if r not in steady]
    assert (
        drained
        and loop.edge_excluded == len(drained)
        and any(lowest[r.completion_tokens] < 3 for r in drained)
    )
    assert len(edges) == 2 and loop.steady_s > 0


def test_a_closed_loop_that_never_warms_up_has_no_steady_requests() -> None:
    from measure.engine_client.http import StreamResult

    def send(n: int) -> Any:
        time.sleep(0.02)
        return StreamResult(sent=time.perf_counter(), token_times=[1.0, 2.0], ended=time.perf_counter())

    loop = closed_loop(send, 2, 10, 0.01, lambda rs: False, warmup=8)
    assert loop.window is None and loop.steady == [] and loop.stop_reason.startswith("time limit")


def test_an_engine_sweep_gives_prefill_by_prompt_and_decode_slower_with_more_streams(server: str) -> None:
    req = EngineRequest(
        url=server,
        model="fake-model",
        prompt_tokens=(16, 400),
        concurrencies=(1, 4),
        output_tokens=12,
        max_requests=16,
        min_requests=6,
        max_seconds=20,
        params={"engine": "scripted"},
    )
    plan = plan_engine(req, _stack, ["test"])
    assert plan.tokens_per_word == pytest.approx(1.0)
    run, interrupted = execute_engine(plan)
    assert not interrupted and run.sweep.complete
    run = parse_run(dump_run(run))  # validates against the format, id included
    prefill = {p.seq_len: p for p in run.points if p.phase == "prefill"}
    decode = {
        (p.engine.prompt_tokens, p.batch_size): p for p in run.points if p.phase == "decode" and p.engine
    }
    assert set(prefill) == {16, 400} and set(decode) == {(16, 1), (16, 4), (400, 1), (400, 4)}
    assert all(p.source == "engine" and p.engine is not None for p in run.points)
    # the scripted prefill costs 0.1 ms a token: 400 tokens take ~40 ms more than 16
    assert prefill[400].latency_ms.median > prefill[16].latency_ms.median + 25  # type: ignore[union-attr]
    # one stream: a token every 4 ms; four streams: 4 x (1 + 1.5) = 10 ms
    one, four = decode[(16, 1)].latency_ms, decode[(16, 4)].latency_ms
    assert one is not None and four is not None
    assert one.median == pytest.approx(STEP_MS, rel=0.3) and four.median > 1.8 * one.median
    es = decode[(16, 4)].engine
    assert es is not None and es.failed == 0 and es.early_ends == 0 and es.usage_mismatches == 0
    assert es.prompt_tokens_reported == 16 and decode[(16, 4)].context_tokens == 16 + 6
    assert (
        run.llm is not None and run.llm.engine is not None and run.llm.engine.served_models == ["fake-model"]
    )
    assert run.llm.engine.params == {"engine": "scripted"}


def test_early_ends_and_usage_mismatches_are_recorded_not_hidden(server: str) -> None:
    Script.mode = "early"
    req = EngineRequest(
        url=server,
        model="fake-model",
        prompt_tokens=(16,),
        concurrencies=(2,),
        output_tokens=8,
        max_requests=8,
        min_requests=4,
    )
    run, _ = execute_engine(plan_engine(req, _stack, ["test"]))
    point = run.points[0]
    assert point.engine is not None and point.engine.early_ends == point.engine.requests > 0
    assert "early-end" in point.flags
    Script.mode = "mismatch"
    run, _ = execute_engine(plan_engine(req, _stack, ["test"]))
    assert run.points[0].engine is not None and run.points[0].engine.usage_mismatches > 0


def test_an_engine_that_refuses_completions_or_cannot_be_reached_is_named_before_measuring(
    server: str, tmp_path: Path
) -> None:
    Script.mode = "refuse"
    res = CliRunner().invoke(
        app,
        [
            "measure",
            "--endpoint",
            server,
            "--model",
            "fake-model",
            "--engine-param",
            "device_kind=cpu",
            "--out",
            str(tmp_path / "runs"),
        ],
    )
    assert res.exit_code == 2 and "HTTP 422" in res.output and not list(tmp_path.glob("runs/*.json"))
    Script.mode = "ok"
    res = CliRunner().invoke(
        app, ["measure", "--endpoint", "http://127.0.0.1:1", "--model", "m", "--out", str(tmp_path / "r2")]
    )
    assert res.exit_code == 2 and "connection refused" in res.output and not list(tmp_path.glob("r2/*.json"))


def test_the_cli_writes_an_engine_run_that_show_prints(server: str, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    res = CliRunner().invoke(
        app,
        [
            "measure",
            "--endpoint",
            server,
            "--model",
            "fake-model",
            "--prompt-tokens",
            "16",
            "--concurrency",
            "1,2",
            "--output-tokens",
            "6",
            "--requests",
            "8",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    (path,) = out.glob("*.json")
    run = load_run(path)
    assert run.stack.device_kind == "cpu" and [p.phase for p in run.points] == ["prefill", "decode", "decode"]
    shown = CliRunner().invoke(app, ["show", str(path)])
    assert shown.exit_code == 0 and "TTFT" in shown.output and "inter-token gap" in shown.output


def test_a_setting_with_an_impossible_usage_fails_alone_and_the_finished_ones_are_kept(server: str) -> None:
    Script.mode = "huge-usage"  # prompts over 100 tokens come back as 5,000,000 prompt tokens
    req = EngineRequest(
        url=server,
        model="fake-model",
        prompt_tokens=(16, 400),
        concurrencies=(1,),
        output_tokens=6,
        max_requests=8,
        min_requests=4,
    )
    run, interrupted = execute_engine(plan_engine(req, _stack, ["test"]))
    run = parse_run(dump_run(run))  # the run is still a valid file
    assert not interrupted
    by_prompt = {(p.engine.prompt_tokens, p.phase): p for p in run.points if p.engine}
    assert by_prompt[(16, "prefill")].status in ("ok", "unstable")
    assert by_prompt[(16, "decode")].status in ("ok", "unstable")
    bad = by_prompt[(400, "decode")]
    assert bad.status == "failed" and bad.reason is not None and "5,000,000" in bad.reason, bad.reason


BLOCK_TORCH = (
    "import importlib.abc, sys\n"
    "class NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError('No module named torch (blocked by the test)')\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)


def test_measuring_an_endpoint_needs_no_torch(server: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    # `import torch` fails in this process, as in a venv without it: the client, its parsers, the progress bar
    # and the run file must all come from torch-free modules
    code = (
        BLOCK_TORCH + "from fleetwise_cli.main import main\nsys.argv = ['fleetwise', *sys.argv[1:]]\nmain()\n"
    )
    args = [
        "measure", "--endpoint", server, "--model", "fake-model", "--prompt-tokens", "16", "--concurrency", "1,2",
        "--output-tokens", "6", "--requests", "8", "--engine-param", "device_kind=cpu",
        "--engine-param", "device_name=scripted engine", "--out", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[3],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("llm-engine-*.json")
    run = load_run(path)
    assert [p.phase for p in run.points] == ["prefill", "decode", "decode"]
    assert run.stack.device_name == "scripted engine"  # no torch to read this machine: the user's word, kept
    blocked = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + "import measure.batch.sweep"],
        capture_output=True, text=True, cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert blocked.returncode != 0  # the blocker works: the in-process sweep does need torch


def test_an_engine_served_tensor_parallel_8_records_a_replica_of_eight_devices(
    server: str, tmp_path: Path
) -> None:
    """The engine was started with tensor_parallel_size=8: the user says so, the run records what one replica
    is, and a size it cannot hold is refused before any traffic."""
    base = ["measure", "--endpoint", server, "--model", "fake-model", "--prompt-tokens", "16", "--concurrency",
            "1", "--output-tokens", "6", "--requests", "8"]  # fmt: skip
    res = CliRunner().invoke(
        app, [*base, "--engine-param", "tensor_parallel_size=8", "--out", str(tmp_path / "a")]
    )
    assert res.exit_code == 0, res.output
    (path,) = (tmp_path / "a").glob("*.json")
    run = load_run(path)
    assert run.llm is not None and run.llm.replica is not None
    assert (run.llm.replica.devices, run.llm.replica.tensor_parallel) == (8, 8)
    assert "tensor_parallel_size=8" in run.llm.replica.source
    bad = CliRunner().invoke(
        app, [*base, "--engine-param", "tensor_parallel_size=0", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code == 2 and "tensor_parallel_size must be an integer" in bad.output
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").glob("*.json"))


def test_ignore_eos_is_sent_only_when_asked() -> None:
    """vLLM holds an answer to max_tokens with ignore_eos; transformers serve refuses the key, so it is opt-in."""
    from measure.engine_client.http import completion_body

    plain, held = json.loads(completion_body("m", "a b", 4)), json.loads(completion_body("m", "a b", 4, True))
    assert "ignore_eos" not in plain and held["ignore_eos"] is True
    assert {k: v for k, v in held.items() if k != "ignore_eos"} == plain
