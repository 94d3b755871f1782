"""The HTTP client's whole-request deadline against a hostile raw-socket server on 127.0.0.1: a server that
drips its headers, its body or endless `100 Continue` a byte at a time never holds a request past its timeout
(a per-read socket timeout alone would wait for ever)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from benchmarks.served import patience
from measure.engine_client.http import Endpoint, EndpointError, stream_completion

DRIPS = {
    "headers": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + b"X-Slow: " + b"a" * 10_000,
    "continue": b"HTTP/1.1 100 Continue\r\n\r\n" * 10_000,
    "body": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + b": keep-alive\n" * 10_000,
    "json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    + b" " * 100_000,
}


class RawServer:
    """A raw-socket server on 127.0.0.1: every accepted connection (counted) goes to `handle` on a thread."""

    def __init__(self) -> None:
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class Dripper(RawServer):
    """Sends its script one byte every 20 ms on every connection, whatever was asked."""

    def __init__(self, script: bytes) -> None:
        self.script = script
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            for i in range(len(self.script)):
                if self.stop.is_set():
                    return
                try:
                    conn.sendall(self.script[i : i + 1])
                except OSError:
                    return
                time.sleep(0.02)


@pytest.fixture
def dripper(request: pytest.FixtureRequest) -> Iterator[Dripper]:
    d = Dripper(DRIPS[request.param])
    try:
        yield d
    finally:
        d.close()


@pytest.mark.parametrize("dripper", ["headers", "continue", "body"], indirect=True)
def test_a_dripping_stream_ends_at_the_whole_request_deadline(dripper: Dripper) -> None:
    t0 = time.monotonic()
    r = stream_completion(Endpoint.parse(dripper.url), "m", "a b", 8, timeout_s=1.0)
    took = time.monotonic() - t0
    assert r.error is not None and "within 1 s" in r.error, r.error
    assert took < patience(4.0)  # a 1 s deadline; the drip alone would take 200+ s


@pytest.mark.parametrize("dripper", ["json", "headers", "continue"], indirect=True)
def test_a_slow_info_endpoint_is_refused_at_its_deadline(dripper: Dripper) -> None:
    t0 = time.monotonic()
    with pytest.raises(EndpointError, match="no whole answer within 1 s"):
        Endpoint.parse(dripper.url).get_json("/v1/models", timeout_s=1.0)
    assert time.monotonic() - t0 < patience(4.0)
