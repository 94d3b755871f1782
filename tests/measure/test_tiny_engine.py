"""The project's own LLM engine: a tiny random-weight Llama served by `transformers serve` on 127.0.0.1,
streaming one chunk per token with the token counts in `usage`. Started and stopped by the test (its pid)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
from benchmarks.served import free_port, stop, wait_healthy
from benchmarks.tiny_llm import build, serve_command

pytestmark = pytest.mark.slow


def test_the_tiny_engine_streams_one_chunk_per_token(tmp_path: Path) -> None:
    folder = build(tmp_path / "tiny")
    config = json.loads((folder / "config.json").read_text())
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert config["vocab_size"] == len(vocab) and config["num_key_value_heads"] == 2
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(serve_command(folder, port), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout_s=120)
        except RuntimeError as exc:
            pytest.fail(f"{exc}: {(tmp_path / 'serve.log').read_text(errors='replace')[-2000:]}")
        body = {"model": str(folder), "prompt": "the fleet serves tokens", "max_tokens": 12, "stream": True}
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        chunks = []
        with urllib.request.urlopen(req, timeout=60) as resp:
            for raw in resp:
                line = raw.decode().strip()
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunks.append(json.loads(line[6:]))
        texts = [c for c in chunks if c["choices"] and c["choices"][0].get("text")]
        usage = next(c["usage"] for c in chunks if c.get("usage"))
        # random weights may end on the end-of-sequence token early: then fewer tokens, and usage says so
        assert 1 <= usage["completion_tokens"] <= 12
        assert len(texts) == usage["completion_tokens"]
    finally:
        stop(proc)
        log.close()
