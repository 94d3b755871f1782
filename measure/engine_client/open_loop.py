"""Open-loop streaming traffic against an LLM engine, timed from each request's *scheduled* send time.

The schedule (send times, prompt words, max_tokens) is fixed before the first request, and every prompt is
written before the first send. One asyncio event loop sends each request at its time on a pooled keep-alive
connection (measure/engine_client/aio.py: the same bounds as the threaded client) and reads every stream in
flight; at most `max_in_flight` are in flight, and a request that waits for a slot has that wait recorded as
lateness and counted in its latency (no coordinated omission).

The saturation probe sends the same mix closed-loop at a high concurrency and reports completed requests per
second after its warm-up: the measured rate the load levels are fractions of.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from measure.engine_client.aio import Pool
from measure.engine_client.aio import stream_completion as stream_async
from measure.engine_client.http import (
    Endpoint,
    Prompt,
    StreamResult,
    closed_loop,
    prompt_text,
    stream_completion,
)

MAX_LIVE_REQUESTS = 100_000
MAX_IN_FLIGHT = 512


class LlmLiveError(ValueError):
    """Open-loop traffic that cannot be sent as asked (too many requests, bad lengths); says why."""


@dataclass(frozen=True)
class Schedule:
    """Send times (s from the start), prompt words and max_tokens per request, in send order; or, instead of
    words, each prompt's token ids (a replay whose prefixes are shared as a trace says)."""

    send_s: np.ndarray
    words: np.ndarray
    max_tokens: np.ndarray
    seed: int
    token_prompts: tuple[list[int], ...] | None = None

    def __post_init__(self) -> None:
        n = self.send_s.size
        if not 1 <= n <= MAX_LIVE_REQUESTS:
            raise LlmLiveError(f"open-loop traffic needs 1..{MAX_LIVE_REQUESTS:,} requests, got {n:,}")
        if self.words.size != n or self.max_tokens.size != n:
            raise LlmLiveError("send times, prompt words and max_tokens differ in length")
        if np.any(np.diff(self.send_s) < 0) or self.send_s[0] < 0:
            raise LlmLiveError("send times must start at or after 0 and never decrease")
        if self.words.min() < 1 or self.max_tokens.min() < 1:
            raise LlmLiveError("every request needs at least one prompt word and one output token")
        if self.token_prompts is not None and (
            len(self.token_prompts) != n or min(len(p) for p in self.token_prompts) < 1
        ):
            raise LlmLiveError("token prompts must be given for every request, each at least one token")


@dataclass
class Sent:
    """One request of an open-loop level: when it was due, when it left, and what the stream did."""

    scheduled: float  # absolute perf_counter time it was due
    result: StreamResult

    @property
    def late_ms(self) -> float:
        return (self.result.sent - self.scheduled) * 1000.0


SPIN_S = 0.002  # the event loop's timers wake up to 1 ms late (epoll counts in ms): the last 2 ms are yielded


def open_loop(
    ep: Endpoint,
    model: str,
    schedule: Schedule,
    timeout_s: float,
    max_in_flight: int = 256,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[Sent], float]:
    """Send every request at its scheduled time; results in schedule order, and the absolute start time."""
    if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
        raise LlmLiveError(f"max in flight must be in 1..{MAX_IN_FLIGHT}")
    return asyncio.run(_open_loop(ep, model, schedule, timeout_s, max_in_flight, clock))


async def _open_loop(
    ep: Endpoint,
    model: str,
    schedule: Schedule,
    timeout_s: float,
    max_in_flight: int,
    clock: Callable[[], float],
) -> tuple[list[Sent], float]:
    n = schedule.send_s.size
    # every prompt is written before the first send: no request waits on another's text
    texts: list[Prompt] = (
        list(schedule.token_prompts)
        if schedule.token_prompts is not None
        else [prompt_text(int(schedule.words[i]), schedule.seed + i) for i in range(n)]
    )
    out: list[Sent | None] = [None] * n
    slots = asyncio.Semaphore(max_in_flight)
    pool = Pool(ep)

    async def send(i: int, due: float) -> None:
        async with slots:  # every slot busy: the request waits, and that wait is its lateness
            r = await stream_async(pool, model, texts[i], int(schedule.max_tokens[i]), timeout_s, clock)
        out[i] = Sent(due, r)

    tasks = []
    start = clock() + 0.05
    try:
        for i in range(n):
            due = start + float(schedule.send_s[i])
            if due - clock() > SPIN_S:
                await asyncio.sleep(due - clock() - SPIN_S)
            while clock() < due:
                await asyncio.sleep(0)  # streams in flight are served meanwhile
            tasks.append(asyncio.create_task(send(i, due)))
        await asyncio.gather(*tasks)
    finally:
        pool.close()
    return [s for s in out if s is not None], start


def saturation_rate(
    ep: Endpoint,
    model: str,
    words: np.ndarray,
    max_tokens: np.ndarray,
    concurrency: int,
    seconds: float,
    timeout_s: float,
    seed: int,
) -> tuple[float, int, str]:
    """Completed requests per second of the mix sent closed-loop at `concurrency`, counted over the steady
    window (from the end of `concurrency` warm-up requests to the last send), the requests it counted, and how
    the loop ended."""
    k = words.size

    def one(i: int) -> StreamResult:
        text = prompt_text(int(words[i % k]), seed + i)
        return stream_completion(ep, model, text, int(max_tokens[i % k]), timeout_s)

    loop = closed_loop(one, concurrency, 100_000, seconds, lambda _done: False, warmup=concurrency)
    failed = [r.error for r in loop.results if r.error is not None]
    if failed:
        raise LlmLiveError(f"the saturation probe had {len(failed)} failed requests, e.g. {failed[0]}")
    # completions inside the steady window, whenever sent: the rate at full concurrency, without the drain
    ended = [r for r in loop.results[loop.warmup :] if loop.window and r.ended <= loop.window[1]]
    if len(ended) < 2 or loop.steady_s <= 0:
        raise LlmLiveError(
            f"the saturation probe completed {len(ended)} requests after warm-up: the engine is too slow for "
            f"{seconds:g} s"
        )
    return len(ended) / loop.steady_s, len(ended), loop.stop_reason
