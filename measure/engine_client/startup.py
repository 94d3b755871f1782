"""An engine's start-up time, timed from outside: from its process's start, as the kernel records it, to its
first answer on GET /v1/models and to the first token of a one-token request.

The process must run on this machine (its pid in /proc) and be coming up when the timing begins: an engine that
already answers could have been up for hours, so its figure is recorded as unavailable with the reason.
Resolution: the kernel's clock ticks (10 ms) and the poll interval.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from measure.engine_client.http import Endpoint, EndpointError, prompt_text, stream_completion
from measure.run import EngineStartup, Unavailable, unavailable

MAX_STARTUP_S = (
    3600.0  # the longest start-up waited for (a large model's load and graph capture take minutes)
)


def process_age_s(pid: int, proc: Path = Path("/proc")) -> float:
    """Seconds since process `pid` started: the system's uptime less the process's start in clock ticks."""
    try:
        stat = (proc / str(pid) / "stat").read_text(errors="replace")[:4096]
        uptime = float((proc / "uptime").read_text()[:100].split()[0])
    except (OSError, ValueError, IndexError):
        raise EndpointError(f"engine process {pid}: not running here (no /proc/{pid}/stat)") from None
    try:  # the command name is in parentheses and may hold spaces: the fields follow the last ')'
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22, starttime
    except (ValueError, IndexError):
        raise EndpointError(f"engine process {pid}: /proc/{pid}/stat is not as Linux writes it") from None
    return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))


def _answers(ep: Endpoint) -> bool:
    try:
        ep.get_json("/v1/models", timeout_s=2.0)
    except EndpointError:
        return False
    return True


def time_startup(
    ep: Endpoint,
    model: str,
    pid: int,
    timeout_s: float = 900.0,
    poll_s: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
) -> EngineStartup | Unavailable:
    """Wait (up to `timeout_s`) for the engine of process `pid` to answer, then send it one request; the
    times from the process's start. EndpointError if it dies, never answers or fails that request."""
    if not ep.loopback:
        raise EndpointError("--engine-pid times an engine on this machine: the endpoint must be 127.0.0.1")
    if not 1 <= timeout_s <= MAX_STARTUP_S:
        raise EndpointError(f"the start-up timeout must be 1..{MAX_STARTUP_S:g} s, got {timeout_s:g}")
    first = process_age_s(pid)
    if _answers(ep):
        return unavailable(
            f"the engine (process {pid}, up {first:.1f} s) already answered when timing began: "
            "start `fleetwise measure --engine-pid` as the engine starts"
        )
    deadline = time.monotonic() + timeout_s
    while True:
        sleep(poll_s)
        age = process_age_s(pid)  # raises once the process is gone
        if _answers(ep):
            answered = process_age_s(pid)
            break
        if time.monotonic() > deadline:
            raise EndpointError(
                f"engine process {pid} did not answer within {timeout_s:g} s (up {age:.0f} s)"
            )
    before = process_age_s(pid)
    r = stream_completion(ep, model, prompt_text(8, 424_242), 1, 120.0)
    if r.error is not None or r.ttft_ms is None:
        raise EndpointError(f"the engine's first request failed: {r.error or 'no token'}")
    seconds = before + r.ttft_ms / 1000.0
    return EngineStartup(
        seconds=round(seconds, 3),
        answered_after_s=round(answered, 3),
        how=f"process {pid}: from its start (/proc) to GET /v1/models answering and to the first token of a "
        f"1-token request; polled every {poll_s:g} s",
    )
