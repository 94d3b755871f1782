"""The streaming client on one asyncio event loop, with persistent connections: what open-loop traffic is sent
with, so that a thousand requests in flight cost sockets, not threads, and a send leaves on time.

The same bounds as the threaded client (http.py): every request has a whole-request deadline (asyncio.timeout
around connect, headers, any number of `100 Continue` and the whole stream), a line over MAX_LINE_BYTES or a
stream over MAX_STREAM_BYTES ends the request with a reason, nothing in a response is followed. HTTP/1.1 is
spoken by h11 (the protocol state machine httpx and uvicorn use); a connection goes back to the pool only
when both sides finished the exchange cleanly, and a reused connection the server had closed meanwhile is
replaced once, before anything of the request was answered.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import h11

from measure.engine_client.http import (
    MAX_LINE_BYTES,
    MAX_STREAM_BYTES,
    OVER_LIMIT,
    Endpoint,
    Prompt,
    StreamResult,
    _os_reason,
    completion_body,
    end_of_stream,
    take_line,
)
from measure.run.datafile import one_line

READ_BYTES = 1 << 16


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_LINE_BYTES)
        self.reused = False

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle keep-alive connections to one endpoint (the most recently used first)."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self._idle: list[_Conn] = []

    async def get(self) -> _Conn:
        while self._idle:
            c = self._idle.pop()
            if not c.reader.at_eof():
                c.reused = True
                return c
            c.close()
        tls = ssl.create_default_context() if self.ep.scheme == "https" else None
        reader, writer = await asyncio.open_connection(self.ep.host, self.ep.port, ssl=tls)
        return _Conn(reader, writer)

    def put(self, c: _Conn) -> None:
        if c.h.our_state is h11.DONE and c.h.their_state is h11.DONE:
            c.h.start_next_cycle()
            self._idle.append(c)
        else:
            c.close()

    def close(self) -> None:
        for c in self._idle:
            c.close()
        self._idle.clear()


async def stream_completion(
    pool: Pool,
    model: str,
    prompt: Prompt,
    max_tokens: int,
    timeout_s: float,
    clock: Callable[[], float] = time.perf_counter,
    ignore_eos: bool = False,
) -> StreamResult:
    """POST /v1/completions with stream=true on a pooled connection; the arrival time of every chunk that
    carries text (as http.stream_completion)."""
    body = completion_body(model, prompt, max_tokens, ignore_eos)
    res = StreamResult(sent=clock())
    try:
        async with asyncio.timeout(timeout_s):
            for attempt in (0, 1):
                conn = await pool.get()
                try:
                    answered = await _exchange(conn, pool.ep, body, res, clock)
                except (OSError, h11.RemoteProtocolError):
                    conn.close()
                    if conn.reused and attempt == 0 and not res.token_times and res.error is None:
                        continue  # the server closed an idle connection: once more on a new one
                    raise
                if not answered and conn.reused and attempt == 0:
                    conn.close()
                    continue
                pool.put(conn)
                break
    except TimeoutError:
        res.error = f"timed out: no whole answer within {timeout_s:g} s"
    except OSError as exc:
        res.error = _os_reason(exc)
    except h11.RemoteProtocolError as exc:
        res.error = one_line(f"malformed HTTP response: {exc}", 300)
    finally:
        res.ended = clock()
    return res


async def _exchange(
    conn: _Conn, ep: Endpoint, body: bytes, res: StreamResult, clock: Callable[[], float]
) -> bool:
    """One request and its streamed answer on the connection; False when the server closed it before any
    response (a stale keep-alive connection)."""
    h, w = conn.h, conn.writer
    headers = [
        ("Host", f"{ep.host}:{ep.port}"),
        ("Content-Type", "application/json"),
        ("Accept", "text/event-stream"),
        ("Content-Length", str(len(body))),
    ]
    w.write(h.send(h11.Request(method="POST", target=ep.base_path + "/v1/completions", headers=headers)))
    w.write(h.send(h11.Data(data=body)))
    w.write(h.send(h11.EndOfMessage()))
    await w.drain()
    line, total, done, status = bytearray(), 0, False, None
    while True:
        ev = h.next_event()
        if ev is h11.NEED_DATA:
            data = await conn.reader.read(READ_BYTES)
            h.receive_data(data)
            continue
        now = clock()
        if isinstance(ev, h11.ConnectionClosed):
            if status is None:
                return False
            break
        if isinstance(ev, h11.InformationalResponse):
            continue  # 100 Continue, any number of them: the whole-request deadline bounds them
        if isinstance(ev, h11.Response):
            status = ev.status_code
            continue
        if isinstance(ev, h11.Data):
            if status != 200:
                line += ev.data
                if len(line) >= 300:
                    break
                continue
            total += len(ev.data)
            if total > MAX_STREAM_BYTES:
                res.error = OVER_LIMIT
            elif not done:  # after [DONE] the rest is read to its end, so that the connection can be reused
                line += ev.data
                while not done and res.error is None:
                    cut = line.find(b"\n")
                    if cut < 0 or cut >= MAX_LINE_BYTES:
                        break
                    done = take_line(bytes(line[: cut + 1]), res, now)
                    del line[: cut + 1]
                if res.error is None and not done and len(line) > MAX_LINE_BYTES:  # what is left has no end
                    res.error = OVER_LIMIT
            if res.error is not None:
                h.send_failed()  # the answer is not read to its end: the connection is not reused
                return True
            continue
        if isinstance(ev, h11.EndOfMessage):
            break
    if status != 200:
        detail = bytes(line[:300]).decode("utf-8", "replace")
        res.error = one_line(f"HTTP {status}: {detail}", 300)
        return True
    if not done and line.strip():
        done = take_line(bytes(line), res, clock())
    end_of_stream(res, done)
    return True
