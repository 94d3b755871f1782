"""The asyncio streaming client: the same answers and the same bounds as the threaded one (tokens timed and
counted, refusals and malformed streams named, a dripping server held to the whole-request deadline), and
connections kept alive and reused where the server keeps them."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.served import patience
from measure.engine_client.aio import Pool, stream_completion
from measure.engine_client.http import MAX_LINE_BYTES, Endpoint, StreamResult
from tests.measure.engine_client.test_endpoint import STEP_MS, Script, server  # noqa: F401 (the fixture)
from tests.measure.engine_client.test_endpoint_deadline import DRIPS, Dripper, RawServer


def one(url: str, timeout_s: float = 10.0, n: int = 1) -> list[StreamResult]:
    async def go() -> list[StreamResult]:
        pool = Pool(Endpoint.parse(url))
        try:
            return [await stream_completion(pool, "fake-model", "a b c", 8, timeout_s) for _ in range(n)]
        finally:
            pool.close()

    return asyncio.run(go())


def test_a_stream_is_timed_token_by_token_and_counted_against_usage(server: str) -> None:  # noqa: F811
    (r,) = one(server + "/v1")
    assert r.error is None and r.text_chunks == 8 and r.completion_tokens == 8 and r.prompt_tokens == 4
    assert r.ttft_ms is not None and r.tpot_ms is not None and len(r.gaps_ms) == 7
    assert r.ttft_ms + 7 * r.tpot_ms >= 7 * STEP_MS * 0.9


@pytest.mark.parametrize(("mode", "expect"), [("refuse", "HTTP 422"), ("garbage", "malformed stream")])
def test_refusals_and_malformed_streams_end_the_request_with_a_reason(
    server: str,  # noqa: F811
    mode: str,
    expect: str,
) -> None:
    Script.mode = mode
    (r,) = one(server)
    assert r.error is not None and expect in r.error


@pytest.mark.parametrize("script", ["headers", "continue", "body"])
def test_a_dripping_server_is_held_to_the_whole_request_deadline(script: str) -> None:
    d = Dripper(DRIPS[script])
    try:
        t0 = time.monotonic()
        (r,) = one(d.url, timeout_s=1.0)
        assert r.error is not None and "within 1 s" in r.error, r.error
        assert time.monotonic() - t0 < patience(4.0)  # the drip alone would take 200+ s
    finally:
        d.close()


class KeepAlive(RawServer):
    """A raw HTTP/1.1 server that answers every request on a connection with a fixed stream (Content-Length
    set, connection kept), counting the connections it accepted; `line` replaces the stream's first line."""

    def __init__(self, line: bytes | None = None) -> None:
        chunk = {"choices": [{"text": " t", "finish_reason": None}]}
        last = {
            "choices": [{"text": "", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2},
        }
        body = (line or f"data: {json.dumps(chunk)}\n\n".encode()) + f"data: {json.dumps(chunk)}\n\n".encode()
        body += f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()
        self.answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                head, sep, rest = buf.partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = next(
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                )
                if len(rest) < length:
                    continue
                buf = rest[length:]
                conn.sendall(self.answer)


@pytest.fixture
def keepalive(request: Any) -> Iterator[KeepAlive]:
    k = KeepAlive(getattr(request, "param", None))
    try:
        yield k
    finally:
        k.close()


def test_a_kept_alive_connection_serves_request_after_request(keepalive: KeepAlive) -> None:
    rs = one(keepalive.url, n=5)
    assert all(r.error is None and r.text_chunks == 2 and r.completion_tokens == 2 for r in rs)
    assert keepalive.accepted == 1


@pytest.mark.parametrize("keepalive", [b"data: " + b"x" * (MAX_LINE_BYTES + 10) + b"\n\n"], indirect=True)
def test_a_line_over_the_limit_ends_the_request_and_its_connection(keepalive: KeepAlive) -> None:
    rs = one(keepalive.url, n=2)
    assert all(r.error is not None and "over the size limit" in r.error for r in rs)
    assert keepalive.accepted == 2  # a connection left mid-answer is never reused
