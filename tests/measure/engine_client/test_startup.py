"""Start-up timing from outside: a scripted engine process that sleeps before it listens, timed from its start
(the kernel's record) to its first answer and its first token; an engine already up is not timed; a process
that dies is an error, not a figure."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.served import free_port, stop
from fleetwise_cli.main import app
from measure.engine_client.http import Endpoint, EndpointError
from measure.engine_client.startup import process_age_s, time_startup
from measure.run import EngineStartup, Unavailable, load_run

SLEEP_S = 1.5
# an engine that takes SLEEP_S to load, then answers /v1/models and streams one token per completion
ENGINE = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
time.sleep(float(sys.argv[2]))
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/v1/models":
            self._json({"data": [{"id": "fake-model"}]})
        else:
            self.send_response(404); self.end_headers()
    def do_POST(self):
        n = int(self.headers["Content-Length"]); req = json.loads(self.rfile.read(n))
        words = len(str(req.get("prompt", "")).split())
        if req.get("stream"):
            self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.end_headers()
            tok = {"choices": [{"text": " x", "index": 0, "finish_reason": None}]}
            last = {"choices": [{"text": "", "index": 0, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": words + 1, "completion_tokens": 1}}
            self.wfile.write(f"data: {json.dumps(tok)}\\n\\ndata: {json.dumps(last)}\\n\\ndata: [DONE]\\n\\n".encode())
        else:
            self._json({"choices": [{"text": " x"}], "usage": {"prompt_tokens": words + 1, "completion_tokens": 1}})
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def starting_engine() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ENGINE, str(port), str(SLEEP_S)])
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_a_starting_engine_is_timed_from_its_process_start(
    starting_engine: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = starting_engine
    time.sleep(0.3)  # measure begins a little after the engine, as a person or a script would start it
    s = time_startup(Endpoint.parse(url), "fake-model", proc.pid, timeout_s=30, poll_s=0.1)
    assert isinstance(s, EngineStartup)
    # it cannot answer before its sleep; the Python start, the poll and a busy machine add, boundedly
    assert SLEEP_S <= s.answered_after_s <= s.seconds < SLEEP_S + 10
    # the second time, it already answers: how long it has been up says nothing about its start-up
    again = time_startup(Endpoint.parse(url), "fake-model", proc.pid, timeout_s=30)
    assert isinstance(again, Unavailable) and "already answered" in again.unavailable


def test_a_process_that_is_gone_or_remote_is_an_error(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(EndpointError, match="not running here"):
        time_startup(
            Endpoint.parse(f"http://127.0.0.1:{free_port()}"), "m", dead.pid, timeout_s=5, poll_s=0.1
        )
    with pytest.raises(EndpointError, match=r"127\.0\.0\.1"):
        time_startup(Endpoint.parse("http://10.1.2.3:8000"), "m", 1, timeout_s=5)
    assert process_age_s(1) >= 0  # init has been up since boot: a well-formed /proc line
    with pytest.raises(EndpointError, match="not as Linux writes it"):
        fake = tmp_path / "proc"
        (fake / "7").mkdir(parents=True)
        (fake / "7" / "stat").write_text("7 (x) S 1")
        (fake / "uptime").write_text("100.0 50.0")
        process_age_s(7, fake)


def test_measure_records_the_start_up_in_the_run(
    starting_engine: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    proc, url = starting_engine
    args = ["measure", "--endpoint", url, "--model", "fake-model", "--precision", "fp32", "--concurrency", "1",
            "--prompt-tokens", "16", "--requests", "8", "--output-tokens", "1", "--engine-pid", str(proc.pid),
            "--engine-param", "device_kind=cpu", "--out", str(tmp_path)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    (path,) = tmp_path.glob("*.json")
    run = load_run(path)
    assert run.llm is not None and run.llm.engine is not None
    s = run.llm.engine.startup
    assert isinstance(s, EngineStartup) and SLEEP_S <= s.seconds < SLEEP_S + 10
    assert "engine start-up:" in res.output
    bad = CliRunner().invoke(app, ["measure", "-w", "llm", "--engine-pid", "1", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "give --endpoint" in bad.output
