"""A streaming client for OpenAI-compatible completion servers, and a closed-loop driver at fixed concurrency.

Traffic goes only to the base URL the user gives. Every response is read as bounded data: a line longer than
MAX_LINE_BYTES, a stream longer than MAX_STREAM_BYTES, or a chunk that is not the expected JSON ends that
request with a reason; nothing in a response is executed or followed (no redirects). Every request has a
whole-request deadline (connect, headers, any number of `100 Continue`, body, stream): a socket timeout alone
bounds one read, so a server dripping a byte at a time would hold a request for ever; the deadline watchdog
shuts the socket down instead. Times are taken with perf_counter on the client: TTFT includes the HTTP round
trip and the server's tokenisation.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from measure.engine_client.deadline import _Deadline
from measure.run.datafile import DataFileError, one_line, parse_json

MAX_LINE_BYTES = 1 << 20
MAX_STREAM_BYTES = 16 << 20
MAX_INFO_BYTES = 1 << 20
OVER_LIMIT = "malformed stream: a line or the stream is over the size limit"
WORDS = [
    "the",
    "a",
    "fleet",
    "of",
    "replicas",
    "serves",
    "tokens",
    "under",
    "load",
    "while",
    "queues",
    "grow",
    "and",
    "drain",
    "at",
    "peak",
    "hours",
    "each",
    "request",
    "waits",
    "for",
    "its",
    "turn",
    "then",
    "streams",
    "words",
    "back",
    "to",
    "a",
    "client",
    "who",
    "measures",
    "every",
    "gap",
    "between",
    "them",
    "carefully",
]


class EndpointError(ValueError):
    """An endpoint that cannot be measured at all (bad URL, unreachable); one line naming the problem."""


@dataclass(frozen=True)
class Endpoint:
    """A base URL split into what http.client needs; only http and https, no credentials, no query."""

    scheme: str
    host: str
    port: int
    base_path: str
    url: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise EndpointError(f"endpoint {url!r} must be an http:// or https:// URL")
        if not parts.hostname:
            raise EndpointError(f"endpoint {url!r} has no host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise EndpointError(
                f"endpoint {url!r} must be a plain base URL (no credentials, query or fragment)"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise EndpointError(f"endpoint {url!r} has a bad port") from None
        base = parts.path.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return cls(parts.scheme, parts.hostname, port, base, f"{parts.scheme}://{parts.netloc}{base}")

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")

    def connection(self, timeout_s: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=timeout_s)

    def get_bytes(self, path: str, timeout_s: float = 10.0, max_bytes: int = MAX_INFO_BYTES) -> bytes:
        """GET base+path within a whole-request deadline, at most max_bytes; EndpointError with the reason."""
        conn = self.connection(timeout_s)
        guard = _Deadline(conn, timeout_s)
        try:
            with guard:
                conn.request("GET", self.base_path + path)
                resp = conn.getresponse()
                body = resp.read(max_bytes + 1)
        except (OSError, http.client.HTTPException) as exc:
            if guard.struck:  # the watchdog's shutdown is what ended the read: say so, not the symptom
                raise EndpointError(f"GET {path}: no whole answer within {timeout_s:g} s") from None
            if isinstance(exc, OSError):
                raise EndpointError(f"cannot reach {self.url}{path}: {_os_reason(exc)}") from None
            raise EndpointError(f"GET {path}: {one_line(str(exc), 200)}") from None
        finally:
            conn.close()
        if guard.struck:
            raise EndpointError(f"GET {path}: no whole answer within {timeout_s:g} s")
        if resp.status != 200:
            raise EndpointError(f"GET {path}: HTTP {resp.status}")
        if len(body) > max_bytes:
            raise EndpointError(f"GET {path}: answer over {max_bytes} bytes")
        return body

    def get_json(self, path: str, timeout_s: float = 10.0) -> Any:
        """GET base+path as bounded JSON; EndpointError with the reason otherwise."""
        body = self.get_bytes(path, timeout_s)
        try:
            return parse_json(body, f"GET {path}")
        except DataFileError as exc:
            raise EndpointError(f"GET {path}: {one_line(str(exc), 200)}") from None


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    return one_line(exc.strerror or str(exc) or type(exc).__name__, 200)


@dataclass
class StreamResult:
    """One streamed request as the client saw it; `error` set when it did not end normally."""

    sent: float
    token_times: list[float] = field(default_factory=list)
    text_chunks: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    ended: float = 0.0

    @property
    def ttft_ms(self) -> float | None:
        return (self.token_times[0] - self.sent) * 1000.0 if self.token_times else None

    @property
    def e2e_ms(self) -> float | None:
        return (self.token_times[-1] - self.sent) * 1000.0 if self.token_times else None

    @property
    def gaps_ms(self) -> list[float]:
        t = self.token_times
        return [(b - a) * 1000.0 for a, b in itertools.pairwise(t)]

    @property
    def tpot_ms(self) -> float | None:
        n = len(self.token_times)
        return (self.token_times[-1] - self.token_times[0]) * 1000.0 / (n - 1) if n > 1 else None


def prompt_text(words: int, seed: int) -> str:
    """`words` words drawn with a per-request seed: different prompts, so no prefix cache serves them."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(max(1, words)))


Prompt = str | list[int]  # text, or token ids (exact lengths and shared prefixes; vLLM takes both)


def completion_body(model: str, prompt: Prompt, max_tokens: int, ignore_eos: bool = False) -> bytes:
    """The streamed completion request every client sends (greedy, usage in the last chunk); `ignore_eos`
    (vLLM's extension) holds every answer to max_tokens where an engine accepts it."""
    body: dict[str, object] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
    }
    if ignore_eos:
        body["ignore_eos"] = True
    return json.dumps(body).encode()


def stream_completion(
    ep: Endpoint,
    model: str,
    prompt: Prompt,
    max_tokens: int,
    timeout_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> StreamResult:
    """POST /v1/completions with stream=true; the arrival time of every chunk that carries text."""
    body = completion_body(model, prompt, max_tokens)
    res = StreamResult(sent=clock())
    deadline = res.sent + timeout_s
    conn = ep.connection(timeout_s)
    guard = _Deadline(conn, timeout_s)
    try:
        with guard:
            conn.request(
                "POST",
                ep.base_path + "/v1/completions",
                body=body,
                headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
            )
            resp = conn.getresponse()
            if resp.status != 200:
                detail = resp.read(300).decode("utf-8", "replace")
                res.error = one_line(f"HTTP {resp.status}: {detail}", 300)
                return res
            _read_stream(resp, res, deadline, clock)
    except OSError as exc:
        res.error = _os_reason(exc)
    except http.client.HTTPException as exc:
        res.error = one_line(f"malformed HTTP response: {type(exc).__name__}: {exc}", 300)
    finally:
        res.ended = clock()
        conn.close()
        if guard.struck:
            res.error = f"timed out: no whole answer within {timeout_s:g} s"
    return res


def _read_stream(
    resp: http.client.HTTPResponse, res: StreamResult, deadline: float, clock: Callable[[], float]
) -> None:
    total = 0
    done = False
    while True:
        line = resp.readline(MAX_LINE_BYTES + 1)
        now = clock()
        if not line:
            break
        total += len(line)
        if len(line) > MAX_LINE_BYTES or total > MAX_STREAM_BYTES:
            res.error = OVER_LIMIT
            return
        if now > deadline:
            res.error = "timed out before the stream ended"
            return
        done = take_line(line, res, now)
        if done or res.error is not None:
            break
    end_of_stream(res, done)


def end_of_stream(res: StreamResult, done: bool) -> None:
    """A stream that ended with no finish_reason, no usage and no [DONE] was cut off mid-answer."""
    if not done and res.error is None and res.finish_reason is None and res.completion_tokens is None:
        res.error = "the stream ended early: no finish_reason, no usage, no [DONE]"


def take_line(line: bytes, res: StreamResult, now: float) -> bool:
    """One line of a server-sent event stream, arrived at `now`; True at [DONE]. A malformed chunk sets
    res.error."""
    text = line.strip()
    if not text.startswith(b"data:"):
        return False  # comments, event names, blank separators
    payload = text[5:].strip()
    if payload == b"[DONE]":
        return True
    try:
        chunk = parse_json(payload, "stream chunk")
    except DataFileError as exc:
        res.error = one_line(f"malformed stream: {exc}", 300)
        return False
    if not isinstance(chunk, dict):
        res.error = "malformed stream: a chunk is not a JSON object"
        return False
    _take(chunk, res, now)
    return False


def _take(chunk: dict[str, Any], res: StreamResult, now: float) -> None:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        c = choices[0]
        text = c.get("text")
        if text is None and isinstance(c.get("delta"), dict):
            text = c["delta"].get("content")
        if isinstance(text, str) and text:
            res.token_times.append(now)
            res.text_chunks += 1
        if isinstance(c.get("finish_reason"), str):
            res.finish_reason = c["finish_reason"][:40]
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        for key in ("prompt_tokens", "completion_tokens"):
            v = usage.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000_000:
                setattr(res, key, v)


@dataclass
class LoopResult:
    """Requests of one closed-loop setting in completion order, and the steady window they are judged in.

    The window opens when the warm-up's last request ends (the first `warmup` to end are the warm-up) and
    closes when the loop stops sending (target met, limits). Only requests sent and ended inside it were
    served among `concurrency` streams from start to end: those in flight as it opened began among the
    warm-up's, and those ended after it closed (the drain) ran while fewer and fewer streams were left."""

    results: list[StreamResult]
    warmup: int
    wall_s: float
    stop_reason: str
    window: tuple[float, float] | None = None  # perf_counter open, close; None: never opened

    @cached_property
    def steady(self) -> list[StreamResult]:
        if self.window is None:
            return []
        t0, t1 = self.window
        return [r for r in self.results[self.warmup :] if r.sent >= t0 and r.ended <= t1]

    @property
    def steady_s(self) -> float:
        return self.window[1] - self.window[0] if self.window else 0.0

    @property
    def edge_excluded(self) -> int:
        """Requests after the warm-up left out for being in flight as the window opened or closed."""
        return len(self.results) - self.warmup - len(self.steady)


def closed_loop(
    send: Callable[[int], StreamResult],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    enough: Callable[[list[StreamResult]], bool],
    warmup: int,
    at_edge: Callable[[], None] | None = None,
) -> LoopResult:
    """`concurrency` workers each send the next request when their last one ends, until `enough` says so
    (checked on the steady requests after every request), `max_requests` steady requests were measured, or
    max_seconds passed; then the requests in flight drain. `at_edge` runs as the steady window opens and as it
    closes (to read the engine's counters over exactly that window). Workers are threads: the client waits on
    sockets, not on the GIL."""
    lock = threading.Lock()
    done: list[StreamResult] = []
    sent = 0
    stop = threading.Event()
    reason = ["max requests"]
    t0 = time.perf_counter()
    opened: list[float] = [t0] if warmup == 0 else []
    closed: list[float] = []
    if warmup == 0 and at_edge is not None:
        at_edge()
    # every steady request needs the warm-up, the streams in flight as the window opens, and itself
    most = warmup + 2 * concurrency + max_requests

    def edge(mark: list[float]) -> None:
        mark.append(time.perf_counter())
        if at_edge is not None:
            at_edge()

    def close(why: str) -> bool:
        """Stop sending; True for the one caller that closes the window."""
        with lock:
            if stop.is_set():
                return False
            reason[0] = why
            stop.set()
            return bool(opened)

    def worker() -> None:
        nonlocal sent
        while not stop.is_set():
            with lock:
                if sent >= most:
                    give_up = True
                else:
                    give_up = False
                    n = sent
                    sent += 1
            if give_up:
                if close("max requests"):
                    edge(closed)
                return
            r = send(n)
            opening = closing = False
            with lock:
                done.append(r)
                opening = len(done) == warmup and not opened
                if opening:
                    opened.append(time.perf_counter())  # marked under the lock: nothing ends before it
            if opening and at_edge is not None:
                at_edge()
            if opened and not stop.is_set():
                with lock:
                    w0 = opened[0]
                    steady = [x for x in done[warmup:] if x.sent >= w0]
                if len(steady) >= max_requests:
                    closing = close("max requests")
                elif steady and enough(steady):
                    closing = close("target met")
            if time.perf_counter() - t0 > max_seconds:
                closing = close(f"time limit {max_seconds:g} s") or closing
            if closing:
                edge(closed)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    window = (opened[0], closed[0]) if opened and closed else None
    return LoopResult(done, min(warmup, len(done)), time.perf_counter() - t0, reason[0], window)
